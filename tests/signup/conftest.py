"""Fixtures for the signup tests: every test runs on the memory store and on real Redis."""

from __future__ import annotations

import pytest

from sidecar.store import Store
from tests.helpers import FakeClock


@pytest.fixture
def store(any_store: Store) -> Store:
    return any_store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
