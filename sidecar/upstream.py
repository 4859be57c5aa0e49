"""The desk client: pooled keep-alive HTTP/1.1 connections, responses parsed by llhttp.

Why not aiohttp's `ClientSession`, which the rest of the sidecar uses: the profile of
the authenticated path (docs/performance.md) put `ClientSession` at about half of
the CPU of a proxied request, most of it generic machinery a reverse proxy does not
need (cookie jar, redirects, auth, URL building, traces). This client does only what
the proxy does: take an idle connection to the desk (or open one), write the request
head (and stream the body), parse the response with llhttp (the `httptools` binding,
the parser behind uvicorn and Node.js), and hand the body over chunk by chunk with
flow control. WebSocket upgrades still go through `ClientSession.ws_connect`.

SECURITY (request smuggling and response desynchronisation, RFC 9112 §6.3, §9.3,
§11.2): a connection goes back to the pool only after a complete response to a
request that was sent whole, when both sides keep it alive. Anything else (a HEAD
response, whose length llhttp cannot know; an early answer to an upload; a parse
error; bytes nobody asked for; a timeout; a reader that stopped early) closes it,
so no response can ever be read as the answer to someone else's request. The head
is checked for CR, LF and NUL outside its line ends before it is written.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast

import httptools
from aiohttp import StreamReader
from multidict import CIMultiDict
from yarl import URL

# Response heads larger than this are refused (aiohttp's client allows 8 KiB a line).
MAX_HEAD_BYTES = 64 * 1024
# Body bytes buffered from the desk before reading from it pauses (flow control):
# a slow client must not make the sidecar hold a whole download. Reading resumes once
# the reader has taken what was buffered.
_PAUSE_ABOVE = 256 * 1024
# Idle connections kept per desk, and for how long (the desk may close them sooner).
MAX_IDLE_PER_ORIGIN = 256
KEEPALIVE_SECONDS = 30.0
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


class UnsendableRequest(ValueError):
    """The request head would not be one valid HTTP/1.1 head; nothing was sent."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: URL) -> Origin:
        assert url.host is not None
        assert url.port is not None
        return cls(url.scheme, url.host, url.port)


def _only_line_ends(text: str, lines: int) -> bool:
    """SECURITY: header injection and request splitting (RFC 9112 §2.2, §5): the only CR
    and LF in `text` are the ends of its `lines` lines, and there is no NUL."""
    return text.count("\n") == lines and text.count("\r") == lines and "\0" not in text


@dataclass(frozen=True, slots=True)
class HeadBlock:
    """Header lines serialised and checked once, for a set sent on many requests
    (the identity headers of a signed-in user)."""

    data: bytes

    @classmethod
    def of(cls, headers: CIMultiDict[str]) -> HeadBlock:
        text = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if not _only_line_ends(text, len(headers)):
            raise UnsendableRequest("a header has a line break or NUL")
        return cls(text.encode("utf-8", "surrogateescape"))


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
    if not _only_line_ends(head, len(fields)) or " " in target or not target.startswith("/"):
        raise UnsendableRequest("the request head has a line break or NUL in a field")
    # Values came from aiohttp's parser as UTF-8 with surrogate escapes: the same bytes go on.
    wire = head.encode("utf-8", "surrogateescape")
    # `extra` was checked when it was made; then the empty line that ends the head.
    return b"".join((wire, extra.data, b"\r\n")) if extra is not None else wire + b"\r\n"


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
        self.request_sent = False
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

    def data_received(self, data: bytes) -> None:
        if self.response is None:
            # SECURITY: bytes nobody asked for (response desync): never reuse this connection.
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
            return
        response.status = status
        reason = self.status_text
        response.reason = reason.decode("ascii") if reason and reason.isascii() else None
        headers = response.headers
        length: str | None = None
        chunked = False
        for raw_name, raw_value in self.raw_headers:
            name = raw_name.decode("latin-1")
            value = raw_value.decode("utf-8", "surrogateescape")
            headers.add(name, value)
            lowered = name.lower()
            if lowered == "content-length":
                length = value
            elif lowered == "transfer-encoding":
                chunked = value.rstrip().lower().endswith("chunked")  # RFC 9112 §6.3 rule 4
        self.raw_headers = []
        if length is not None:
            response.content_length = int(length)  # llhttp accepted it: digits only
        no_body = self.method_is_head or status in (204, 304)
        self.until_eof = not no_body and length is None and not chunked
        # SECURITY: an answer that came before the request body was sent whole means the
        # desk may not have read that body: it could take the rest for a request of its
        # own, whose answer would go to the next user of the connection. Never reused.
        self.keep_alive = self.request_sent and self.parser.should_keep_alive()
        if self.method_is_head:
            # llhttp cannot know a HEAD response has no body, so the exchange ends here
            # and the connection is never reused (see the module's SECURITY note).
            self.keep_alive = False
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
        if body is None:
            self.request_sent = True
        else:
            self.request_sent = False
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
                    transport.write(chunk)
                    sent += len(chunk)
                    # Sent whole: an answer from now on is not an early one.
                    self.request_sent = sent == length
                if self.writing_paused:
                    self.drain_waiter = self.loop.create_future()
                    await self.drain_waiter
            if chunked and not self.closed:
                transport.write(b"0\r\n\r\n")
            self.request_sent = True
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
            and self.request_sent
            and not self.closed
            and not self.reading_paused
        )
        if clean:
            self.pool.put(self)
        else:
            self.abort()


class UpstreamPool:
    """Keep-alive connections to every desk of this process, reused most-recent first."""

    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.loop = asyncio.get_running_loop()
        self._idle: dict[Origin, list[_Connection]] = {}
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
        # aiohttp's parser accepted the client's Content-Length: digits only, one value.
        length = None if body is None or chunked else int(headers["Content-Length"])
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
        stack = self._idle.get(origin)
        while stack:
            connection = stack.pop()
            if not connection.closed:
                connection.reused = True
                return connection
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        tls = self._tls if origin.scheme == "https" else None
        async with asyncio.timeout(self.connect_timeout):
            _, protocol = await self.loop.create_connection(
                lambda: _Connection(self, origin), origin.host, origin.port, ssl=tls
            )
        return protocol

    def put(self, connection: _Connection) -> None:
        stack = self._idle.setdefault(connection.origin, [])
        if self._closed or len(stack) >= MAX_IDLE_PER_ORIGIN:
            connection.abort()
            return
        connection.idle_since = self.loop.time()
        stack.append(connection)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(KEEPALIVE_SECONDS / 2, self._sweep)

    def forget(self, connection: _Connection) -> None:
        """A connection closed: if it was idle, it leaves the pool."""
        stack = self._idle.get(connection.origin)
        if stack and connection in stack:
            stack.remove(connection)

    def _sweep(self) -> None:
        """Closes connections idle longer than KEEPALIVE_SECONDS (oldest are at the bottom)."""
        self._sweeper = None
        deadline = self.loop.time() - KEEPALIVE_SECONDS
        for stack in self._idle.values():
            while stack and stack[0].idle_since < deadline:
                stack.pop(0).abort()
        if any(self._idle.values()):
            self._sweeper = self.loop.call_later(KEEPALIVE_SECONDS / 2, self._sweep)

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for stack in self._idle.values():
            while stack:
                stack.pop().abort()
