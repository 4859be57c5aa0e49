"""Hot reload of the config file: tenants change without dropping a connection.

Kubernetes updates a mounted ConfigMap by swapping a symlink (`..data`), so the
file is polled by content, not by inotify on one inode. A valid new file swaps
the tenant table whole (requests in flight keep the table they started with);
an invalid one keeps the running config, logs every problem and sets
`ticketlog_sso_config_last_reload_valid` to 0.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from sidecar import logs, metrics
from sidecar.config.loading import ConfigError, load_config
from sidecar.config.model import Config
from sidecar.oidc.provider import EntraProvider
from sidecar.runtime import Runtime, build_tenants
from sidecar.tenants import Tenant, TenantTable

_background: set[asyncio.Task[None]] = set()

# Sections read once at start: a change there is reported, applied at the next restart.
_RESTART_SECTIONS = ("server", "session", "email", "signup")


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _reuse_providers(old: TenantTable, new: TenantTable) -> TenantTable:
    """Keep a tenant's Entra provider (discovery and key caches) when its sso is unchanged."""
    previous: dict[str, Tenant] = {t.host: t for t in old}
    kept = []
    for tenant in new:
        before = previous.get(tenant.host)
        if before is not None and before.config.sso == tenant.config.sso:
            kept.append(Tenant(config=tenant.config, upstream=tenant.upstream, sso=before.sso))
        else:
            kept.append(tenant)
    return TenantTable(kept)


# Requests in flight may still hold a replaced provider; close it after they are done.
_CLOSE_REPLACED_AFTER = 60.0


async def _close_later(providers: list[EntraProvider]) -> None:
    await asyncio.sleep(_CLOSE_REPLACED_AFTER)
    for provider in providers:
        await provider.aclose()


def apply_config(runtime: Runtime, config: Config) -> None:
    old = runtime.tenants.table
    fresh = build_tenants(config, runtime.sso.idp_http)
    runtime.tenants.table = _reuse_providers(old, fresh)
    kept = {id(t.sso) for t in runtime.tenants.table}
    dropped = [t.sso for t in old if isinstance(t.sso, EntraProvider) and id(t.sso) not in kept]
    if dropped:
        _background.add(task := asyncio.ensure_future(_close_later(dropped)))
        task.add_done_callback(_background.discard)
    changed = [s for s in _RESTART_SECTIONS if getattr(runtime.config, s) != getattr(config, s)]
    if changed:
        logs.warning("config_change_needs_restart", sections=changed)
    runtime.config = runtime.config.model_copy(update={"tenants": config.tenants})
    logs.event("config_reloaded", tenants=len(runtime.tenants.table))


async def reload_once(runtime: Runtime, path: Path) -> bool:
    try:
        config = await asyncio.to_thread(load_config, path)
    except ConfigError as exc:
        metrics.CONFIG_RELOADS.labels("invalid").inc()
        metrics.CONFIG_VALID.set(0)
        logs.error("config_reload_refused", problems=exc.problems)
        return False
    apply_config(runtime, config)
    metrics.CONFIG_RELOADS.labels("ok").inc()
    metrics.CONFIG_VALID.set(1)
    return True


async def watch_config(runtime: Runtime, path: str | Path, interval: float = 2.0) -> None:
    """Poll the file until cancelled; reload when its content changes."""
    file = Path(path)
    seen = await asyncio.to_thread(_digest, file)
    metrics.CONFIG_VALID.set(1)
    while True:
        await asyncio.sleep(interval)
        current = await asyncio.to_thread(_digest, file)
        if current is None or current == seen:
            continue
        seen = current
        await reload_once(runtime, file)
