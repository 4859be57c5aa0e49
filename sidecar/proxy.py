"""Step 9: the streaming HTTP and WebSocket proxy to the desk.

Bodies stream both ways chunk by chunk (never buffered whole), compressed
bodies pass untouched, redirects from the desk pass unchanged, and a desk that
is down or slow gets a 502/504 page instead of a traceback.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import Histogram
from yarl import URL

from sidecar import logs, metrics
from sidecar.desk_wire import Origin, UnsendableRequest
from sidecar.headers import FORWARDED_FOR, FORWARDED_HOST, FORWARDED_PROTO, REQUEST_ID, end_to_end
from sidecar.no_store import signed_in_no_store
from sidecar.pages import error_pages
from sidecar.request_scope import SCOPE, RequestScope
from sidecar.responses import error_response
from sidecar.upstream import UpstreamError, UpstreamPool, UpstreamResponse

_WS_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)


def make_upstream_session(*, connect_timeout: float, read_timeout: float) -> aiohttp.ClientSession:
    """The client for WebSocket upgrades to every desk; created once per process."""
    return aiohttp.ClientSession(
        # SECURITY: a handshake the desk answers without 101 would otherwise return its
        # connection to a pool, where the next handshake could follow bytes the desk has
        # not consumed (response desync): every handshake gets a connection of its own.
        connector=aiohttp.TCPConnector(limit=0, force_close=True),
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        # Send the client's own headers only: no aiohttp defaults for these.
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
    )


# The WebSocket client (ClientSession.ws_connect), and the pool every other request uses.
UPSTREAM_SESSION = web.AppKey("upstream_session", aiohttp.ClientSession)
UPSTREAM_POOL = web.AppKey("upstream_pool", UpstreamPool)


def _forwarding_headers(ctx: RequestScope, request: web.Request) -> CIMultiDict[str]:
    """X-Forwarded-*: replaced for untrusted peers, appended to from a trusted proxy (contract)."""
    headers = ctx.upstream_headers
    peer = request.remote or ""
    if ctx.peer_trusted:
        # Appended to, and the values this request was judged by (the trusted proxy's,
        # right-most), so the desk never reads a client-written entry.
        chain = ", ".join([*request.headers.getall(FORWARDED_FOR, []), peer]).lstrip(", ")
        headers[FORWARDED_FOR] = chain
    else:
        headers[FORWARDED_FOR] = peer
    headers[FORWARDED_PROTO] = ctx.scheme
    headers[FORWARDED_HOST] = ctx.forwarded_host
    headers[REQUEST_ID] = ctx.request_id
    # The desk sees the Host the user asked for (virtual hosting on the desk side).
    headers["Host"] = ctx.forwarded_host
    return headers


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in (
        request.headers.get("Connection", "").lower()
    )


def _valid_handshake(request: web.Request) -> bool:
    """RFC 6455 §4.1: a GET with no body.

    SECURITY: the handshake is forwarded without a body; one that announced a body
    (Content-Length, Transfer-Encoding) would make the desk take that body from the
    bytes that follow on its connection.
    """
    headers = request.headers
    return (
        request.method == "GET"
        and "Content-Length" not in headers
        and "Transfer-Encoding" not in headers
        and not request.body_exists
        and web.WebSocketResponse().can_prepare(request).ok
    )


def report_desync(origin: Origin, what: str) -> None:
    """A desk sent bytes nobody asked for: its connections are no longer reused for a while."""
    desk = f"{origin.scheme}://{origin.host}:{origin.port}"
    metrics.DESK_DESYNC.labels(desk).inc()
    logs.warning("desk_sent_unasked_bytes", desk=desk, what=what)


def _failure(request: web.Request, ctx: RequestScope, exc: BaseException) -> web.Response:
    tenant = ctx.tenant.host
    timed_out = isinstance(exc, asyncio.TimeoutError | TimeoutError)
    kind = "timeout" if timed_out else type(exc).__name__
    metrics.UPSTREAM_ERRORS.labels(tenant, kind).inc()
    logs.error("upstream_failed", request_id=ctx.request_id, tenant=tenant, kind=kind)
    if timed_out:
        return error_response(request, error_pages.UPSTREAM_TIMEOUT)
    return error_response(request, error_pages.UPSTREAM_UNAVAILABLE)


async def proxy_handler(request: web.Request) -> web.StreamResponse:
    ctx = request[SCOPE]
    headers = _forwarding_headers(ctx, request)
    if _is_websocket(request):
        if not _valid_handshake(request):
            return error_response(request, error_pages.BAD_WEBSOCKET_HANDSHAKE)
        desk = ctx.tenant.upstream_origin
        assert desk is not None  # a tenant that does not proxy is answered before (own_routes)
        url = URL(desk + ctx.target, encoded=True)
        if ctx.identity_headers is not None:
            headers.extend(ctx.identity_headers.fields)
        return await _proxy_websocket(request, ctx, request.app[UPSTREAM_SESSION], url, headers)
    origin = ctx.tenant.origin
    assert origin is not None  # a tenant that does not proxy is answered before (own_routes)
    started = time.monotonic()
    try:
        upstream = await request.app[UPSTREAM_POOL].request(
            origin,
            request.method,
            ctx.target,
            headers,
            request.content if request.body_exists else None,
            ctx.identity_headers.block if ctx.identity_headers is not None else None,
        )
    except UnsendableRequest:
        return error_response(request, error_pages.UNFORWARDABLE_REQUEST)
    except (TimeoutError, UpstreamError, OSError) as exc:
        return _failure(request, ctx, exc)
    ctx.upstream_seconds = time.monotonic() - started
    latency_histogram(ctx.tenant.host).observe(ctx.upstream_seconds)
    try:
        headers_out = end_to_end(upstream.headers)
        headers_out.extend(ctx.response_headers)
        if ctx.identity is not None:  # signed in (public paths never are)
            signed_in_no_store(ctx, headers_out)
        length = upstream.content_length
        if length is not None and length <= SMALL_BODY and _has_body(request, upstream.status):
            return await _small_response(request, ctx, upstream, headers_out)
        return await _streamed_response(request, ctx, upstream, headers_out)
    finally:
        upstream.release()


# Bodies up to this size with a Content-Length are read whole and answered in one write:
# most desk pages and API answers. Larger or unsized bodies stream chunk by chunk.
SMALL_BODY = 64 * 1024


def _has_body(request: web.Request, status: int) -> bool:
    return request.method != "HEAD" and status not in (204, 304) and status >= 200


async def _small_response(
    request: web.Request,
    ctx: RequestScope,
    upstream: UpstreamResponse,
    headers: CIMultiDict[str],
) -> web.StreamResponse:
    try:
        body = await upstream.read()
    except UpstreamError as exc:
        return _failure(request, ctx, exc)  # nothing was sent yet: a clean 502/504
    headers.popall("Content-Length", None)
    response = web.Response(status=upstream.status, reason=upstream.reason, body=body)
    had_type = "Content-Type" in headers
    response.headers.extend(headers)
    if not had_type:
        # Stay transparent: no Content-Type the desk did not send.
        response.headers.popall("Content-Type", None)
    return response


async def _streamed_response(
    request: web.Request,
    ctx: RequestScope,
    upstream: UpstreamResponse,
    headers: CIMultiDict[str],
) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    response.headers.extend(headers)
    if request.version < aiohttp.HttpVersion11 and upstream.content_length is None:
        # SECURITY: HTTP/1.0 has no chunked coding, so this body ends only with the
        # connection (RFC 9112 §6.3 rule 8); kept open, the next response on it would
        # read as part of this body.
        response.force_close()
    try:
        await response.prepare(request)
        while True:
            try:
                chunk = await upstream.read_chunk()
            except UpstreamError as exc:
                # The desk failed mid-body. Headers are gone already: the only honest
                # signal left to the client is a cut connection.
                logs.error(
                    "stream_interrupted",
                    request_id=ctx.request_id,
                    tenant=ctx.tenant.host,
                    kind=type(exc).__name__,
                )
                metrics.UPSTREAM_ERRORS.labels(ctx.tenant.host, "stream_interrupted").inc()
                if request.transport is not None:
                    request.transport.close()
                return response
            if not chunk:
                break
            await response.write(chunk)
        await response.write_eof()
    except ConnectionResetError:
        # The client went away (closed the tab, cancelled the download): not a desk
        # error and not ours; the access log line says so.
        ctx.log_fields["client_disconnected"] = True
    return response


_LATENCY: dict[str, Histogram] = {}


def latency_histogram(tenant: str) -> Histogram:
    child = _LATENCY.get(tenant)
    if child is None:
        child = _LATENCY[tenant] = metrics.UPSTREAM_LATENCY.labels(tenant)
    return child


# SECURITY: a message is assembled whole before it is relayed, so its size is capped
# (larger ones close the socket with 1009): an unauthenticated client on a public
# path must not make the sidecar buffer gigabytes.
WS_MAX_MESSAGE = 16 * 1024 * 1024


async def _proxy_websocket(
    request: web.Request,
    ctx: RequestScope,
    session: aiohttp.ClientSession,
    url: URL,
    headers: CIMultiDict[str],
) -> web.StreamResponse:
    protocols = [
        p.strip()
        for value in request.headers.getall("Sec-WebSocket-Protocol", [])
        for p in value.split(",")
        if p.strip()
    ]
    for name in [k for k in headers if k.lower() in _WS_HANDSHAKE]:
        headers.popall(name, None)
    try:
        upstream = await session.ws_connect(
            url.with_scheme("wss" if url.scheme == "https" else "ws"),
            headers=headers,
            protocols=protocols,
            autoping=False,
            max_msg_size=WS_MAX_MESSAGE,
        )
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return _failure(request, ctx, exc)
    client = web.WebSocketResponse(
        protocols=[upstream.protocol] if upstream.protocol else (),
        autoping=False,
        max_msg_size=WS_MAX_MESSAGE,
    )
    try:
        await client.prepare(request)
    except BaseException:
        await upstream.close()  # never leave the desk-side socket open
        raise

    async def pump(
        source: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
        sink: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
    ) -> None:
        async for message in source:
            if message.type == aiohttp.WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.PING:
                await sink.ping(message.data)
            elif message.type == aiohttp.WSMsgType.PONG:
                await sink.pong(message.data)
        # The far side closed: pass its close code on (1000 when it sent none).
        if not sink.closed:
            await sink.close(code=source.close_code or 1000)

    tasks = [
        asyncio.ensure_future(pump(client, upstream)),
        asyncio.ensure_future(pump(upstream, client)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.wait(tasks, timeout=5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
        if not client.closed:
            await client.close()
    return client
