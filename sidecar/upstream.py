"""The desk client: pooled keep-alive HTTP/1.1 connections, responses parsed by llhttp.

Why not aiohttp's `ClientSession`, which the rest of the sidecar uses: the profile of
the authenticated path (docs/performance.md) put `ClientSession` at about half of
the CPU of a proxied request, most of it generic machinery a reverse proxy does not
need (cookie jar, redirects, auth, URL building, traces). This client does only what
the proxy does: take an idle connection to the desk (or open one), write the request
head (and stream the body), parse the response with llhttp (the `httptools` binding,
the parser behind uvicorn and Node.js), and hand the body over chunk by chunk with
flow control. WebSocket upgrades still go through `ClientSession.ws_connect`.

What it guarantees (request smuggling and response desynchronisation, RFC 9112 §6.3,
§9.3, §11.2), each sentence proved by tests/proxy/test_desk_client.py and tests/smuggling/:

- A request goes out framed one way only: its head is refused before anything is sent
  if a field holds CR, LF or NUL; a sized body is sent as exactly its Content-Length
  bytes (a body that runs short or long fails the exchange and closes the connection);
  an unsized one is sent chunked.
- A connection is reused only after a complete response whose end is certain
  (Content-Length or chunked, both sides keeping it alive), to a request without a
  body. A request body may be left unread by the desk, which would then read it as a
  request of its own and send its answer to the next user: so a connection that
  carried a body is closed after its exchange.
- Responses that cannot carry a body but announce one (a HEAD response; 1xx, 204 or
  304 with Content-Length or Transfer-Encoding) end their exchange at the head, and
  their connection is closed: late body bytes would read as the next response.
- Bytes nobody asked for close the connection they arrive on. A connection rests for
  SETTLE_SECONDS after its response before it is reused, and is reused only if no byte
  is waiting on its socket at that moment; a desk that has sent bytes nobody asked for
  gets no connection reused for QUARANTINE_SECONDS.
- A response head the sidecar could not relay as it came (control characters in the
  reason phrase, header values that are not UTF-8, a head over MAX_HEAD_BYTES, any
  parse error) is an UpstreamProtocolError, which the proxy answers with a 502 page.
- A timeout, a parse error or a reader that stopped early closes the connection.
"""

from __future__ import annotations

import asyncio
import http
import re
import select
import ssl
from collections import deque
from collections.abc import Callable
from typing import cast

import httptools
from aiohttp import StreamReader
from multidict import CIMultiDict

from sidecar.desk_wire import HeadBlock, Origin, UnsendableRequest, only_line_ends

# Response heads larger than this are refused (aiohttp's client allows 8 KiB a line).
MAX_HEAD_BYTES = 64 * 1024
# Body bytes buffered from the desk before reading from it pauses (flow control):
# a slow client must not make the sidecar hold a whole download. Reading resumes once
# the reader has taken what was buffered.
_PAUSE_ABOVE = 256 * 1024
# Idle connections kept per desk, and for how long (the desk may close them sooner).
MAX_IDLE_PER_ORIGIN = 512
KEEPALIVE_SECONDS = 30.0
# How long a connection rests after its response before it may carry another request:
# bytes a desk sends after a complete response arrive while it rests, and close it
# instead of being read as the answer to the next user's request.
SETTLE_SECONDS = 0.025
# After a desk sent bytes nobody asked for, none of its connections is reused for this
# long: it has shown it can put a response where the next one is expected.
QUARANTINE_SECONDS = 300.0
# RFC 9110 §9.2.2: only idempotent requests may be retried automatically, and only
# those without a body are retried here (the body was streamed and is gone).
_RETRYABLE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class UpstreamError(Exception):
    """The desk could not be reached, or broke the exchange."""


class UpstreamTimeout(UpstreamError, TimeoutError):
    """The desk sent nothing for `upstream_read_timeout`."""


class UpstreamDisconnected(UpstreamError):
    """The desk closed the connection before its response was complete."""


class UpstreamProtocolError(UpstreamError):
    """The desk's response is not valid HTTP/1.1 (or is too large a head)."""


# RFC 9112 §4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ). Control characters
# make the status line invalid (and aiohttp would refuse to write them to the client).
_REASON_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_READABLE = select.POLLIN | select.POLLPRI
_FRAMING_FIELDS = (b"content-length", b"transfer-encoding")
# The usual phrases, decoded once (a desk answers "OK" nearly every time).
_STANDARD_REASONS = {s.phrase.encode(): s.phrase for s in http.HTTPStatus}
# A 408 sent on an idle connection is how some servers say they close it: not a desync.
_IDLE_TIMEOUT_NOTICE = (b"HTTP/1.1 408", b"HTTP/1.0 408")


