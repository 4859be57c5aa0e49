"""A scripted desk on a raw socket that records every byte it receives.

It reads requests the way an ordinary HTTP/1.1 server does (RFC 9112 §6.3: a chunked
Transfer-Encoding, else Content-Length, else no body), so when the sidecar frames a
request wrongly this desk sees what a real desk would: a second request made of body
bytes, or a body that swallows the next user's request. Each request is answered by a
script, which may misbehave on purpose (late bytes, early answers, odd heads).

The default answer names the request it answers (`answer to <target>`), so a client can
check it got its own answer and not someone else's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class DeskRequest:
    connection: int  # 1 for the desk's first connection, 2 for the next, ...
    number: int  # its place on that connection, from 1
    head: bytes  # request line and header lines, without the empty line
    body: bytes

    @property
    def method(self) -> bytes:
        return self.head.split(b" ", 1)[0]

    @property
    def target(self) -> bytes:
        parts = self.head.split(b"\r\n", 1)[0].split(b" ")
        return parts[1] if len(parts) > 1 else b""

    def headers(self, name: str) -> list[bytes]:
        wanted = name.lower().encode()
        found = []
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == wanted:
                found.append(value.strip())
        return found

    def header_names(self) -> list[bytes]:
        return [line.partition(b":")[0] for line in self.head.split(b"\r\n")[1:]]


class RecordingReader:
    """The connection's asyncio.StreamReader, copying every byte read into `sink`."""

    def __init__(self, reader: asyncio.StreamReader, sink: bytearray) -> None:
        self._reader = reader
        self._sink = sink

    async def readuntil(self, separator: bytes) -> bytes:
        data = await self._reader.readuntil(separator)
        self._sink += data
        return data

    async def readexactly(self, n: int) -> bytes:
        data = await self._reader.readexactly(n)
        self._sink += data
        return data

    async def read(self, n: int = -1) -> bytes:
        data = await self._reader.read(n)
        self._sink += data
        return data


# A script answers one request; it returns False to close the connection afterwards.
Script = Callable[[DeskRequest, RecordingReader, asyncio.StreamWriter], Awaitable[bool]]


def answer_bytes(target: bytes, *, status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    body = b"answer to " + target
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
        b"Content-Type: text/plain\r\nX-Desk: yes\r\n" + extra + b"\r\n" + body
    )


async def echo(request: DeskRequest, _r: RecordingReader, w: asyncio.StreamWriter) -> bool:
    """A well-behaved desk: a sized answer naming the request, connection kept."""
    w.write(answer_bytes(request.target))
    await w.drain()
    return True


class MalformedRequest(Exception):
    """What the desk read is not an HTTP/1.1 request (it closes the connection)."""


async def read_request(reader: RecordingReader, *, body: bool = True) -> tuple[bytes, bytes]:
    """One request: its head and its body, framed as RFC 9112 §6.3 says (`body=False`: a
    broken desk that never reads bodies, so they stay on the connection)."""
    head = (await reader.readuntil(b"\r\n\r\n"))[:-4]
    lines = head.split(b"\r\n")
    if len(lines[0].split(b" ")) != 3 or not lines[0].endswith((b"HTTP/1.1", b"HTTP/1.0")):
        raise MalformedRequest(lines[0][:80])
    chunked = False
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            chunked = value.strip().lower().endswith(b"chunked")
        elif name == b"content-length":
            length = int(value.strip())
    if not body:
        return head, b""
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            body += await reader.readexactly(size)
            await reader.readuntil(b"\r\n")  # the chunk's CRLF (or the last, empty trailer)
            if size == 0:
                return head, body
    return head, await reader.readexactly(length) if length else b""


@dataclass
class RecordingDesk:
    script: Script = echo
    read_bodies: bool = True
    port: int = 0
    connections: int = 0
    requests: list[DeskRequest] = field(default_factory=list)
    received: dict[int, bytearray] = field(default_factory=dict)  # every byte, per connection
    malformed: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        self.received[connection] = bytearray()
        recording = RecordingReader(reader, self.received[connection])
        number = 0
        try:
            while True:
                try:
                    head, body = await read_request(recording, body=self.read_bodies)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except (MalformedRequest, ValueError, asyncio.LimitOverrunError) as exc:
                    self.malformed.append(str(exc).encode())
                    return
                number += 1
                request = DeskRequest(connection, number, head, body)
                self.requests.append(request)
                if not await self.script(request, recording, writer):
                    return
        finally:
            writer.close()


@asynccontextmanager
async def recording_desk(
    script: Script = echo, *, read_bodies: bool = True
) -> AsyncIterator[RecordingDesk]:
    desk = RecordingDesk(script, read_bodies)
    server = await asyncio.start_server(desk._serve, "127.0.0.1", 0)
    desk.port = server.sockets[0].getsockname()[1]
    try:
        yield desk
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)
