"""Signed-in desk pages are not kept in the browser's cache (unless the desk says how).

On a shared computer, Back after sign-out would otherwise show the previous user's desk
page straight from the cache (OWASP Session Management Cheat Sheet, "Web Content
Caching"). A signed-in HTML response that carries no cache header of the desk's own
(``Cache-Control`` or ``Expires``, RFC 9111 §5.2, §5.3) gets ``Cache-Control:
no-store``; a desk that chose its caching keeps it. Per tenant: ``signed_in_no_store``
(default true).

It runs on the app's ``on_response_prepare`` signal, which aiohttp fires for every
response just before its headers go out, the streamed ones included, so the proxy
itself is untouched.
"""

from __future__ import annotations

from aiohttp import web

from sidecar.scope import SCOPE


async def signed_in_no_store(request: web.Request, response: web.StreamResponse) -> None:
    ctx = request.get(SCOPE)
    # Cheapest test first: anonymous, public-path and SSO-less requests carry no identity.
    if ctx is None or ctx.identity is None:
        return
    headers = response.headers
    if "Cache-Control" in headers or "Expires" in headers:
        return
    assert ctx.tenant is not None
    if not ctx.tenant.config.signed_in_no_store:
        return
    if headers.get("Content-Type", "")[:9].lower() == "text/html":
        headers["Cache-Control"] = "no-store"
