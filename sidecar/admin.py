"""The admin listener: /healthz, /readyz, /metrics; never on the public port."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sidecar.metrics import REGISTRY, STORE_UP
from sidecar.responses import server_named
from sidecar.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


# A desk that takes longer than this to accept a connection counts as not answering.
DESK_CONNECT_TIMEOUT = 1.0


async def _accepts_connections(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), DESK_CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def desks_answer(runtime: Runtime) -> bool:
    """Every tenant's desk accepts a connection (tenants without an upstream skipped)."""
    addresses = {
        (url.host, url.port)
        for t in runtime.tenants.table
        if (url := t.upstream) is not None and url.host and url.port
    }
    results = await asyncio.gather(*(_accepts_connections(h, p) for h, p in addresses))
    return all(results)


async def readyz(request: web.Request) -> web.Response:
    """Ready when the config is loaded and the store answers, and not draining.

    One tenant's unreachable Entra never makes the process unready (contract).
    `?desk=1` also requires every tenant's desk to accept a connection: the desk
    container's readiness probe, so a pod whose desk is down (or still starting)
    gets no traffic and users never see the 502 page during a rollout.
    """
    runtime = request.app[RUNTIME]
    store_ok = await runtime.store.ping()
    STORE_UP.set(1 if store_ok else 0)
    ready = store_ok and not runtime.draining
    body: dict[str, object] = {
        "ready": ready,
        "store": "ok" if store_ok else "unavailable",
        "draining": runtime.draining,
    }
    if request.query.get("desk") == "1":
        desk_ok = await desks_answer(runtime)
        body["desk"] = "ok" if desk_ok else "unavailable"
        ready = ready and desk_ok
        body["ready"] = ready
    return web.json_response(body, status=200 if ready else 503)


async def metrics_handler(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest(REGISTRY))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def build_admin_app(runtime: Runtime) -> web.Application:
    app = web.Application()
    app[RUNTIME] = runtime
    app.on_response_prepare.append(server_named)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    return app
