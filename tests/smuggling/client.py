"""A raw-socket HTTP/1.1 client: bytes out exactly as written, responses parsed strictly.

The response parser follows RFC 9112 §6.3 to the letter and refuses anything a browser
could read two ways (bare LF, Content-Length with Transfer-Encoding, differing lengths,
bad chunk sizes), so a response that is framed ambiguously, or that runs into the next
one, shows up as a BrokenResponse or as a response the client never asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass


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


class _NeedMore(Exception):
    """The buffer does not hold the whole message yet."""


_STATUS_LINE = re.compile(rb"^HTTP/(1\.[01]) ([0-9]{3}) ?([^\r\n]*)$")
_CHUNK_SIZE = re.compile(rb"^([0-9A-Fa-f]{1,16})(;[^\r\n]*)?$")


def parse_response(data: bytes, *, head_request: bool, at_eof: bool) -> tuple[Response, int]:
    """One response from the start of `data`, and how many bytes it took."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if b"\n" in data.replace(b"\r\n", b""):
            raise BrokenResponse(f"bare LF in a response head: {data[:80]!r}")
        raise _NeedMore
    lines = data[:end].split(b"\r\n")
    match = _STATUS_LINE.match(lines[0])
    if match is None:
        raise BrokenResponse(f"not a status line: {lines[0][:80]!r}")
    version, status, reason = match.group(1).decode(), int(match.group(2)), match.group(3)
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b"\n" in line or b"\r" in line:
            raise BrokenResponse(f"bad header line: {line[:80]!r}")
        headers.append((name, value.strip(b" \t")))
    lowered = {}
    for name, value in headers:
        lowered.setdefault(name.lower(), []).append(value)
    connection = b",".join(lowered.get(b"connection", [])).lower()
    keep_alive = b"close" not in connection and (version == "1.1" or b"keep-alive" in connection)
    start = end + 4
    lengths = set(lowered.get(b"content-length", []))
    codings = lowered.get(b"transfer-encoding", [])
    if head_request or status < 200 or status in (204, 304):
        return Response(status, reason, headers, b"", keep_alive, version), start
    if codings and lengths:
        raise BrokenResponse("Content-Length and Transfer-Encoding together")
    if codings:
        if b",".join(codings).lower().replace(b" ", b"") != b"chunked":
            raise BrokenResponse(f"transfer coding {codings!r}")
        body, at = bytearray(), start
        while True:
            line_end = data.find(b"\r\n", at)
            if line_end < 0:
                raise _NeedMore
            size_match = _CHUNK_SIZE.match(data[at:line_end])
            if size_match is None:
                raise BrokenResponse(f"bad chunk size line {data[at:line_end][:40]!r}")
            size = int(size_match.group(1), 16)
            at = line_end + 2
            if size == 0:
                trailer_end = data.find(b"\r\n\r\n", at - 2)
                if trailer_end < 0:
                    raise _NeedMore
                return Response(status, reason, headers, bytes(body), keep_alive, version), (
                    trailer_end + 4
                )
            if len(data) < at + size + 2:
                raise _NeedMore
            if data[at + size : at + size + 2] != b"\r\n":
                raise BrokenResponse("chunk not followed by CRLF")
            body += data[at : at + size]
            at += size + 2
    if lengths:
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise BrokenResponse(f"Content-Length {lengths!r}")
        length = int(next(iter(lengths)))
        if len(data) < start + length:
            raise _NeedMore
        return Response(
            status, reason, headers, data[start : start + length], keep_alive, version
        ), (start + length)
    if not at_eof:  # RFC 9112 §6.3 rule 8: the body ends with the connection
        raise _NeedMore
    return Response(status, reason, headers, data[start:], False, version), len(data)


class RawClient:
    """One client connection to the sidecar."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.heads: list[bool] = []  # per request sent: was it a HEAD?
        self.done: list[Response] = []
        self.buffer = b""
        self.eof = False

    @classmethod
    async def open(cls, port: int) -> RawClient:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes, *, head: bool = False) -> None:
        """Send one request's bytes (say `head=True` for a HEAD request)."""
        self.heads.append(head)
        self.writer.write(data)
        await self.writer.drain()

    def _parse_what_is_there(self) -> None:
        while self.buffer:
            final = sum(1 for r in self.done if r.status >= 200)
            head = final < len(self.heads) and self.heads[final]
            try:
                response, used = parse_response(self.buffer, head_request=head, at_eof=self.eof)
            except _NeedMore:
                return
            self.done.append(response)
            self.buffer = self.buffer[used:]

    async def responses(self, count: int, timeout: float = 5.0) -> list[Response]:
        """Read until `count` responses have arrived in all (or the connection ends)."""
        async with asyncio.timeout(timeout):
            while len(self.done) < count and not self.eof:
                try:
                    data = await self.reader.read(65536)
                except ConnectionError:
                    data = b""
                if not data:
                    self.eof = True
                self.buffer += data
                self._parse_what_is_there()
        if self.eof and self.buffer:
            raise BrokenResponse(f"the connection ended inside a response: {self.buffer[:80]!r}")
        return self.done

    async def response(self, timeout: float = 5.0) -> Response:
        wanted = len(self.done) + 1
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
