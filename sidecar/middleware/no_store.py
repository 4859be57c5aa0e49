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

from aiohttp import hdrs, web

from sidecar.request_scope import SCOPE


def signed_in_no_store(request: web.Request, response: web.StreamResponse) -> None:
    # It runs for every response of the public port, the benchmarked signed-in path
    # included: the cheapest tests come first, and header names are multidict's
    # ready-made case-insensitive keys (hdrs.*), which skip a case fold per lookup.
    try:
        ctx = request[SCOPE]
    except KeyError:
        return
    if ctx.identity is None:  # anonymous, public path, SSO-less tenant
        return
    headers = response.headers
    content_type = headers.get(hdrs.CONTENT_TYPE)
    if content_type is None or content_type[:9].lower() != "text/html":
        return
    if hdrs.CACHE_CONTROL in headers or hdrs.EXPIRES in headers:
        return
    if ctx.tenant.config.signed_in_no_store:  # signed in: the tenant step ran
        headers[hdrs.CACHE_CONTROL] = "no-store"
