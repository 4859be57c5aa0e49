from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.helpers import FakeClock

from .fake_entra import FakeEntra


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_750_000_000.0)


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
