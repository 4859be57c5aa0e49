"""Hot reload: the config (a file or a directory) and every file it names.

A change is applied within seconds without dropping a connection; SIGHUP
applies it at once (contract: "Reload, and files the config names"). Kubernetes
updates a mounted ConfigMap or Secret by swapping a symlink (`..data`), so the
files are polled by what their path resolves to (device, inode, size, mtime),
not watched by inotify on one inode.

Everything that grows with the number of tenants runs off the event loop: the
reading, parsing and validating in a child process under `serve`
(sidecar/config/reader.py: on another CPU, with an interpreter lock of its own),
the new tenant table in a worker thread; the loop only swaps one reference. Requests in
flight keep the table they started with. A tenant whose config is unchanged is
carried over as it is, and one whose sso block is unchanged keeps its Entra
provider (discovery and keys). An invalid change keeps the running config,
bumps `ticketlog_sso_config_reloads_total{result="invalid"}` and logs every
problem.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp

from sidecar import logs, metrics
from sidecar.config import sources
from sidecar.config.loading import ConfigError
from sidecar.config.model import Config
from sidecar.config.reader import ConfigReader
from sidecar.config.sources import LoadedConfig
from sidecar.oidc.provider import EntraProvider
from sidecar.runtime import (
    Runtime,
    apply_signup_and_email,
    build_tenant,
    publish_certificate_expiry,
)
from sidecar.tenants import LazySso, TenantTable

_background: set[asyncio.Task[None]] = set()

# Sections read once at start (listeners, the store, the keys): a change there is
# reported and applied at the next restart. `signup` and `email` apply at once.
_RESTART_SECTIONS = ("server", "session")

# Requests in flight may still hold a replaced provider; close it after they are done.
_CLOSE_REPLACED_AFTER = 60.0


def carry_over(old: TenantTable, config: Config, idp_http: aiohttp.ClientSession) -> TenantTable:
    """The new tenant table; runs in a worker thread (no event-loop state is touched).

    An unchanged tenant is the same object; a changed one whose sso block is the same
    shares the old one's provider (built or not yet), so Entra discovery and keys are
    not fetched again.
    """
    tenants = []
    for config_tenant in config.tenants:
        before = old.get(config_tenant.host)
        if before is not None and (
            before.config is config_tenant or before.config == config_tenant
        ):
            tenants.append(before)
            continue
        lazy: LazySso | None = None
        if before is not None and before.config.sso == config_tenant.sso:
            lazy = before.lazy_sso
        tenants.append(build_tenant(config_tenant, idp_http, lazy))
    return TenantTable(tenants)


async def _close_later(providers: list[EntraProvider]) -> None:
    await asyncio.sleep(_CLOSE_REPLACED_AFTER)
    for provider in providers:
        await provider.aclose()


def swap_in(runtime: Runtime, config: Config, table: TenantTable) -> None:
    """On the event loop: make ``table`` the one requests see, close what it dropped."""
    old = runtime.tenants.table
    runtime.tenants.table = table
    kept = {id(t.lazy_sso) for t in table if t.lazy_sso is not None}
    dropped = [
        t.lazy_sso.built
        for t in old
        if t.lazy_sso is not None
        and id(t.lazy_sso) not in kept
        and isinstance(t.lazy_sso.built, EntraProvider)
    ]
    if dropped:
        _background.add(task := asyncio.ensure_future(_close_later(dropped)))
        task.add_done_callback(_background.discard)
    changed = [s for s in _RESTART_SECTIONS if getattr(runtime.config, s) != getattr(config, s)]
    if changed:
        logs.warning(
            "config_change_needs_restart",
            sections=changed,
            message="not applied: these sections are read at start; restart to apply them",
        )
    applied = apply_signup_and_email(runtime.sso, runtime.config, config)
    runtime.config = runtime.config.model_copy(
        update={"tenants": config.tenants, "signup": config.signup, "email": config.email}
    )
    logs.event("config_reloaded", tenants=len(table), sections=["tenants", *applied])


def _load_and_build(
    runtime: Runtime, path: Path, old: TenantTable, reader: ConfigReader | None
) -> tuple[LoadedConfig, TenantTable]:
    loaded = reader.load(path) if reader is not None else sources.load(path)
    table = carry_over(old, loaded.config, runtime.sso.idp_http)
    # Off the event loop too: it parses every tenant's certificates.
    publish_certificate_expiry(loaded.config)
    return loaded, table


async def reload_once(
    runtime: Runtime, path: Path, reader: ConfigReader | None = None
) -> LoadedConfig | None:
    """Load the config (in ``reader``'s child process when given, else in a worker
    thread) and swap it in; None when it was refused."""
    old = runtime.tenants.table
    try:
        loaded, table = await asyncio.to_thread(_load_and_build, runtime, path, old, reader)
    except ConfigError as exc:
        metrics.CONFIG_RELOADS.labels("invalid").inc()
        metrics.CONFIG_VALID.set(0)
        logs.error("config_reload_refused", problems=exc.problems)
        return None
    if runtime.tenants.table is not old:  # another reload won meanwhile: build on its table
        table = await asyncio.to_thread(
            carry_over, runtime.tenants.table, loaded.config, runtime.sso.idp_http
        )
    swap_in(runtime, loaded.config, table)
    metrics.CONFIG_RELOADS.labels("ok").inc()
    metrics.CONFIG_VALID.set(1)
    return loaded


async def watch_config(
    runtime: Runtime,
    path: str | Path,
    interval: float = 1.0,
    *,
    loaded: LoadedConfig | None = None,
    wake: asyncio.Event | None = None,
    reader: ConfigReader | None = None,
) -> None:
    """Poll the config and the files it names until cancelled; reload on a change, and
    at once when ``wake`` is set (SIGHUP).

    ``loaded`` is the config the runtime was started with (its files, as they were
    read); without it they are read here first. ``reader`` reads in a child process
    (what `serve` does); without it, in a worker thread.
    """
    source = Path(path)
    if loaded is None:
        loaded = await _first_read(runtime, source, reader)
    seen = loaded.signature if loaded is not None else ()
    metrics.CONFIG_VALID.set(1 if loaded is not None else 0)
    wake = wake or asyncio.Event()
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval)
        forced = wake.is_set()
        wake.clear()
        current = await asyncio.to_thread(_signature_now, source, loaded)
        if current == seen and not forced:
            continue
        if forced:
            logs.event("config_reload_requested", reason="SIGHUP")
        fresh = await reload_once(runtime, source, reader)
        if fresh is None:
            seen = current  # refused: try again when the files change once more
        else:
            loaded, seen = fresh, fresh.signature


def _signature_now(source: Path, loaded: LoadedConfig | None) -> sources.Signature:
    if loaded is None:
        return sources.source_signature(source)
    return sources.current_signature(loaded)


async def _first_read(
    runtime: Runtime, source: Path, reader: ConfigReader | None
) -> LoadedConfig | None:
    """The files as they are now, for a watcher not told what the runtime was started
    with. They may have changed since the runtime's config was read: then this is a
    reload. None when they are invalid now (the next change is read again)."""
    try:
        loaded = await asyncio.to_thread(sources.load, source)
    except ConfigError:
        return None
    if loaded.config == runtime.config:
        return loaded
    return await reload_once(runtime, source, reader)
