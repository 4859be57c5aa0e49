"""Builds the public app: THE middleware list, in pipeline order."""

from __future__ import annotations

from aiohttp import web

from sidecar.middleware.own_routes import own_routes_middleware
from sidecar.middleware.public import public_paths_middleware
from sidecar.middleware.scope import scope_middleware
from sidecar.middleware.strip import strip_middleware
from sidecar.middleware.tenant import tenant_middleware
from sidecar.proxy import UPSTREAM_SESSION, proxy_handler
from sidecar.runtime import Runtime

# Our own routes take small forms; desk traffic streams and has no size limit here.
OWN_ROUTE_MAX_BODY = 64 * 1024


def build_public_app(runtime: Runtime) -> web.Application:
    config = runtime.config
    app = web.Application(
        middlewares=[
            scope_middleware(trusted_proxies=config.server.trusted_proxies),  # 1
            tenant_middleware(tenants=runtime.tenants),  # 2
            strip_middleware(),  # 3
            own_routes_middleware(routes={}),  # 4
            public_paths_middleware(),  # 5
        ],
        client_max_size=OWN_ROUTE_MAX_BODY,
    )
    app[UPSTREAM_SESSION] = runtime.upstream
    app.router.add_route("*", "/{tail:.*}", proxy_handler)
    return app
