"""Step 5: public paths pass without sign-in (and never carry identity headers)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sidecar.paths import normalized_path, under_prefix
from sidecar.scope import SCOPE


def public_paths_middleware() -> Middleware:
    @web.middleware
    async def public_paths(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = request[SCOPE]
        assert ctx.tenant is not None
        config = ctx.tenant.config
        if config.public_paths or config.logout_paths:
            ctx.path_for_matching = normalized_path(ctx.target)
        ctx.is_public_path = under_prefix(ctx.path_for_matching, config.public_paths)
        return await handler(request)

    return public_paths
