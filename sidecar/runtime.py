"""Everything a running sidecar holds: config, tenants, store, HTTP clients.

Opened once by `serve` (and by the tests), closed on shutdown. The pipeline
steps receive the pieces they need from here as keyword arguments.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from sidecar.config.model import Config
from sidecar.proxy import make_upstream_session
from sidecar.sessions.memory import MemoryStore
from sidecar.sessions.redis_store import RedisStore
from sidecar.sessions.store import Store
from sidecar.tenants import Tenant, TenantTable, TenantTableRef


def open_store(config: Config) -> Store:
    session = config.session
    if session.store == "memory":
        return MemoryStore()
    if session.redis_sentinel is not None:
        sentinel = session.redis_sentinel
        hosts = []
        for entry in sentinel.hosts:
            host, _, port = entry.rpartition(":")
            hosts.append((host, int(port)))
        password = sentinel.password.get_secret_value() if sentinel.password else None
        return RedisStore.from_sentinel(hosts, sentinel.service, password)
    assert session.redis_url is not None
    return RedisStore.from_url(session.redis_url.get_secret_value())


def build_tenants(config: Config) -> TenantTable:
    return TenantTable(Tenant(config=t, upstream=URL(t.upstream)) for t in config.tenants)


@dataclass
class Runtime:
    config: Config
    tenants: TenantTableRef
    store: Store
    upstream: aiohttp.ClientSession
    draining: bool = False
    config_path: str | None = None
    extras: dict[str, object] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def open_runtime(
    config: Config, *, store: Store | None = None, config_path: str | None = None
) -> AsyncIterator[Runtime]:
    owned_store = store is None
    the_store = open_store(config) if store is None else store
    upstream = make_upstream_session(
        connect_timeout=config.server.upstream_connect_timeout,
        read_timeout=config.server.upstream_read_timeout,
    )
    runtime = Runtime(
        config=config,
        tenants=TenantTableRef(build_tenants(config)),
        store=the_store,
        upstream=upstream,
        config_path=config_path,
    )
    try:
        yield runtime
    finally:
        await upstream.close()
        if owned_store:
            await the_store.close()
