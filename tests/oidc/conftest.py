from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from .fake_entra import FakeEntra


class FakeClock:
    """Injected into the provider and caches: time moves only when a test says so."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def entra(clock: FakeClock) -> AsyncIterator[FakeEntra]:
    fake = FakeEntra(clock=clock)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
