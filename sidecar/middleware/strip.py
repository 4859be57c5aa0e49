"""Step 3: the headers the desk may receive from the client, and nothing it must not."""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from sidecar.cookies import split_cookies
from sidecar.headers import CLIENT_MAY_NOT_SEND, REQUEST_ID, canonical, end_to_end
from sidecar.request_scope import SCOPE


def strip_middleware() -> Middleware:
    @web.middleware
    async def strip(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = request[SCOPE]
        headers = end_to_end(request.headers, also_drop=("host", REQUEST_ID))
        # The Cookie lines first (in any case): never an identity header, so the check
        # below need not weigh their name, which every signed-in request would pay.
        cookie_lines = headers.popall(hdrs.COOKIE, None)
        # SECURITY: client-sent identity headers die here, in every spelling and every
        # duplicate, on every path and tenant (see sidecar.headers.CLIENT_MAY_NOT_SEND).
        for name in {k for k in headers if canonical(k) in CLIENT_MAY_NOT_SEND}:
            headers.popall(name)
        if cookie_lines is not None:
            cookies, ctx.our_cookies = split_cookies(cookie_lines, ctx.scheme)
            if cookies:
                headers[hdrs.COOKIE] = cookies
        ctx.upstream_headers = headers
        return await handler(request)

    return strip
