"""A raw-socket HTTP/1.1 client: bytes out exactly as written, responses read with llhttp.

Responses are parsed strictly (the `httptools` binding of llhttp, as browsers and Node
parse them), so a response that is framed two ways, or that runs into the next one,
shows up as a parse error or as a response the client never asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import httptools


@dataclass
class Response:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool
    version: str

    def header(self, name: str) -> bytes | None:
        wanted = name.lower().encode()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


class BrokenResponse(Exception):
    """The bytes from the sidecar are not a well-framed HTTP/1.x response."""


@dataclass
class _Collector:
    head_only: list[bool]  # per expected response: was the request a HEAD?
    done: list[Response] = field(default_factory=list)
    status: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    parser: httptools.HttpResponseParser | None = None
    in_body: bool = False  # a head was read and its message has not ended

    def on_message_begin(self) -> None:
        self.status, self.headers, self.body = b"", [], bytearray()

    def on_status(self, status: bytes) -> None:
        self.status += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> bool | None:
        # llhttp cannot know that a HEAD response has no body: say so (skip the body).
        self.in_body = True
        index = len(self.done)
        return True if index < len(self.head_only) and self.head_only[index] else None

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete(self.parser.should_keep_alive() if self.parser else False)

    def end_of_stream(self) -> None:
        """The connection ended: a body without length or chunking ends with it (RFC 9112
        §6.3 rule 8); llhttp's binding cannot be told, so the message is completed here."""
        framed = any(
            k.lower() in (b"content-length", b"transfer-encoding") for k, _ in self.headers
        )
        if self.in_body and not framed:
            self.complete(keep_alive=False)

    def complete(self, keep_alive: bool) -> None:
        assert self.parser is not None
        self.in_body = False
        self.done.append(
            Response(
                self.parser.get_status_code(),
                self.status,
                self.headers,
                bytes(self.body),
                keep_alive,
                self.parser.get_http_version(),
            )
        )


class RawClient:
    """One client connection to the sidecar."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.heads: list[bool] = []
        self.collector = _Collector(self.heads)
        self.parser = httptools.HttpResponseParser(self.collector)
        self.collector.parser = self.parser
        self.eof = False

    @classmethod
    async def open(cls, port: int) -> RawClient:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes, *, head: bool = False) -> None:
        """Send one request's bytes (say `head=True` for a HEAD request)."""
        self.heads.append(head)
        self.writer.write(data)
        await self.writer.drain()

    async def responses(self, count: int, timeout: float = 5.0) -> list[Response]:
        """Read until `count` responses have arrived in all (or the connection ends)."""
        async with asyncio.timeout(timeout):
            while len(self.collector.done) < count and not self.eof:
                data = await self.reader.read(65536)
                if not data:
                    self.eof = True
                    self.collector.end_of_stream()
                    break
                try:
                    self.parser.feed_data(data)
                except httptools.HttpParserUpgrade:
                    break
                except httptools.HttpParserError as exc:
                    raise BrokenResponse(str(exc)) from exc
        return self.collector.done

    async def response(self, timeout: float = 5.0) -> Response:
        wanted = len(self.collector.done) + 1
        done = await self.responses(wanted, timeout)
        if len(done) < wanted:
            raise BrokenResponse("the connection ended without a response")
        return done[wanted - 1]

    async def closed_by_peer(self, timeout: float = 2.0) -> bool:
        """True when the sidecar closes the connection (nothing more arrives)."""
        if self.eof:
            return True
        try:
            async with asyncio.timeout(timeout):
                data = await self.reader.read(65536)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        if data:
            raise BrokenResponse(f"unexpected bytes after the responses: {data[:80]!r}")
        self.eof = True
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def request(
    target: str,
    *,
    method: str = "GET",
    host: str = "desk.example.test",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    version: str = "HTTP/1.1",
) -> bytes:
    """A request's exact bytes; Content-Length is added for a body unless given."""
    lines = [f"{method} {target} {version}", f"Host: {host}"]
    given = [name.lower() for name, _ in headers or []]
    if body is not None and "content-length" not in given and "transfer-encoding" not in given:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
