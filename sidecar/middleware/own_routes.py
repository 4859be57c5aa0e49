"""Step 4: the reserved `/.sso/` prefix is answered here and never forwarded."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sidecar.pages.i18n import N_
from sidecar.paths import remove_dot_segments, split_target
from sidecar.responses import error_response
from sidecar.scope import SCOPE

SSO_PREFIX = "/.sso/"
RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# path -> method -> handler
Routes = Mapping[str, Mapping[str, RouteHandler]]


_SLASHES = re.compile(r"/{2,}")


def _names_our_prefix(target: str, decoded: str) -> bool:
    """SECURITY: `/.sso/` is ours however it is spelled, so none of `/%2Esso/login`,
    `/x/../.sso/login`, `/./.sso/login` or `//.sso/login` reaches the desk, which
    may normalise them back to our prefix."""
    raw = split_target(target)
    if raw.startswith(SSO_PREFIX) or decoded.startswith(SSO_PREFIX):
        return True
    if ".sso" not in raw.lower() and "%2e" not in raw.lower():
        return False  # the common case, decided without decoding
    for form in (raw, unquote(raw), unquote(unquote(raw))):
        collapsed = _SLASHES.sub("/", form.replace("\\", "/"))
        if remove_dot_segments(collapsed).startswith(SSO_PREFIX):
            return True
    return False


def own_routes_middleware(*, routes: Routes) -> Middleware:
    @web.middleware
    async def own_routes(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = request[SCOPE]
        if not _names_our_prefix(ctx.target, request.path):
            return await handler(request)
        assert ctx.tenant is not None
        methods = routes.get(request.path) if ctx.tenant.has_sso else None
        if methods is None:
            return error_response(
                request,
                status=404,
                error="not_found",
                title=N_("Not found"),
                message=N_("There is no such page."),
                request_id=ctx.request_id,
            )
        route = methods.get(request.method) or (
            methods.get("GET") if request.method == "HEAD" else None
        )
        if route is None:
            raise web.HTTPMethodNotAllowed(request.method, list(methods))
        return await route(request)

    return own_routes
