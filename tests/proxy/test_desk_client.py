"""The desk client (sidecar/upstream.py) against scripted raw HTTP servers on loopback.

Each desk here answers with exact bytes, so the cases a well-behaved aiohttp desk
never produces (stray bytes, HEAD with a length, 1xx, bodies until EOF, broken
heads, silence) are exercised on a real socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import StreamReader
from multidict import CIMultiDict

from sidecar.upstream import (
    MAX_HEAD_BYTES,
    QUARANTINE_SECONDS,
    SETTLE_SECONDS,
    Origin,
    UnsendableRequest,
    UpstreamDisconnected,
    UpstreamPool,
    UpstreamProtocolError,
    UpstreamTimeout,
    request_head,
)

# A desk script: reads one request head (and body) from the reader, writes an answer.
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


@dataclass
class RawDesk:
    origin: Origin
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


async def read_request(reader: asyncio.StreamReader, with_body: bool = True) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n") if with_body else []:
        if line.lower().startswith(b"content-length:"):
            head += await reader.readexactly(int(line.split(b":")[1]))
        if line.lower() == b"transfer-encoding: chunked":
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.strip(), 16)
                head += size_line + await reader.readexactly(size + 2)
                if size == 0:
                    break
    return head


@pytest.fixture
async def desk_with() -> AsyncIterator[Callable[[Script], Awaitable[RawDesk]]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script, read_body: bool = True) -> RawDesk:
        desk = RawDesk(Origin("http", "127.0.0.1", 0))

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            desk.connections += 1
            number = 0
            try:
                while True:
                    try:
                        request = await read_request(reader, read_body)
                    except (asyncio.IncompleteReadError, ConnectionError):
                        return
                    desk.requests.append(request)
                    number += 1
                    if not await script(reader, writer, number):
                        return
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        desk.origin = Origin("http", "127.0.0.1", server.sockets[0].getsockname()[1])
        return desk

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    the_pool = UpstreamPool(connect_timeout=2, read_timeout=1)
    yield the_pool
    await the_pool.close()


def answer(raw: bytes, keep_open: bool = True) -> Script:
    async def script(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> bool:
        writer.write(raw)
        await writer.drain()
        return keep_open

    return script


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Desk: yes\r\n\r\nhello"


async def rest() -> None:
    """Long enough for a released connection to settle and become reusable."""
    await asyncio.sleep(SETTLE_SECONDS + 0.02)


HEADERS = CIMultiDict({"Host": "desk.example.test"})


async def get(pool: UpstreamPool, desk: RawDesk, method: str = "GET") -> tuple[int, bytes]:
    response = await pool.request(desk.origin, method, "/x", HEADERS)
    try:
        return response.status, await response.read()
    finally:
        response.release()


async def test_keep_alive_connection_is_reused(desk_with, pool) -> None:
    desk = await desk_with(answer(OK))
    for _ in range(3):
        response = await pool.request(desk.origin, "GET", "/x?y=1", HEADERS)
        assert (response.status, response.reason) == (200, "OK")
        assert response.headers["X-Desk"] == "yes"
        assert response.content_length == 5
        assert await response.read() == b"hello"
        response.release()
        await rest()
    assert desk.connections == 1
    assert desk.requests[0].startswith(b"GET /x?y=1 HTTP/1.1\r\nHost: desk.example.test\r\n")


async def test_a_connection_is_not_reused_before_it_has_rested(desk_with, pool) -> None:
    """Bytes a desk sends just after a response must find the connection idle, not busy."""
    desk = await desk_with(answer(OK))
    assert await get(pool, desk) == (200, b"hello")
    assert await get(pool, desk) == (200, b"hello")  # at once: a second connection
    await rest()
    assert await get(pool, desk) == (200, b"hello")
    assert desk.connections == 2


async def test_chunked_body_is_decoded_and_trailers_dropped(desk_with, pool) -> None:
    desk = await desk_with(
        answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
    )
    response = await pool.request(desk.origin, "GET", "/", HEADERS)
    assert response.content_length is None
    assert await response.read() == b"hello world"
    assert "X-Trailer" not in response.headers
    response.release()
    await rest()
    assert await get(pool, desk) == (200, b"hello world")
    assert desk.connections == 1


async def test_body_until_close_ends_with_the_connection(desk_with, pool) -> None:
    desk = await desk_with(answer(b"HTTP/1.1 200 OK\r\n\r\nall of it", keep_open=False))
    assert await get(pool, desk) == (200, b"all of it")
    assert await get(pool, desk) == (200, b"all of it")
    assert desk.connections == 2


async def test_head_response_with_length_has_no_body_and_the_connection_is_not_reused(
    desk_with, pool
) -> None:
    desk = await desk_with(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"))
    assert await get(pool, desk, "HEAD") == (200, b"")
    assert await get(pool, desk, "HEAD") == (200, b"")
    assert desk.connections == 2


async def test_interim_responses_are_skipped(desk_with, pool) -> None:
    desk = await desk_with(
        answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK)
    )
    response = await pool.request(desk.origin, "GET", "/", HEADERS)
    assert response.status == 200
    assert "Link" not in response.headers
    assert await response.read() == b"hello"
    response.release()


async def test_stray_bytes_after_a_response_never_answer_the_next_request(desk_with, pool) -> None:
    """Response queue poisoning: a desk that sends a second response unasked."""
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"
    desk = await desk_with(answer(OK + smuggled))
    assert await get(pool, desk) == (200, b"hello")
    assert await get(pool, desk) == (200, b"hello")
    assert desk.connections == 2


async def test_stale_idle_connection_is_retried_for_a_get(desk_with, pool) -> None:
    async def close_after_answer(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        w.write(OK)  # says keep-alive, then closes: the race RFC 9112 §9.3.1 describes
        await w.drain()
        return False

    desk = await desk_with(close_after_answer)
    assert await get(pool, desk) == (200, b"hello")
    await asyncio.sleep(0.05)
    assert await get(pool, desk) == (200, b"hello")
    assert desk.connections == 2


async def test_a_request_with_a_body_is_never_retried(desk_with, pool) -> None:
    async def hang_up(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        return False

    desk = await desk_with(hang_up)
    body = body_of(b"data")
    headers = CIMultiDict({"Host": "d", "Content-Length": "4"})
    with pytest.raises(UpstreamDisconnected):
        await pool.request(desk.origin, "POST", "/", headers, body)
    assert desk.connections == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n",
    ],
    ids=[
        "two-lengths",
        "length-and-chunked",
        "bad-status",
        "no-colon",
        "bare-cr",
        "upgrade",
        "huge",
    ],
)
async def test_a_broken_response_is_an_error_not_a_response(desk_with, pool, raw) -> None:
    desk = await desk_with(answer(raw))
    with pytest.raises(UpstreamProtocolError):
        await get(pool, desk)


async def test_silence_times_out_and_a_cut_body_is_an_error(desk_with, pool) -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        await asyncio.sleep(5)
        return False

    desk = await desk_with(silent)
    with pytest.raises(UpstreamTimeout):
        await get(pool, desk)

    desk = await desk_with(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", False))
    response = await pool.request(desk.origin, "GET", "/", HEADERS)
    with pytest.raises(UpstreamDisconnected):
        await response.read()
    response.release()


async def test_unsized_upload_is_sent_chunked_and_a_sized_one_as_is_each_on_its_own_connection(
    desk_with, pool
) -> None:
    desk = await desk_with(answer(OK))
    for headers, expected in [
        (CIMultiDict({"Host": "d"}), b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        (CIMultiDict({"Host": "d", "Content-Length": "3"}), b"Content-Length: 3\r\n\r\nabc"),
    ]:
        body = body_of(b"abc")
        response = await pool.request(desk.origin, "POST", "/up", headers, body)
        assert await response.read() == b"hello"
        response.release()
        await rest()
        assert desk.requests[-1].endswith(expected)
    assert desk.connections == 2


async def test_an_early_answer_to_an_upload_closes_the_connection(desk_with, pool) -> None:
    async def refuse(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        w.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
        await w.drain()
        return True

    desk = await desk_with(refuse, read_body=False)
    body = body_of(b"x" * 10, eof=False)  # the rest of the announced 100 bytes is not there yet
    headers = CIMultiDict({"Host": "d", "Content-Length": "100"})
    response = await pool.request(desk.origin, "POST", "/", headers, body)
    assert response.status == 413
    assert await response.read() == b""
    response.release()
    assert await get(pool, desk) == (413, b"")
    assert desk.connections == 2


async def test_a_slow_reader_bounds_what_is_buffered(desk_with, pool) -> None:
    size = 8 * 1024 * 1024

    async def big(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            w.write(b"z" * 65536)
            await w.drain()
        return True

    desk = await desk_with(big)
    response = await pool.request(desk.origin, "GET", "/", HEADERS)
    received, largest = 0, 0
    while chunk := await response.read_chunk():
        received += len(chunk)
        largest = max(largest, len(chunk))
        await asyncio.sleep(0.005)
    response.release()
    assert received == size
    # Reading pauses above 256 KiB buffered; what one socket read adds comes on top.
    assert largest <= 1024 * 1024


def test_request_head_refuses_line_breaks_and_nul() -> None:
    for name, value in [("X-A", "a\r\nX-Injected: 1"), ("X-A", "a\nb"), ("X-A", "a\0")]:
        with pytest.raises(UnsendableRequest):
            request_head("GET", "/", CIMultiDict({name: value}), chunked=False)
    with pytest.raises(UnsendableRequest):
        request_head("GET", "/a b", CIMultiDict(), chunked=False)
    assert request_head("GET", "/é", CIMultiDict({"X-N": "é"}), chunked=False) == (
        "GET /é HTTP/1.1\r\nX-N: é\r\n\r\n".encode()
    )


async def test_unreachable_desk_is_an_os_error(pool) -> None:
    with pytest.raises(ConnectionRefusedError):
        await pool.request(Origin("http", "127.0.0.1", 1), "GET", "/", HEADERS)


class _Protocol:
    """What aiohttp's StreamReader needs of a protocol for flow control."""

    _reading_paused = False
    connected = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