def request_head(
    method: str,
    target: str,
    headers: CIMultiDict[str],
    *,
    chunked: bool,
    extra: HeadBlock | None = None,
) -> bytes:
    """The request line and header block (`headers`, then `extra`), as bytes for the wire.

    SECURITY: no line break or NUL inside a field, no space in the target (request
    splitting). Incoming values were already parsed strictly: this guards our own code.
    """
    fields = [*map(": ".join, headers.items())]  # joined in C: this runs per request
    if chunked:
        fields.append("Transfer-Encoding: chunked")
    fields.append("")
    head = f"{method} {target} HTTP/1.1\r\n" + "\r\n".join(fields)
    if not only_line_ends(head, len(fields)) or " " in target or not target.startswith("/"):
        raise UnsendableRequest("the request head has a line break or NUL in a field")
    # Values came from aiohttp's parser as UTF-8 with surrogate escapes: the same bytes go on.
    wire = head.encode("utf-8", "surrogateescape")
    # `extra` was checked when it was made, and brings the empty line that ends the head.
    return wire + extra.closing if extra is not None else wire + b"\r\n"


class UpstreamResponse:
    """One response from the desk. Read its body, then `release()` it (always)."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_complete",
        "_connection",
        "_error",
        "_waiter",
        "content_length",
        "headers",
        "reason",
        "status",
    )

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._complete = False
        self.status = 0
        self.reason: str | None = None
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.content_length: int | None = None

    async def read_chunk(self) -> bytes:
        """The body bytes received since the last call; b"" once the body is complete."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            self._waiter = self._connection.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self._connection.body_taken()
        return chunk

    async def read(self) -> bytes:
        """The whole body (for small, sized bodies)."""
        parts = []
        while chunk := await self.read_chunk():
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """The connection goes back to the pool if the exchange ended cleanly, else closes."""
        self._connection.finish(self)

    # ---- fed by the connection ----------------------------------------------------------

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _add(self, data: bytes) -> int:
        self._chunks.append(data)
        self._buffered += len(data)
        self._wake()
        return self._buffered

    def _end(self) -> None:
        self._complete = True
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if not self._complete and self._error is None:
            self._error = error
            self._wake()


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a desk; at most one exchange at a time (no pipelining)."""

    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.fd = -1
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        # The exchange in progress.
        self.response: UpstreamResponse | None = None
        self.head_ready: asyncio.Future[UpstreamResponse] | None = None
        self.method_is_head = False
        self.received_any = False
        self.head_bytes = 0  # bytes received while the response head is awaited
        self.header_bytes = 0  # of the headers parsed so far (trailers included)
        self.status_text = b""
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.interim = False
        self.until_eof = False
        self.keep_alive = False
        self.carried_body = False
        self.body_task: asyncio.Task[None] | None = None
        # Flow control both ways.
        self.reading_paused = False
        self.writing_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        # Read timeout: checked lazily against the time bytes last moved.
        self.last_activity = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # ---- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1

    def data_received(self, data: bytes) -> None:
        if self.response is None:
            # SECURITY: bytes nobody asked for (response desync): never reuse this connection,
            # nor, for a while, any other of a desk that does this.
            if not data.startswith(_IDLE_TIMEOUT_NOTICE):
                self.pool.distrust(self.origin, "bytes on an idle connection")
            self.abort()
            return
        self.received_any = True
        self.last_activity = self.loop.time()
        if self.head_ready is not None:
            # llhttp hands a header over only once its line has ended: bytes are counted
            # here, so a desk cannot make us hold an endless head (memory exhaustion).
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(UpstreamProtocolError("the desk switched protocols unasked"))
        except httptools.HttpParserError as exc:
            error = exc.__context__ if isinstance(exc.__context__, UpstreamError) else exc
            self.fail(
                error
                if isinstance(error, UpstreamError)
                else UpstreamProtocolError("the desk's response is not valid HTTP/1.1")
            )
            return
        if self.head_ready is not None and self.head_bytes > MAX_HEAD_BYTES:
            self.fail(UpstreamProtocolError("the desk's response head is too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.timer is not None:
            self.timer.cancel()
        response = self.response
        if response is not None and not response._complete:
            if self.until_eof and exc is None and self.head_ready is None:
                response._end()  # RFC 9112 §6.3 rule 8: the body ends with the connection
            else:
                self.fail(UpstreamDisconnected("the desk closed the connection"))
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_exception(UpstreamDisconnected("the desk closed the connection"))

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    # ---- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.response is None or self.response._complete:
            self.pool.distrust(self.origin, "bytes after a complete response")
            raise UpstreamProtocolError("the desk sent a response nobody asked for")
        self.raw_headers = []
        self.header_bytes = 0
        self.status_text = b""

    def on_status(self, status: bytes) -> None:
        # Called once per piece when the status line arrives in more than one read.
        self.status_text += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > MAX_HEAD_BYTES:
            raise UpstreamProtocolError("the desk's response head is too large")
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        status = self.parser.get_status_code()
        if status < 200:
            # 1xx interim responses (e.g. 100 Continue, 103 Early Hints) are not relayed.
            self.interim = True
            if any(n.lower() in _FRAMING_FIELDS for n, _ in self.raw_headers):
                raise UpstreamProtocolError("the desk announced a body on a 1xx response")
            return
        response.status = status
        response.reason = _STANDARD_REASONS.get(self.status_text) or _reason_phrase(
            self.status_text
        )
        headers = response.headers
        length: str | None = None
        coded = chunked = False
        for raw_name, raw_value in self.raw_headers:
            name = raw_name.decode("latin-1")  # llhttp accepted it: token characters only
            try:
                value = raw_value.decode("utf-8")
            except UnicodeDecodeError:
                # obs-text that is not UTF-8: aiohttp writes header values as UTF-8, so
                # these bytes could not reach the client as they came.
                raise UpstreamProtocolError("a header value of the desk is not UTF-8") from None
            headers.add(name, value)
            lowered = name.lower()
            if lowered == "content-length":
                length = value
            elif lowered == "transfer-encoding":
                coded = True
                chunked = value.rstrip().lower().endswith("chunked")  # RFC 9112 §6.3 rule 4
        self.raw_headers = []
        if length is not None:
            response.content_length = int(length)  # llhttp accepted it: digits only
        # llhttp reads no body for these (RFC 9112 §6.3 rules 1-2) whatever the head says.
        no_body = self.method_is_head or status == 204 or status == 304
        self.until_eof = not no_body and length is None and not chunked
        self.keep_alive = self.parser.should_keep_alive()
        if no_body and (self.method_is_head or coded or (length is not None and length != "0")):
            # SECURITY: llhttp cannot know a HEAD response has no body, and a 204 or 304
            # that announces one may send it late: the exchange ends at the head, and the
            # connection is never reused (bytes still to come would read as the next answer).
            self.keep_alive = False
            if self.method_is_head:
                response._end()
        ready, self.head_ready = self.head_ready, None
        if ready is not None and not ready.done():
            ready.set_result(response)

    def on_body(self, body: bytes) -> None:
        response = self.response
        assert response is not None
        if self.interim:
            raise UpstreamProtocolError("the desk sent a body with a 1xx response")
        if response._complete:
            raise UpstreamProtocolError("the desk sent a body to a HEAD request")
        if response._add(body) > _PAUSE_ABOVE and not self.reading_paused and self.transport:
            self.reading_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        response = self.response
        assert response is not None
        if not self.method_is_head:
            self.keep_alive = self.keep_alive and self.parser.should_keep_alive()
            response._end()

    # ---- the exchange ---------------------------------------------------------------------

    async def exchange(
        self,
        head: bytes,
        method: str,
        body: StreamReader | None,
        chunked: bool,
        length: int | None,
    ) -> UpstreamResponse:
        transport = self.transport
        assert transport is not None
        assert self.response is None
        self.received_any = False
        if self.closed or transport.is_closing():
            raise UpstreamDisconnected("the desk closed the connection")
        response = self.response = UpstreamResponse(self)
        self.head_ready = self.loop.create_future()
        self.method_is_head = method == "HEAD"
        self.head_bytes = 0
        self.last_activity = self.loop.time()
        if self.timer is None:
            self.arm_timer()
        transport.write(head)
        self.carried_body = body is not None
        if body is not None:
            self.body_task = self.loop.create_task(self.send_body(body, chunked, length))
        try:
            return await self.head_ready
        except BaseException:
            self.finish(response)
            raise

    async def send_body(self, body: StreamReader, chunked: bool, length: int | None) -> None:
        transport = self.transport
        assert transport is not None
        sent = 0
        try:
            while chunk := await body.readany():
                if self.closed:
                    return
                self.last_activity = self.loop.time()
                if chunked:
                    transport.writelines((f"{len(chunk):x}\r\n".encode(), chunk, b"\r\n"))
                else:
                    sent += len(chunk)
                    if length is not None and sent > length:
                        # SECURITY: bytes past the announced length would be read by the
                        # desk as the start of another request.
                        raise UnsendableRequest("the body is longer than its Content-Length")
                    transport.write(chunk)
                if self.writing_paused:
                    self.drain_waiter = self.loop.create_future()
                    await self.drain_waiter
            if chunked and not self.closed:
                transport.write(b"0\r\n\r\n")
            elif length is not None and sent != length:
                # The desk still waits for the rest: its next bytes would be ours.
                raise UnsendableRequest("the body is shorter than its Content-Length")
        except Exception:
            # The client's upload broke off (or the desk went away): this exchange is over.
            self.fail(UpstreamDisconnected("the request body could not be sent"))
            self.abort()

    # The read timeout. One timer per connection, left running between exchanges and
    # checked lazily against the time bytes last moved: arming a timer per request
    # cost more than the rest of the exchange's bookkeeping.
    def arm_timer(self) -> None:
        deadline = self.last_activity + self.pool.read_timeout
        self.timer = self.loop.call_at(deadline, self.check_timer)

    def check_timer(self) -> None:
        self.timer = None
        response = self.response
        if self.closed or response is None:
            return  # idle: the next exchange arms it again
        if response._complete:
            # Read whole, the caller still busy with it: nothing to time on the desk's side.
            self.last_activity = self.loop.time()
            self.arm_timer()
            return
        if self.reading_paused or self.loop.time() - self.last_activity < self.pool.read_timeout:
            # Waiting on our own client is not the desk's silence; or bytes moved meanwhile.
            if self.reading_paused:
                self.last_activity = self.loop.time()
            self.arm_timer()
            return
        self.fail(UpstreamTimeout("the desk did not answer in time"))
        self.abort()

    def body_taken(self) -> None:
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            self.last_activity = self.loop.time()
            self.transport.resume_reading()

    def fail(self, error: UpstreamError) -> None:
        ready, self.head_ready = self.head_ready, None
        if ready is not None and not ready.done():
            ready.set_exception(error)
        if self.response is not None:
            self.response._fail(error)
        self.abort()

    def abort(self) -> None:
        self.keep_alive = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()

    def finish(self, response: UpstreamResponse) -> None:
        """The caller is done with `response`: pool the connection if it is clean."""
        if self.response is not response:
            return
        self.response = None
        self.head_ready = None
        task, self.body_task = self.body_task, None
        if task is not None and not task.done():
            task.cancel()
        clean = (
            response._complete
            and response._error is None
            and self.keep_alive
            and not self.carried_body
            and not self.closed
            and not self.reading_paused
        )
        if clean:
            self.pool.put(self)
        else:
            self.abort()


def _reason_phrase(raw: bytes) -> str | None:
    """The reason phrase to relay: as sent, or None (aiohttp then writes the standard one).

    SECURITY: control characters would make the status line invalid on the way out.
    """
    if _REASON_CONTROL.search(raw):
        raise UpstreamProtocolError("the desk's reason phrase has control characters")
    if not raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # obs-text in another charset: the phrase means nothing to HTTP (RFC 9112 §4).
        return None


class _IdleConnections:
    """One desk's idle connections: resting ones first in, settled ones last out.

    A connection rests for SETTLE_SECONDS after its response, then joins the settled
    stack, whose top (the most recently settled) is reused first: a few connections stay
    hot and the rest age out.
    """

    __slots__ = ("resting", "settled")

    def __init__(self) -> None:
        self.resting: deque[_Connection] = deque()  # oldest first
        self.settled: list[_Connection] = []  # oldest at the bottom

    def __bool__(self) -> bool:
        return bool(self.resting or self.settled)

    def take(self, now: float) -> _Connection | None:
        resting = self.resting
        cutoff = now - SETTLE_SECONDS
        while resting and resting[0].idle_since <= cutoff:
            self.settled.append(resting.popleft())
        return self.settled.pop() if self.settled else None

    def remove(self, connection: _Connection) -> None:
        for group in (self.resting, self.settled):
            if connection in group:
                group.remove(connection)
                return

    def expire(self, deadline: float) -> None:
        """Closes the connections idle since before `deadline`."""
        for group in (self.resting, self.settled):
            while group and group[0].idle_since < deadline:
                (group.popleft() if isinstance(group, deque) else group.pop(0)).abort()


class UpstreamPool:
    """Keep-alive connections to every desk of this process."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        on_desync: Callable[[Origin, str], None] | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.loop = asyncio.get_running_loop()
        self._idle: dict[Origin, _IdleConnections] = {}
        self._distrusted: dict[Origin, float] = {}  # desk -> until when no reuse
        self._on_desync = on_desync
        self._poller = select.poll()
        self._tls = ssl.create_default_context()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def request(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: StreamReader | None = None,
        extra: HeadBlock | None = None,
    ) -> UpstreamResponse:
        """Sends the request (`headers`, then the lines of `extra`); returns once the
        response head has arrived.

        Raises UpstreamError (or OSError/TimeoutError while connecting), or
        UnsendableRequest before anything was sent.
        """
        chunked = body is not None and "Content-Length" not in headers
        length = None
        if body is not None and not chunked:
            # aiohttp's parser accepted the client's Content-Length (digits only, one
            # value); it goes on in canonical form, so no parser can read "007" otherwise.
            length = int(headers["Content-Length"])
            headers["Content-Length"] = str(length)
        head = request_head(method, target, headers, chunked=chunked, extra=extra)
        while True:
            connection = self._take_idle(origin) or await self._connect(origin)
            try:
                return await connection.exchange(head, method, body, chunked, length)
            except UpstreamDisconnected:
                # A kept-alive connection the desk closed just as we wrote to it (RFC 9112
                # §9.3.1): retried on a fresh connection when nothing came back and the
                # request is idempotent and had no body.
                if not connection.reused or connection.received_any:
                    raise
                if body is not None or method not in _RETRYABLE:
                    raise

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if idle is None:
            return None
        now = self.loop.time()
        while (connection := idle.take(now)) is not None:
            if not connection.closed and self._quiet(connection):
                connection.reused = True
                return connection
            connection.abort()
        return None

    def _quiet(self, connection: _Connection) -> bool:
        """SECURITY: no byte (nor end of stream) waits on the socket at the moment of
        reuse, read by the kernel but not yet by the event loop."""
        if connection.fd < 0:
            return True  # no socket to look at (a transport without one)
        poller = self._poller
        poller.register(connection.fd, _READABLE)
        try:
            return not poller.poll(0)
        finally:
            poller.unregister(connection.fd)

    async def _connect(self, origin: Origin) -> _Connection:
        tls = self._tls if origin.scheme == "https" else None
        async with asyncio.timeout(self.connect_timeout):
            _, protocol = await self.loop.create_connection(
                lambda: _Connection(self, origin), origin.host, origin.port, ssl=tls
            )
        return protocol

    def put(self, connection: _Connection) -> None:
        origin = connection.origin
        idle = self._idle.get(origin)
        if idle is None:
            idle = self._idle[origin] = _IdleConnections()
        now = self.loop.time()
        full = len(idle.resting) + len(idle.settled) >= MAX_IDLE_PER_ORIGIN
        if self._closed or full or (self._distrusted and self._distrusted_now(origin, now)):
            connection.abort()
            return
        connection.idle_since = now
        idle.resting.append(connection)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(KEEPALIVE_SECONDS / 2, self._sweep)

    def distrust(self, origin: Origin, what: str) -> None:
        """The desk at `origin` sent bytes nobody asked for: no reuse for a while."""
        first = not self._distrusted_now(origin, self.loop.time())
        self._distrusted[origin] = self.loop.time() + QUARANTINE_SECONDS
        idle = self._idle.pop(origin, None)
        for connection in [*idle.resting, *idle.settled] if idle is not None else ():
            connection.abort()
        if first and self._on_desync is not None:
            self._on_desync(origin, what)

    def _distrusted_now(self, origin: Origin, now: float) -> bool:
        until = self._distrusted.get(origin)
        return until is not None and until > now

    def forget(self, connection: _Connection) -> None:
        """A connection closed: if it was idle, it leaves the pool."""
        idle = self._idle.get(connection.origin)
        if idle is not None:
            idle.remove(connection)

    def _sweep(self) -> None:
        """Closes connections idle longer than KEEPALIVE_SECONDS."""
        self._sweeper = None
        deadline = self.loop.time() - KEEPALIVE_SECONDS
        for idle in self._idle.values():
            idle.expire(deadline)
        if any(self._idle.values()):
            self._sweeper = self.loop.call_later(KEEPALIVE_SECONDS / 2, self._sweep)

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for connection in [*idle.resting, *idle.settled]:
                connection.abort()
        self._idle.clear()
