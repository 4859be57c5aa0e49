"""Step 1, the entry: the request scope opened (sidecar.forwarded says who sent the
request) and closed (request metrics, what the access log writes), framing refusals first, and
the last-resort answers to errors no later step handled."""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiohttp import HttpVersion11, hdrs, web
from aiohttp.typedefs import Handler, Middleware

from sidecar import logs, metrics
from sidecar.forwarded import Network, origin_form, sender_of
from sidecar.http_errors import response_started
from sidecar.metrics import IN_FLIGHT
from sidecar.middleware.framing import framing_refusal
from sidecar.pages import error_pages
from sidecar.request_scope import SCOPE, RequestScope
from sidecar.responses import error_response
from sidecar.store import StoreUnavailable


def entry_middleware(*, trusted_proxies: Sequence[Network]) -> Middleware:
    @web.middleware
    async def scope(request: web.Request, handler: Handler) -> web.StreamResponse:
        client_ip, scheme, request_id, trusted = sender_of(request, trusted_proxies)
        ctx = RequestScope(
            request_id=request_id,
            client_ip=client_ip,
            peer_trusted=trusted,
            scheme=scheme,
            started=time.monotonic(),
            target=origin_form(request.raw_path),
        )
        request[SCOPE] = ctx
        request.writer.on_body_write = ctx.count_body_bytes  # the access log's `bytes`
        IN_FLIGHT.inc()
        status = 500
        response: web.StreamResponse | None = None
        try:
            # The rules of framing.py, judged only when one of them can apply: most
            # requests are HTTP/1.1 without Transfer-Encoding or a `#`.
            maybe_refused = (
                request.version != HttpVersion11
                or hdrs.TRANSFER_ENCODING in request.headers
                or "#" in request.raw_path
            )
            refusal = framing_refusal(request) if maybe_refused else None
            if refusal is not None:
                status = refusal.status
                response = error_response(request, refusal)
                response.force_close()
                return response
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except StoreUnavailable:
            metrics.STORE_ERRORS.inc()
            logs.error("store_unavailable", request_id=request_id)
            status = 503
            response = error_response(request, error_pages.STORE_UNAVAILABLE)
            return response
        except Exception:
            logs.logger.exception("internal_error", extra={"fields": {"request_id": request_id}})
            if response_started(request):
                # SECURITY: a second answer after a started one would be framed two ways;
                # aiohttp's error handler closes the connection instead (http_errors).
                raise
            status = 500
            response = error_response(request, error_pages.INTERNAL_ERROR)
            return response
        finally:
            IN_FLIGHT.dec()
            # Every request passes here: a try costs nothing when the tenant is set.
            try:
                tenant = ctx.tenant.host
            except AttributeError:  # answered before the tenant step chose one
                tenant = "-"
            metrics.count_request(tenant, request.method, status)
            # The access log's line is written from these once the answer is sent
            # (access_log.RequestLogger), with its body bytes.
            ctx.tenant_label = tenant
            ctx.status = status
            ctx.duration = time.monotonic() - ctx.started

    return scope