def body_of(data: bytes, *, eof: bool = True) -> StreamReader:
    """A request body as the sidecar's proxy hands it over (aiohttp's StreamReader)."""
    body = StreamReader(_Protocol(), 2**16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    body.feed_data(data)
    if eof:
        body.feed_eof()
    return body


async def test_an_answer_before_the_upload_was_sent_whole_is_never_followed_on_that_connection(
    desk_with, pool
) -> None:
    """Found by review: the desk answers before the body, the upload then completes
    before the response is released. A desk that skipped the body would take it for a
    request of its own, and its answer would reach the next user of the connection."""
    smuggled = b"GET /admin HTTP/1.1\r\nHost: d\r\nX-TicketLog-User: admin\r\n\r\n"

    async def answer_first(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        if desk.requests[-1].startswith(b"POST"):  # answered at once, its end sent late
            w.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nno")
            await w.drain()
            await asyncio.sleep(0.2)
            w.write(b"pe")
        else:
            await asyncio.sleep(0.3)  # slow: the smuggled request's answer comes late
            target = desk.requests[-1].split(b" ")[1]
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(target), target))
        await w.drain()
        return True

    desk = await desk_with(answer_first, read_body=False)
    body = body_of(smuggled[:10], eof=False)
    asyncio.get_running_loop().call_later(0.1, body.feed_data, smuggled[10:])
    asyncio.get_running_loop().call_later(0.1, body.feed_eof)
    headers = CIMultiDict({"Host": "d", "Content-Length": str(len(smuggled))})
    response = await pool.request(desk.origin, "POST", "/upload", headers, body)
    assert (response.status, await response.read()) == (401, b"nope")
    response.release()
    # Never the answer to the smuggled GET /admin: a fresh connection answers /x.
    assert await get(pool, desk) == (200, b"/x")
    assert desk.connections == 2


