"""Step 2: the Host header chooses the tenant, or the request ends here (400/421)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sidecar.headers import FORWARDED_HOST, last_listed
from sidecar.pages import error_pages
from sidecar.request_scope import SCOPE
from sidecar.responses import error_response
from sidecar.tenants import BadHost, TenantTableRef, parse_host


def tenant_middleware(*, tenants: TenantTableRef) -> Middleware:
    @web.middleware
    async def tenant(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = request[SCOPE]
        host_values = request.headers.getall("Host", [])
        if ctx.peer_trusted and FORWARDED_HOST in request.headers:
            # The ingress in front routed on this name; it is what the user typed.
            host_values = [last_listed(request.headers, FORWARDED_HOST)]
        try:
            host = parse_host(host_values)
        except BadHost as exc:
            return error_response(request, error_pages.BAD_HOST, message_args={"reason": exc})
        # SECURITY: only the Host header chooses the tenant, never an absolute-form
        # request target (RFC 9112 §3.2.2 says to prefer it; we refuse to let it pick).
        found = tenants.table.lookup(host)
        if found is None:
            return error_response(request, error_pages.UNKNOWN_HOST)
        ctx.tenant = found
        ctx.public_host = f"{found.host}:{host.port}" if host.port else found.host
        ctx.forwarded_host = host_values[0].strip()
        return await handler(request)

    return tenant
