"""Everything a running sidecar holds: config, tenants, store, HTTP clients.

Opened once by `serve` (and by the tests), closed on shutdown. The pipeline
steps receive the pieces they need from here as keyword arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from yarl import URL

from sidecar.auth.cache import SignInCache
from sidecar.auth.context import SsoServices
from sidecar.auth.identity import AssertionSigner
from sidecar.config.model import Config, SsoConfig, TenantConfig
from sidecar.keys import DerivedKeys
from sidecar.oidc.provider import EntraProvider
from sidecar.proxy import make_upstream_session
from sidecar.sessions.memory import MemoryStore
from sidecar.sessions.redis_store import RedisStore
from sidecar.sessions.sessions import SessionManager
from sidecar.sessions.store import Store
from sidecar.signup import (
    AccountStore,
    CodePolicy,
    ConsoleMailer,
    Mailer,
    SmtpMailer,
    VerificationCodes,
)
from sidecar.tenants import LazySso, Tenant, TenantTable, TenantTableRef
from sidecar.upstream import UpstreamPool


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


def entra_provider(sso: SsoConfig, idp_http: aiohttp.ClientSession) -> EntraProvider:
    """A tenant's Entra provider (it caches its own discovery and keys)."""
    return EntraProvider(
        authority=sso.authority,
        tenant=sso.tenant,
        client_id=sso.client_id,
        client_secrets=[s.get_secret_value() for s in sso.client_secret],
        http=idp_http,
    )


def build_tenant(
    config: TenantConfig, idp_http: aiohttp.ClientSession, lazy_sso: LazySso | None = None
) -> Tenant:
    """One tenant; its provider is built at first use unless ``lazy_sso`` is handed over."""
    sso = config.sso
    if sso is None:
        lazy_sso = None
    elif lazy_sso is None:
        lazy_sso = LazySso(functools.partial(entra_provider, sso, idp_http))
    return Tenant(config=config, upstream=_upstream_url(config.upstream), lazy_sso=lazy_sso)


@functools.lru_cache(maxsize=4096)
def _upstream_url(upstream: str) -> URL:
    # Tenants of one desk pod mostly share its upstream: one parsed URL for all of them.
    return URL(upstream)


def build_tenants(config: Config, idp_http: aiohttp.ClientSession) -> TenantTable:
    """Tenants whose Entra providers are built when first needed."""
    return TenantTable(build_tenant(t, idp_http) for t in config.tenants)


def open_mailer(config: Config) -> tuple[Mailer, str]:
    """The mailer and the From address; console only when configured (development)."""
    email = config.email
    if email is None or email.backend == "console":
        return ConsoleMailer(), "TicketLog <no-reply@ticketlog.invalid>"
    assert email.smtp is not None
    smtp = email.smtp
    mailer = SmtpMailer(
        smtp.host,
        smtp.port,
        smtp.tls,
        smtp.username,
        smtp.password.get_secret_value() if smtp.password else None,
        smtp.timeout,
    )
    return mailer, smtp.from_address


def build_sso_services(
    config: Config, store: Store, idp_http: aiohttp.ClientSession, mailer: Mailer | None = None
) -> SsoServices:
    keys = DerivedKeys([k.get_secret_value() for k in config.session.secret_keys])
    signup = config.signup
    default_mailer, mail_from = open_mailer(config)
    return SsoServices(
        store=store,
        keys=keys,
        sessions=SessionManager(
            store,
            keys,
            lifetime=config.session.lifetime,
            idle_timeout=config.session.idle_timeout,
        ),
        accounts=AccountStore(store),
        codes=VerificationCodes(
            store,
            CodePolicy(
                ttl=signup.code_ttl,
                max_attempts=signup.max_attempts,
                resend_cooldown=signup.resend_cooldown,
                max_sends_per_hour=signup.max_sends_per_hour,
                max_sends_per_hour_per_ip=signup.max_sends_per_hour_per_ip,
            ),
            keys.code_hash_key,
        ),
        mailer=mailer or default_mailer,
        mail_from=mail_from,
        signer=AssertionSigner(keys),
        idp_http=idp_http,
        cache=SignInCache(config.session.cache_ttl),
    )


@dataclass
class Runtime:
    config: Config
    tenants: TenantTableRef
    store: Store
    upstream: aiohttp.ClientSession  # WebSocket upgrades
    upstream_pool: UpstreamPool  # every other request to the desks
    sso: SsoServices
    draining: bool = False
    config_path: str | None = None


def make_idp_session() -> aiohttp.ClientSession:
    """The HTTP client for Entra: separate from the desk pool, no cookies, short timeouts."""
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=15, sock_connect=5),
    )


@contextlib.asynccontextmanager
async def open_runtime(
    config: Config,
    *,
    store: Store | None = None,
    config_path: str | None = None,
    mailer: Mailer | None = None,
) -> AsyncIterator[Runtime]:
    owned_store = store is None
    the_store = open_store(config) if store is None else store
    upstream = make_upstream_session(
        connect_timeout=config.server.upstream_connect_timeout,
        read_timeout=config.server.upstream_read_timeout,
    )
    upstream_pool = UpstreamPool(
        connect_timeout=config.server.upstream_connect_timeout,
        read_timeout=config.server.upstream_read_timeout,
    )
    idp_http = make_idp_session()
    tenants = TenantTableRef(build_tenants(config, idp_http))
    runtime = Runtime(
        config=config,
        tenants=tenants,
        store=the_store,
        upstream=upstream,
        upstream_pool=upstream_pool,
        sso=build_sso_services(config, the_store, idp_http, mailer),
        config_path=config_path,
    )
    monitor = asyncio.ensure_future(monitor_store(the_store))
    try:
        yield runtime
    finally:
        monitor.cancel()
        await close_providers(tenants.table)
        await idp_http.close()
        await upstream.close()
        await upstream_pool.close()
        if owned_store:
            await the_store.close()


async def monitor_store(store: Store, interval: float = 1.0) -> None:
    """Ping the store every second, so an outage is noticed even by cache-only traffic."""
    while True:
        await store.ping()
        await asyncio.sleep(interval)


async def close_providers(table: TenantTable) -> None:
    """Close the providers that were built (an idle tenant never built one)."""
    for tenant in table:
        if tenant.lazy_sso is not None and isinstance(tenant.lazy_sso.built, EntraProvider):
            await tenant.lazy_sso.built.aclose()