async def test_a_connection_that_carried_a_body_is_never_reused(desk_with, pool) -> None:
    """The desk may have left the body unread: it would read it as a request of its own."""
    desk = await desk_with(answer(OK))
    body = body_of(b"abc", eof=False)  # the client's end of body comes later
    asyncio.get_running_loop().call_later(0.2, body.feed_eof)
    headers = CIMultiDict({"Host": "d", "Content-Length": "3"})
    response = await pool.request(desk.origin, "POST", "/", headers, body)
    assert await response.read() == b"hello"
    response.release()
    await rest()
    assert await get(pool, desk) == (200, b"hello")
    assert desk.connections == 2


@pytest.mark.parametrize(
    ("body", "announced"), [(b"abcdef", 3), (b"ab", 3)], ids=["longer", "shorter"]
)
async def test_a_body_that_does_not_match_its_length_fails_and_closes_the_connection(
    desk_with, pool, body: bytes, announced: int
) -> None:
    desk = await desk_with(answer(OK))  # reads exactly Content-Length bytes, then answers
    headers = CIMultiDict({"Host": "d", "Content-Length": str(announced)})
    with pytest.raises(UpstreamDisconnected):
        await pool.request(desk.origin, "POST", "/", headers, body_of(body))
    await rest()
    assert await get(pool, desk) == (200, b"hello")
    # The desk never read a whole POST: not a byte past the announced length was sent (it
    # would start the desk's next request), and the short one was cut off, not waited on.
    assert [r.split(b" ", 1)[0] for r in desk.requests] == [b"GET"]
    assert desk.connections == 2


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
)
async def test_a_bodiless_status_announcing_a_body_closes_its_connection(
    desk_with, pool, head: bytes
) -> None:
    desk = await desk_with(answer(head))
    status, body = await get(pool, desk)
    assert (status, body) in ((204, b""), (304, b""))
    await rest()
    await get(pool, desk)
    assert desk.connections == 2


