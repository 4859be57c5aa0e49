"""Step 4: the reserved `/.sso/` prefix is answered here and never forwarded.

The forward-auth route (`/.sso/auth`, and the paths below it for Envoy) answers
on every tenant and for every method: a gateway asks about SSO-less tenants
and POSTs too. A tenant without `upstream` (forward-auth only) answers nothing
but `/.sso/*`: every other path is a 404 page.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sidecar.pages import error_pages
from sidecar.paths import remove_dot_segments, split_target
from sidecar.request_scope import SCOPE
from sidecar.responses import error_response
from sidecar.routes import AUTH, PREFIX

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# path -> method -> handler
Routes = Mapping[str, Mapping[str, RouteHandler]]


_SLASHES = re.compile(r"/{2,}")


def names_sso_prefix(target: str, decoded: str) -> bool:
    """SECURITY: `/.sso/` is ours however it is spelled, so none of `/%2Esso/login`,
    `/x/../.sso/login`, `/./.sso/login` or `//.sso/login` reaches the desk, which
    may normalise them back to our prefix."""
    raw = split_target(target)
    if raw.startswith(PREFIX) or decoded.startswith(PREFIX):
        return True
    if ".sso" not in raw.lower() and "%2e" not in raw.lower():
        return False  # the common case, decided without decoding
    for form in (raw, unquote(raw), unquote(unquote(raw))):
        collapsed = _SLASHES.sub("/", form.replace("\\", "/"))
        if remove_dot_segments(collapsed).startswith(PREFIX):
            return True
    return False


def _not_found(request: web.Request) -> web.Response:
    return error_response(request, error_pages.NOT_FOUND)


def own_routes_middleware(
    *, routes: Routes, forward_auth: RouteHandler, user_sessions: Middleware
) -> Middleware:
    """`user_sessions` (aiohttp-session's middleware) wraps every route answered here."""

    @web.middleware
    async def own_routes(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = request[SCOPE]
        tenant = ctx.tenant
        if not names_sso_prefix(ctx.target, request.path):
            return await handler(request) if tenant.proxies else _not_found(request)
        if request.path == AUTH or ctx.target.startswith(AUTH + "/"):
            return await user_sessions(request, forward_auth)
        methods = routes.get(request.path) if tenant.has_sso else None
        if methods is None:
            return _not_found(request)
        route = methods.get(request.method) or (
            methods.get("GET") if request.method == "HEAD" else None
        )
        if route is None:
            raise web.HTTPMethodNotAllowed(request.method, list(methods))
        return await user_sessions(request, route)

    return own_routes
