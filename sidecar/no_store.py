"""Signed-in desk pages are not kept in the browser's cache (unless the desk says how).

On a shared computer, Back after sign-out would otherwise show the previous user's desk
page straight from the cache (OWASP Session Management Cheat Sheet, "Web Content
Caching"). A signed-in HTML response that carries no cache header of the desk's own
(``Cache-Control`` or ``Expires``, RFC 9111 §5.2, §5.3) gets ``Cache-Control:
no-store``; a desk that chose its caching keeps it. Per tenant: ``signed_in_no_store``
(default true).

The proxy applies it to the desk's answer headers before it answers, streamed or not
(sidecar.proxy). The sidecar's own pages carry ``no-store`` already (sidecar.responses),
and only desk answers are ever signed in.
"""

from __future__ import annotations

from aiohttp import hdrs
from multidict import CIMultiDict

from sidecar.request_scope import RequestScope


def signed_in_no_store(ctx: RequestScope, headers: CIMultiDict[str]) -> None:
    """Adds ``Cache-Control: no-store`` to the headers of a signed-in request's answer when
    the rule above calls for it. Header names are multidict's ready-made case-insensitive
    keys (hdrs.*), which skip a case fold per lookup."""
    if headers.get(hdrs.CONTENT_TYPE, "")[:9].lower() != "text/html":
        return
    if hdrs.CACHE_CONTROL in headers or hdrs.EXPIRES in headers:
        return
    if ctx.tenant.config.signed_in_no_store:
        headers[hdrs.CACHE_CONTROL] = "no-store"