async def test_a_304_with_no_framing_keeps_its_connection(desk_with, pool) -> None:
    desk = await desk_with(answer(b'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\n\r\n'))
    assert await get(pool, desk) == (304, b"")
    await rest()
    assert await get(pool, desk) == (304, b"")
    assert desk.connections == 1


async def test_an_interim_response_announcing_a_body_is_an_error(desk_with, pool) -> None:
    desk = await desk_with(answer(b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n" + OK))
    with pytest.raises(UpstreamProtocolError):
        await pool.request(desk.origin, "GET", "/", HEADERS)


@pytest.mark.parametrize("char", [b"\x00", b"\x01", b"\x0b", b"\x1f", b"\x7f"])
async def test_control_characters_in_the_reason_phrase_are_a_protocol_error(
    desk_with, pool, char: bytes
) -> None:
    desk = await desk_with(answer(b"HTTP/1.1 200 O" + char + b"K\r\nContent-Length: 0\r\n\r\n"))
    with pytest.raises(UpstreamProtocolError):
        await pool.request(desk.origin, "GET", "/", HEADERS)


async def test_a_reason_phrase_in_another_charset_gives_way_to_the_standard_one(
    desk_with, pool
) -> None:
    desk = await desk_with(answer(b"HTTP/1.1 200 Gr\xf6\xdfe\r\nContent-Length: 0\r\n\r\n"))
    response = await pool.request(desk.origin, "GET", "/", HEADERS)
    assert (response.status, response.reason) == (200, None)
    response.release()


async def test_a_header_value_that_is_not_utf_8_is_a_protocol_error(desk_with, pool) -> None:
    desk = await desk_with(answer(b"HTTP/1.1 200 OK\r\nX-A: caf\xe9\r\nContent-Length: 0\r\n\r\n"))
    with pytest.raises(UpstreamProtocolError):
        await pool.request(desk.origin, "GET", "/", HEADERS)


async def test_a_desk_that_sent_unasked_bytes_gets_no_connection_reused(desk_with) -> None:
    reported: list[tuple[Origin, str]] = []
    pool = UpstreamPool(
        connect_timeout=2, read_timeout=1, on_desync=lambda o, what: reported.append((o, what))
    )
    try:
        calls = 0

        async def stray_once(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
            nonlocal calls
            calls += 1
            w.write(OK)
            await w.drain()
            if calls == 1:
                await asyncio.sleep(0.005)
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
            return True

        desk = await desk_with(stray_once)
        assert await get(pool, desk) == (200, b"hello")
        for _ in range(3):
            await rest()
            assert await get(pool, desk) == (200, b"hello")
        assert desk.connections == 4  # the stray closed the first; no reuse since
        assert reported == [(desk.origin, "bytes on an idle connection")]
        assert QUARANTINE_SECONDS >= 60
    finally:
        await pool.close()


async def test_bytes_waiting_unread_on_the_socket_stop_its_reuse(desk_with, pool) -> None:
    """The kernel holds bytes the event loop has not read yet: the socket is looked at."""

    async def late_junk(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        w.write(OK)
        await w.drain()
        if n == 1:
            await asyncio.sleep(0.005)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
            await w.drain()
        return True

    desk = await desk_with(late_junk)
    response = await pool.request(desk.origin, "GET", "/", HEADERS)
    connection = response._connection
    assert await response.read() == b"hello"
    response.release()
    assert connection.transport is not None
    connection.transport.pause_reading()  # as if the loop had not come round to it yet
    await rest()
    assert await get(pool, desk) == (200, b"hello")
    assert connection.closed
    assert desk.connections == 2


async def test_a_body_on_an_interim_response_is_an_error(desk_with, pool) -> None:
    desk = await desk_with(answer(b"HTTP/1.1 199 Odd\r\nContent-Length: 9\r\n\r\nINJECTED!" + OK))
    with pytest.raises(UpstreamProtocolError):
        await get(pool, desk)


async def test_an_endless_header_line_is_refused_without_waiting_for_its_end(
    desk_with, pool
) -> None:
    async def endless(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nX-Long: ")
        for _ in range(64):  # 4 MiB and no line end
            w.write(b"a" * 65536)
            await w.drain()
        await asyncio.sleep(5)
        return False

    desk = await desk_with(endless)
    with pytest.raises(UpstreamProtocolError):
        await get(pool, desk)  # before the pool's 1 s read timeout


async def test_a_status_line_split_across_reads_keeps_its_whole_reason(desk_with, pool) -> None:
    async def split(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        w.write(b"HTTP/1.1 404 Not ")
        await w.drain()
        await asyncio.sleep(0.05)
        w.write(b"Found\r\nContent-Length: 0\r\n\r\n")
        await w.drain()
        return True

    desk = await desk_with(split)
    response = await pool.request(desk.origin, "GET", "/", HEADERS)
    assert (response.status, response.reason) == (404, "Not Found")
    response.release()


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_a_response_that_does_not_keep_alive_closes_its_connection(
    desk_with, pool, raw: bytes
) -> None:
    desk = await desk_with(answer(raw))
    assert await get(pool, desk) == (200, b"hello")
    await rest()
    assert await get(pool, desk) == (200, b"hello")
    assert desk.connections == 2


async def test_a_reader_that_stops_early_closes_the_connection(desk_with, pool) -> None:
    """The rest of an unread body would be read as the next response."""
    body = b"x" * 300_000
    desk = await desk_with(
        answer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    )
    response = await pool.request(desk.origin, "GET", "/", HEADERS)
    assert await response.read_chunk()  # some of the body, not all
    response.release()
    await rest()
    assert (await get(pool, desk))[1] == body
    assert desk.connections == 2
