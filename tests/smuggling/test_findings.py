"""Request smuggling and response desynchronisation, each class as a regression test.

Every test drives the real sidecar with raw bytes from a client socket, in front of a
scripted desk that records every byte it receives (tests/smuggling/desk.py). Two things
are checked each time: the desk received exactly the requests the clients sent, framed as
sent (one in, one out); and each client received the answer to its own request, or an
error page of the sidecar's, never bytes meant for someone else.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.helpers import RunningSidecar, base_config, config_from, run_sidecar
from tests.smuggling.client import RawClient, Response, request
from tests.smuggling.desk import (
    DeskRequest,
    RecordingDesk,
    RecordingReader,
    Script,
    answer_bytes,
    echo,
    recording_desk,
)

SMUGGLED = (
    b"GET /admin/delete-everything HTTP/1.1\r\nHost: desk.example.test\r\n"
    b"X-TicketLog-User: admin.tenant\r\nX-TicketLog-Email: admin@contoso.com\r\n"
    b"Content-Length: 300\r\n\r\n"
)


@asynccontextmanager
async def stack(
    script: Script = echo, *, read_bodies: bool = True, **server: Any
) -> AsyncIterator[tuple[RecordingDesk, RunningSidecar]]:
    async with recording_desk(script, read_bodies=read_bodies) as desk:
        document = base_config(desk.url)
        document["server"].update({"upstream_read_timeout": "3s", **server})
        async with run_sidecar(config_from(document)) as sidecar:
            yield desk, sidecar


async def client(sidecar: RunningSidecar) -> RawClient:
    return await RawClient.open(sidecar.listeners.public_port)


def own_answer(response: Response, target: str) -> bool:
    return response.status == 200 and response.body == b"answer to " + target.encode()


def no_identity_header_reached(desk: RecordingDesk) -> bool:
    return all(
        not name.lower().replace(b"_", b"-").startswith(b"x-ticketlog-")
        for r in desk.requests
        for name in r.header_names()
    )


# ---- 1. compressed request bodies --------------------------------------------------------


def _compress(kind: str, data: bytes) -> bytes:
    if kind in ("gzip", "x-gzip"):
        return gzip.compress(data)
    return zlib.compress(data)  # deflate: the zlib format (RFC 9110 §8.4.1.2)


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "GZIP", "gzip, identity"])
async def test_a_compressed_body_is_forwarded_byte_for_byte_not_decompressed(coding: str) -> None:
    # SECURITY: were the body decompressed under the client's Content-Length,
    # the desk would read the rest as a request of its own, identity headers and all.
    compressed = _compress(coding.split(",")[0].strip().lower(), b"x=1&" + SMUGGLED)
    async with stack() as (desk, sidecar):
        c = await client(sidecar)
        await c.send(
            request(
                "/upload", method="POST", headers=[("Content-Encoding", coding)], body=compressed
            )
        )
        assert own_answer(await c.response(), "/upload")
        await c.send(request("/next"))
        assert own_answer(await c.response(), "/next")
        await c.close()
    assert [r.target for r in desk.requests] == [b"/upload", b"/next"]
    assert desk.requests[0].body == compressed
    assert desk.requests[0].headers("Content-Encoding") == [coding.encode()]
    assert no_identity_header_reached(desk)


async def test_a_compressed_chunked_body_is_forwarded_as_sent() -> None:
    compressed = gzip.compress(b"y" * 5000 + SMUGGLED)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(compressed), compressed)
    async with stack() as (desk, sidecar):
        c = await client(sidecar)
        await c.send(
            request(
                "/up",
                method="POST",
                headers=[("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")],
                body=chunked,
            )
        )
        assert own_answer(await c.response(), "/up")
        await c.close()
    assert [r.body for r in desk.requests] == [compressed]


# ---- 2. WebSocket handshakes ------------------------------------------------------------

WS_KEY = base64.b64encode(b"0123456789abcdef").decode()
WS_HEADERS = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", WS_KEY),
    ("Sec-WebSocket-Version", "13"),
]


@pytest.mark.parametrize(
    ("method", "extra", "body"),
    [
        ("GET", [("Content-Length", str(len(SMUGGLED)))], SMUGGLED),
        ("GET", [("Content-Length", "0")], b""),
        (
            "GET",
            [("Transfer-Encoding", "chunked")],
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED),
        ),
        ("POST", [("Content-Length", str(len(SMUGGLED)))], SMUGGLED),
        ("PUT", [], None),
    ],
    ids=["get-with-body", "get-with-empty-length", "get-chunked", "post-with-body", "put"],
)
async def test_a_websocket_handshake_with_a_body_or_another_method_is_refused(
    method: str, extra: list[tuple[str, str]], body: bytes | None
) -> None:
    # SECURITY: the desk would take the announced body from the next bytes on
    # its connection, i.e. from the next user's handshake.
    async with stack() as (desk, sidecar):
        c = await client(sidecar)
        await c.send(request("/ws", method=method, headers=[*WS_HEADERS, *extra], body=body))
        reply = await c.response()
        await c.close()
    assert reply.status == 400
    assert desk.requests == []


async def test_a_websocket_handshake_the_desk_refuses_never_shares_its_connection() -> None:
    # SECURITY: after a non-101 answer the connection must not go back to a pool
    # where the next handshake (or request) would follow bytes the desk still holds.
    async def refuse_upgrades(
        request: DeskRequest, _r: RecordingReader, w: asyncio.StreamWriter
    ) -> bool:
        if request.headers("Upgrade"):
            w.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        else:
            w.write(answer_bytes(request.target))
        await w.drain()
        return True

    async with stack(refuse_upgrades) as (desk, sidecar):
        for target in ("/ws1", "/ws2", "/ws3"):
            c = await client(sidecar)
            await c.send(request(target, headers=WS_HEADERS))
            assert (await c.response()).status in (403, 502)
            await c.close()
    assert [r.connection for r in desk.requests] == [1, 2, 3]
    assert all(r.number == 1 for r in desk.requests)
    assert all(not r.headers("Content-Length") for r in desk.requests)


# ---- 3. 204 and 304 that announce a body ------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 204 No Content\r\nContent-Length: %d\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: %d\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
    ids=["204-length", "304-length", "204-chunked", "304-chunked"],
)
async def test_late_bytes_after_a_204_or_304_never_answer_the_next_request(head: bytes) -> None:
    fake = answer_bytes(b"/late")  # the late bytes look like an answer of their own

    async def no_content_then_late_bytes(
        request: DeskRequest, _r: RecordingReader, w: asyncio.StreamWriter
    ) -> bool:
        if request.target == b"/empty":
            w.write(head.replace(b"%d", str(len(fake)).encode()))
            await w.drain()
            await asyncio.sleep(0.05)
            w.write(fake)
        else:
            w.write(answer_bytes(request.target))
        await w.drain()
        return True

    async with stack(no_content_then_late_bytes) as (_desk, sidecar):
        first = await client(sidecar)
        await first.send(request("/empty"))
        assert (await first.response()).status in (204, 304)
        second = await client(sidecar)  # at once: the late bytes are still to come
        await second.send(request("/victim"))
        assert own_answer(await second.response(), "/victim")
        for c in (first, second):
            await c.close()


# ---- 4. an answer to an upload the desk never read --------------------------------------


async def test_an_upload_the_desk_answers_without_reading_never_answers_the_next_client() -> None:
    # SECURITY: the unread body stays on the desk's connection and is read as
    # the next request there; its answer must not reach the next client.
    # The body is the start of a request: on the desk's connection it swallows the head of
    # whatever comes next there, and its answer goes to whoever sent that.
    body = b"GET /captured HTTP/1.1\r\nHost: desk.example.test\r\nX-Swallow: "
    async with stack(echo, read_bodies=False) as (_desk, sidecar):  # never reads bodies
        for n in range(20):
            c = await client(sidecar)
            await c.send(request(f"/upload{n}", method="POST", body=body))
            assert own_answer(await c.response(), f"/upload{n}")
            await c.send(request(f"/next{n}"))
            assert own_answer(await c.response(), f"/next{n}")
            await c.close()


# ---- 5. stray bytes after a complete response -------------------------------------------


async def test_stray_bytes_a_few_milliseconds_after_a_response_never_answer_anyone() -> None:
    async def stray_later(
        request: DeskRequest, _r: RecordingReader, w: asyncio.StreamWriter
    ) -> bool:
        w.write(answer_bytes(request.target))
        await w.drain()
        await asyncio.sleep(0.003)
        w.write(answer_bytes(b"/stray"))
        await w.drain()
        return True

    wrong: list[tuple[str, int, bytes]] = []

    async with stack(stray_later) as (_desk, sidecar):

        async def user(u: int) -> None:
            c = await client(sidecar)
            try:
                for n in range(50):
                    target = f"/u{u}/r{n}"
                    await c.send(request(target))
                    reply = await c.response()
                    if reply.status == 200 and not own_answer(reply, target):
                        wrong.append((target, reply.status, reply.body))
            finally:
                await c.close()

        await asyncio.gather(*(user(u) for u in range(8)))
    assert wrong == []


# ---- 6. control characters in the desk's reason phrase ----------------------------------


async def answered_after(odd_answer: bytes) -> tuple[Response, Response]:
    """The replies to two pipelined requests: `/odd`, which the desk answers with
    `odd_answer`, and `/after`, answered normally (it must still get its own answer)."""

    async def odd_first(request: DeskRequest, _r: RecordingReader, w: asyncio.StreamWriter) -> bool:
        w.write(odd_answer if request.target == b"/odd" else answer_bytes(request.target))
        await w.drain()
        return True

    async with stack(odd_first) as (_desk, sidecar):
        c = await client(sidecar)
        await c.send(request("/odd") + request("/after"))
        first, second = await c.responses(2)
        await c.close()
    return first, second


@pytest.mark.parametrize("char", [b"\x00", b"\x01", b"\x0b", b"\x7f", b"\x1b"])
@pytest.mark.parametrize("size", [10, 200_000], ids=["small", "streamed"])
async def test_a_reason_phrase_with_control_characters_is_a_clean_502(
    char: bytes, size: int
) -> None:
    head = b"HTTP/1.1 200 O" + char + b"K\r\nContent-Length: %d\r\n\r\n" % size
    first, second = await answered_after(head + b"a" * size)
    assert first.status == 502
    assert char not in first.reason
    assert own_answer(second, "/after")


@pytest.mark.parametrize(
    "header",
    [b"X-Odd: caf\xe9", b"X-Odd: \xff\xfe"],
    ids=["latin-1", "not-utf-8"],
)
async def test_a_desk_header_the_sidecar_cannot_relay_faithfully_is_a_clean_502(
    header: bytes,
) -> None:
    first, second = await answered_after(
        b"HTTP/1.1 200 OK\r\n" + header + b"\r\nContent-Length: 2\r\n\r\nok"
    )
    assert first.status == 502
    assert own_answer(second, "/after")


async def test_utf_8_in_a_desk_header_passes_unchanged() -> None:
    async def utf8(request: DeskRequest, _r: RecordingReader, w: asyncio.StreamWriter) -> bool:
        w.write(
            b"HTTP/1.1 200 Gr\xc3\xbc\xc3\x9fe\r\nX-Name: J\xc3\xbcrgen\r\nContent-Length: 2\r\n\r\nok"
        )
        await w.drain()
        return True

    async with stack(utf8) as (_desk, sidecar):
        c = await client(sidecar)
        await c.send(request("/"))
        reply = await c.response()
        await c.close()
    assert reply.status == 200
    assert reply.header("X-Name") == "Jürgen".encode()


# ---- 7. HTTP/1.0 keep-alive clients -----------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"z" * 100_000,  # until close
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n"
        + b"z" * 100_000
        + b"\r\n0\r\n\r\n",
    ],
    ids=["until-close", "chunked"],
)
async def test_an_http_1_0_client_never_gets_a_length_less_body_on_a_kept_connection(
    answer: bytes,
) -> None:
    async def stream(request: DeskRequest, _r: RecordingReader, w: asyncio.StreamWriter) -> bool:
        w.write(answer)
        await w.drain()
        return not answer.endswith(b"z")  # a body until close ends with the connection

    async with stack(stream) as (_desk, sidecar):
        c = await client(sidecar)
        await c.send(request("/big", version="HTTP/1.0", headers=[("Connection", "keep-alive")]))
        await c.send(request("/next", version="HTTP/1.0", headers=[("Connection", "keep-alive")]))
        replies = await c.responses(2)
        closed = await c.closed_by_peer()
        await c.close()
    # The body ends with the connection, so the second request is never answered on it.
    assert [r.status for r in replies] == [200]
    assert replies[0].body == b"z" * 100_000
    assert replies[0].header("Transfer-Encoding") is None
    assert (replies[0].header("Connection") or b"").lower() != b"keep-alive"
    assert closed


# ---- beyond the seven ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        # Content-Length and Transfer-Encoding together (RFC 9112 §6.1: a proxy must not
        # forward such a message as it is).
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        # Two Content-Length values.
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
        # A transfer coding other than chunked last: the body's length is unknown.
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        # obs-fold, bare LF, a space before the colon.
        b"GET / HTTP/1.1\r\nHost: desk.example.test\r\nX-A: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\nHost: desk.example.test\n\n",
        b"GET / HTTP/1.1\r\nHost: desk.example.test\r\nContent-Length : 4\r\n\r\nabcd",
        # A chunk size that overflows, and one with junk after it.
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ffffffffffffffffff1\r\na\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n",
        # A Content-Length with a sign.
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nContent-Length: +4\r\n\r\nabcd",
        # More transfer-coding and length spellings parsers disagree on.
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: identity\r\n"
        b"Content-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nContent-Length: 4, 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nContent-Length: 0x4\r\n\r\nabcd",
        # Chunk framing: a quoted extension hiding a line break, bare LF, junk after data,
        # and a trailer that tries to set the length or an identity header.
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3;a="x\r\ny"\r\nabc\r\n0\r\n\r\n',
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        b"0\r\nContent-Length: 50\r\nX-TicketLog-User: a\r\n\r\n",
        # Control characters in a field, a space in the target.
        b"GET / HTTP/1.1\r\nHost: desk.example.test\r\nX-A: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: desk.example.test\r\nX-A: a\rb\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: desk.example.test\r\n\r\n",
        # What aiohttp accepts and the sidecar refuses (sidecar/middleware/framing.py).
        b"POST / HTTP/1.0\r\nHost: desk.example.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        b"GET /assets/#/../admin HTTP/1.1\r\nHost: desk.example.test\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: desk.example.test\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: desk.example.test\r\n\r\n",
    ],
    ids=[
        "cl-and-te",
        "two-lengths",
        "te-not-chunked-last",
        "obs-fold",
        "bare-lf",
        "space-before-colon",
        "chunk-size-overflow",
        "chunk-size-junk",
        "signed-length",
        "te-twice",
        "te-xchunked",
        "te-identity",
        "cl-list",
        "cl-hex",
        "chunk-ext-line-break",
        "chunk-bare-lf",
        "chunk-junk-after-data",
        "chunk-trailer-framing",
        "nul-in-field",
        "cr-in-field",
        "space-in-target",
        "te-on-http-1.0",
        "te-gzip-chunked",
        "te-identity-chunked",
        "fragment-in-target",
        "http-2.0-text",
        "http-1.2",
    ],
)
async def test_ambiguous_framing_is_refused_and_nothing_reaches_the_desk(raw: bytes) -> None:
    async with stack() as (desk, sidecar):
        c = await client(sidecar)
        await c.send(raw + SMUGGLED)
        reply = await c.response()
        closed = await c.closed_by_peer()
        await c.close()
    assert 400 <= reply.status < 500 or reply.status in (501, 505)
    assert closed
    assert desk.requests == []
    assert no_identity_header_reached(desk)


async def test_a_body_cut_short_by_the_client_never_leaves_the_desk_waiting_on_a_reused_connection() -> (
    None
):
    async with stack() as (desk, sidecar):
        c = await client(sidecar)
        await c.send(
            request("/cut", method="POST", headers=[("Content-Length", "100")]) + b"only-some"
        )
        await asyncio.sleep(0.2)
        await c.close()  # the rest of the body never comes
        await asyncio.sleep(0.2)
        d = await client(sidecar)
        await d.send(request("/next"))
        assert own_answer(await d.response(), "/next")
        await d.close()
    # The desk read the cut body on a connection it then lost; /next came on another one.
    nexts = [r for r in desk.requests if r.target == b"/next"]
    assert len(nexts) == 1
    assert all(r.target != b"/next" or r.number == 1 for r in desk.requests)


async def test_an_expect_100_continue_upload_reaches_the_desk_once_and_whole() -> None:
    body = os.urandom(3000)
    async with stack() as (desk, sidecar):
        c = await client(sidecar)
        await c.send(
            request(
                "/up",
                method="POST",
                headers=[("Expect", "100-continue"), ("Content-Length", str(len(body)))],
            )
        )
        assert (await c.response()).status == 100  # the sidecar asks for the body
        c.writer.write(body)
        reply = await c.response()
        await c.close()
    assert own_answer(reply, "/up")
    assert [r.body for r in desk.requests] == [body]


async def test_a_content_length_goes_to_the_desk_in_canonical_form() -> None:
    async with stack() as (desk, sidecar):
        c = await client(sidecar)
        await c.send(
            request("/up", method="POST", headers=[("Content-Length", "005")], body=b"hello")
        )
        assert own_answer(await c.response(), "/up")
        await c.close()
    assert desk.requests[0].headers("Content-Length") == [b"5"]
    assert desk.requests[0].body == b"hello"


async def test_an_http_0_9_request_is_refused_and_the_connection_closed() -> None:
    async with stack() as (desk, sidecar):
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.listeners.public_port)
        writer.write(b"GET /\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)  # to the end: the sidecar closes
        writer.close()
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1][:1] in (b"4", b"5")
    assert desk.requests == []
