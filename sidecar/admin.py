"""The admin listener: /healthz, /readyz, /metrics; never on the public port."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sidecar.metrics import REGISTRY, STORE_UP
from sidecar.responses import name_the_server
from sidecar.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the config is loaded and the store answers, and not draining.

    One tenant's unreachable Entra never makes the process unready (contract).
    """
    runtime = request.app[RUNTIME]
    store_ok = await runtime.store.ping()
    STORE_UP.set(1 if store_ok else 0)
    ready = store_ok and not runtime.draining
    body = {
        "ready": ready,
        "store": "ok" if store_ok else "unavailable",
        "draining": runtime.draining,
    }
    return web.json_response(body, status=200 if ready else 503)


async def metrics_handler(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest(REGISTRY))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def build_admin_app(runtime: Runtime) -> web.Application:
    app = web.Application()
    app[RUNTIME] = runtime
    app.on_response_prepare.append(name_the_server)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    return app
