"""Everything a running sidecar holds: config, tenants, store, HTTP clients.

Opened once by `serve` (and by the tests), closed on shutdown. The pipeline
steps receive the pieces they need from here as keyword arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from yarl import URL

from sidecar import logs, metrics
from sidecar.auth.context import SsoServices
from sidecar.auth.identity import AssertionSigner
from sidecar.config.model import Config, SignupConfig, SsoConfig, TenantConfig
from sidecar.oidc.credentials import (
    EXPIRY_WARNING_DAYS,
    ClientCertificates,
    ClientCredential,
    ClientSecrets,
    FederatedToken,
)
from sidecar.oidc.provider import EntraProvider
from sidecar.proxy import make_upstream_session, report_desync
from sidecar.secret_keys import DerivedKeys
from sidecar.sign_in.cache import SignInCache
from sidecar.sign_in.storage import SessionStorage
from sidecar.signup import (
    AccountStore,
    CodePolicy,
    ConsoleMailer,
    Mailer,
    SmtpMailer,
    VerificationCodes,
)
from sidecar.store import Store
from sidecar.store.memory import MemoryStore
from sidecar.store.redis_store import RedisStore
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


def client_credential(sso: SsoConfig) -> ClientCredential:
    """The tenant's one kind of client credential (the config allows exactly one)."""
    if sso.client_certificate:
        return ClientCertificates(sso.certificates)
    if sso.federated_token_file is not None:
        return FederatedToken(sso.federated_token_file)
    return ClientSecrets([s.get_secret_value() for s in sso.client_secret])


def _warn_if_expiring(host: str, credential: ClientCertificates) -> None:
    now = time.time()
    for index, certificate in enumerate(credential.certificates):
        days = certificate.days_left(now)
        if days < EXPIRY_WARNING_DAYS:
            logs.warning(
                "client_certificate_expires_soon",
                tenant=host,
                certificate=credential.label(index),
                days_left=int(days),
            )


def publish_certificate_expiry(config: Config) -> None:
    """The newest certificate's notAfter per tenant host: an alert on it fires before
    sign-in stops working (contract). Rebuilt whole at every (re)load, so a removed
    tenant or certificate leaves no series."""
    metrics.CLIENT_CERTIFICATE_EXPIRY.clear()
    for t in config.tenants:
        if t.sso is not None and t.sso.client_certificate:
            credential = ClientCertificates(t.sso.certificates)
            expiry = credential.newest.not_after.timestamp()
            metrics.CLIENT_CERTIFICATE_EXPIRY.labels(t.host).set(expiry)
            _warn_if_expiring(t.host, credential)


def entra_provider(sso: SsoConfig, idp_http: aiohttp.ClientSession) -> EntraProvider:
    """A tenant's Entra provider (it caches its own discovery and keys)."""
    return EntraProvider(
        authority=sso.authority,
        tenant=sso.tenant,
        client_id=sso.client_id,
        credential=client_credential(sso),
        http=idp_http,
        on_fetch=metrics.count_idp_fetch,
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
    upstream = None if config.upstream is None else _upstream_url(config.upstream)
    return Tenant(config=config, upstream=upstream, lazy_sso=lazy_sso)


@functools.lru_cache(maxsize=4096)
def _upstream_url(upstream: str) -> URL:
    # Tenants of one desk pod mostly share its upstream: one parsed URL for all of them.
    return URL(upstream)


def build_tenants(config: Config, idp_http: aiohttp.ClientSession) -> TenantTable:
    """Tenants whose Entra providers are built when first needed."""
    table = TenantTable(build_tenant(t, idp_http) for t in config.tenants)
    publish_certificate_expiry(config)
    return table


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


def code_policy(signup: SignupConfig) -> CodePolicy:
    return CodePolicy(
        ttl=signup.code_ttl,
        max_attempts=signup.max_attempts,
        resend_cooldown=signup.resend_cooldown,
        max_sends_per_hour=signup.max_sends_per_hour,
        max_sends_per_hour_per_ip=signup.max_sends_per_hour_per_ip,
    )


def apply_signup_and_email(sso: SsoServices, before: Config, after: Config) -> list[str]:
    """A reload's `signup:` and `email:` changes, applied to the running services (the
    contract restarts only for `server` and `session`); returns the sections applied."""
    applied = []
    if before.signup != after.signup:
        sso.codes.policy = code_policy(after.signup)
        sso.allow_reserved_email_domains = after.signup.allow_reserved_email_domains
        applied.append("signup")
    if before.email != after.email:
        sso.mailer, sso.mail_from = open_mailer(after)
        applied.append("email")
    return applied


def build_sso_services(
    config: Config, store: Store, idp_http: aiohttp.ClientSession, mailer: Mailer | None = None
) -> SsoServices:
    keys = DerivedKeys([k.get_secret_value() for k in config.session.secret_keys])
    signup = config.signup
    default_mailer, mail_from = open_mailer(config)
    return SsoServices(
        store=store,
        keys=keys,
        sessions=SessionStorage(
            store,
            keys,
            lifetime=config.session.lifetime,
            idle_timeout=config.session.idle_timeout,
        ),
        accounts=AccountStore(store),
        codes=VerificationCodes(store, code_policy(signup), keys.code_hash_key),
        mailer=mailer or default_mailer,
        mail_from=mail_from,
        signer=AssertionSigner(keys),
        idp_http=idp_http,
        cache=SignInCache(config.session.cache_ttl),
        allow_reserved_email_domains=signup.allow_reserved_email_domains,
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
        on_desync=report_desync,
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
