"""A deliberately minimal HTTP/1.1 upstream: raw asyncio protocol, a small fixed body.

    .venv/bin/python -m bench.fast_upstream --port 8000

It answers every request with the same 200 and keeps connections alive, with
no routing and no header parsing beyond Content-Length and Connection, so the
proxies in front of it, not the upstream, are what a benchmark measures.
Request bodies (Content-Length only) are read and discarded. Runs on uvloop
when it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

from bench.procs import run_loop

BODY = b"ok: fast upstream of the ticketlog-sso benchmark\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
    b"\r\n" + BODY
)
CLOSING = RESPONSE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.body_left = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            if self.body_left:
                taken = min(self.body_left, len(buffer))
                del buffer[:taken]
                self.body_left -= taken
                if self.body_left:
                    return
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            del buffer[: end + 4]
            self.body_left = _content_length(head)
            if b"transfer-encoding:" in head:
                # Chunked request bodies are out of scope for this upstream.
                self._reply(CLOSING, close=True)
                return
            close = b"\r\nconnection: close" in head or (
                head.split(b"\r\n", 1)[0].endswith(b"http/1.0")
                and b"\r\nconnection: keep-alive" not in head
            )
            self._reply(CLOSING if close else RESPONSE, close=close)
            if close:
                return

    def _reply(self, response: bytes, *, close: bool) -> None:
        assert self.transport is not None
        self.transport.write(response)
        if close:
            self.transport.close()


def _content_length(head: bytes) -> int:
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    value = head[at + 17 :].split(b"\r\n", 1)[0]
    return int(value.strip() or b"0")


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run_loop(serve(args.host, args.port))
