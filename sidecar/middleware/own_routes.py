"""Step 4: the reserved `/.sso/` prefix is answered here and never forwarded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sidecar.paths import split_target
from sidecar.responses import error_response
from sidecar.scope import SCOPE

SSO_PREFIX = "/.sso/"
RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# path -> method -> handler
Routes = Mapping[str, Mapping[str, RouteHandler]]


def own_routes_middleware(*, routes: Routes) -> Middleware:
    @web.middleware
    async def own_routes(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = request[SCOPE]
        path = split_target(ctx.target)
        # SECURITY: the prefix is checked on the raw path and on aiohttp's decoded one,
        # so `/%2Esso/` cannot slip our routes through to the desk.
        if not (path.startswith(SSO_PREFIX) or request.path.startswith(SSO_PREFIX)):
            return await handler(request)
        assert ctx.tenant is not None
        methods = routes.get(request.path) if ctx.tenant.has_sso else None
        if methods is None:
            return error_response(
                request,
                status=404,
                error="not_found",
                title="Not found",
                message="There is no such page.",
                request_id=ctx.request_id,
            )
        route = methods.get(request.method) or (
            methods.get("GET") if request.method == "HEAD" else None
        )
        if route is None:
            raise web.HTTPMethodNotAllowed(request.method, list(methods))
        return await route(request)

    return own_routes
