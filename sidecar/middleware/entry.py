"""Step 1, the entry: framing checks; request id, client address and public scheme;
the request metrics and access-log fields; last-resort errors."""

from __future__ import annotations

import ipaddress
import itertools
import re
import secrets
import time
from collections.abc import Sequence

from aiohttp import HttpVersion11, hdrs, web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import Counter
from yarl import URL

from sidecar import logs, metrics
from sidecar.access_log import ACCESS_FIELDS
from sidecar.headers import FORWARDED_FOR, FORWARDED_PROTO, REQUEST_ID, last_listed
from sidecar.http_errors import response_started
from sidecar.metrics import IN_FLIGHT
from sidecar.middleware.framing import framing_refusal
from sidecar.pages.i18n import N_
from sidecar.request_scope import SCOPE, RequestScope
from sidecar.responses import error_response
from sidecar.store import StoreUnavailable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    if not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def _client_ip(peer: str, forwarded_for: list[str], trusted: Sequence[Network]) -> str:
    """The first address, from the right, that is not a trusted proxy (the real client)."""
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return hops[0] if hops else peer


def origin_form(raw_target: str) -> str:
    """The path and query of a request target, also for absolute-form (RFC 9112 §3.2.2)."""
    if raw_target.startswith("/"):
        return raw_target
    url = URL(raw_target, encoded=True)
    return url.raw_path_qs if url.is_absolute() else "/"


# Request ids: a random per-process prefix and a counter. Unique across replicas and
# restarts in practice, and without the system call uuid4() makes per request.
_ID_PREFIX = secrets.token_hex(6)
_ids = itertools.count(1)


def next_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):010x}"


_REQUEST_COUNTERS: dict[tuple[str, str, int], Counter] = {}


def requests_counter(tenant: str, method: str, status: int) -> Counter:
    """The labelled counter child, looked up once per label set (labels() is slow)."""
    key = (tenant, method, status // 100)
    child = _REQUEST_COUNTERS.get(key)
    if child is None:
        child = _REQUEST_COUNTERS[key] = metrics.REQUESTS.labels(tenant, method, f"{key[2]}xx")
    return child


def entry_middleware(*, trusted_proxies: Sequence[Network]) -> Middleware:
    @web.middleware
    async def scope(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote or ""
        trusted = _is_trusted(peer, trusted_proxies)
        # SECURITY: forwarding headers are believed only from a configured proxy; anyone
        # else could claim any client address or https (spoofed X-Forwarded-*).
        if trusted:
            client_ip = _client_ip(peer, request.headers.getall(FORWARDED_FOR, []), trusted_proxies)
            proto = last_listed(request.headers, FORWARDED_PROTO).lower()
            scheme = proto if proto in ("http", "https") else request.scheme
            given_id = request.headers.get(REQUEST_ID, "")
            request_id = given_id if _REQUEST_ID.match(given_id) else next_request_id()
        else:
            client_ip, scheme, request_id = peer, request.scheme, next_request_id()
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
                response = error_response(
                    request,
                    status=refusal.status,
                    error=refusal.error,
                    title="Bad request",
                    message=refusal.message,
                    request_id=request_id,
                )
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
            response = error_response(
                request,
                status=503,
                error="store_unavailable",
                title=N_("Sign-in is unavailable"),
                message=N_("We cannot check your sign-in right now. Please try again in a minute."),
                request_id=request_id,
            )
            return response
        except Exception:
            logs.logger.exception("internal_error", extra={"fields": {"request_id": request_id}})
            if response_started(request):
                # SECURITY: a second answer after a started one would be framed two ways;
                # aiohttp's error handler closes the connection instead (http_errors).
                raise
            status = 500
            response = error_response(
                request,
                status=500,
                error="internal_error",
                title=N_("Something went wrong"),
                message=N_("The sign-in service hit an unexpected error. Please try again."),
                request_id=request_id,
            )
            return response
        finally:
            IN_FLIGHT.dec()
            # Every request passes here: a try costs nothing when the tenant is set.
            try:
                tenant = ctx.tenant.host
            except AttributeError:  # answered before the tenant step chose one
                tenant = "-"
            requests_counter(tenant, request.method, status).inc()
            duration = time.monotonic() - ctx.started
            upstream = ctx.upstream_seconds
            # Written once the answer is sent (access_log.RequestLogger), with its bytes.
            request[ACCESS_FIELDS] = {
                "request_id": request_id,
                "tenant": tenant,
                "method": request.method,
                "path": ctx.target.split("?", 1)[0][:512],
                "status": status,
                "bytes": 0,
                "duration_ms": round(duration * 1000, 2),
                "upstream_ms": round(upstream * 1000, 2) if upstream is not None else None,
                "client_ip": client_ip,
                **ctx.log_fields,
            }

    return scope
