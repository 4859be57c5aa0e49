"""Fixtures for the signup tests: every test runs on the memory store and on real Redis."""

from __future__ import annotations

import pytest

from sidecar.sessions.store import Store


@pytest.fixture
def store(any_store: Store) -> Store:
    return any_store


class FakeClock:
    """Wall clock for code expiry and the hourly windows, moved by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
