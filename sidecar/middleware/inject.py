"""Step 8: the identity headers and the signed assertion, on the desk-bound request."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sidecar.auth.identity import AssertionSigner
from sidecar.scope import SCOPE


def inject_middleware(*, signer: AssertionSigner) -> Middleware:
    @web.middleware
    async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = request[SCOPE]
        if ctx.identity is not None:
            ctx.identity_headers = signer.headers_for(ctx)
        return await handler(request)

    return inject
