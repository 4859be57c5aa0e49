from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from pytest_aiohttp import AiohttpServer

from tests.helpers import FakeClock

from .fake_entra import FakeEntra


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_750_000_000.0)


@pytest.fixture
async def entra(clock: FakeClock, aiohttp_server: AiohttpServer) -> AsyncIterator[FakeEntra]:
    fake = FakeEntra(clock=clock)
    server = await aiohttp_server(fake.make_app())
    fake.authority = str(server.make_url(""))
    yield fake
    # Before aiohttp_server closes the server (its teardown runs after this one's): a
    # request left hanging would otherwise hold the close.
    fake.release()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
