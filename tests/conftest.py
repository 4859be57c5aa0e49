"""Fixtures shared by the whole suite: real Redis on loopback, real stores, the sample desk.

In-process apps are served with pytest-aiohttp's ``aiohttp_server`` / ``aiohttp_client``
fixtures. pytest-aiohttp runs on pytest-asyncio; ``asyncio_mode = "auto"`` in pyproject.toml
lets plain ``async def`` tests and fixtures share the loop those servers run on.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from pytest_aiohttp import AiohttpServer

from sidecar.dev.desk import make_desk_app
from sidecar.store import Store
from sidecar.store.memory import MemoryStore
from sidecar.store.redis_store import RedisStore
from tests.helpers import SERVER_OPTIONS

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A real Redis database, flushed before and after the test."""
    client = aioredis.Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield REDIS_URL
    await client.flushdb()
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def any_store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Store]:
    """Every store implementation: the contract tests run once per store."""
    store: Store = MemoryStore() if request.param == "memory" else RedisStore.from_url(redis_url)
    yield store
    await store.close()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
async def desk_url(aiohttp_server: AiohttpServer) -> str:
    """The sample desk app, on a real loopback port."""
    server = await aiohttp_server(make_desk_app(), **SERVER_OPTIONS)
    return str(server.make_url(""))
