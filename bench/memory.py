"""Memory of a running sidecar process: peak RSS while streaming, RSS with idle connections.

The streaming part is bench/stream_rss.py's method (reset VmHWM through
/proc/PID/clear_refs, stream, read VmHWM), run against a sidecar that the
benchmark started; the idle part opens many keep-alive connections, sends one
request on each and leaves them open while the sidecar's VmRSS is read.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from bench.stream_rss import _reset_peak, _status_kib


@dataclass(frozen=True)
class StreamResult:
    direction: str  # "upload" or "download"
    size_mib: int
    seconds: float
    rest_kib: int
    peak_kib: int

    @property
    def mib_per_s(self) -> float:
        return self.size_mib / self.seconds if self.seconds > 0 else 0.0


async def stream_peaks(
    *, sidecar_url: str, host: str, pid: int, size_mib: int, cookie: str | None = None
) -> tuple[StreamResult, StreamResult]:
    """Upload then download `size_mib` MiB through the sidecar (or a gateway in front of
    it, `sidecar_url`); the peak RSS of each in process `pid`."""
    size = size_mib * 1024 * 1024
    block = os.urandom(1024 * 1024)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    headers = {"Host": host, **({"Cookie": cookie} if cookie else {})}
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(f"{sidecar_url}/", headers=headers) as r:
            await r.read()  # warm up: imports, pools

        async def body() -> AsyncIterator[bytes]:
            for _ in range(size_mib):
                yield block

        rest = _status_kib(pid, "VmRSS")
        _reset_peak(pid)
        started = time.monotonic()
        async with http.post(f"{sidecar_url}/upload", data=body(), headers=headers) as r:
            result = await r.json()
        if result.get("length") != size:
            raise RuntimeError(f"upload arrived incomplete: {result}")
        upload = StreamResult(
            "upload", size_mib, time.monotonic() - started, rest, _status_kib(pid, "VmHWM")
        )

        rest = _status_kib(pid, "VmRSS")
        _reset_peak(pid)
        started = time.monotonic()
        received = 0
        async with http.get(f"{sidecar_url}/download?size={size}", headers=headers) as r:
            async for chunk in r.content.iter_any():
                received += len(chunk)
        if received != size:
            raise RuntimeError(f"download arrived incomplete: {received} of {size} bytes")
        download = StreamResult(
            "download", size_mib, time.monotonic() - started, rest, _status_kib(pid, "VmHWM")
        )
    return upload, download


@dataclass(frozen=True)
class IdleResult:
    wanted: int
    opened: int  # connections whose request was answered 200 and that stayed open
    rest_kib: int
    loaded_kib: int
    seconds_to_open: float

    @property
    def kib_per_connection(self) -> float:
        return (self.loaded_kib - self.rest_kib) / self.opened if self.opened else 0.0


async def _open_idle(
    port: int, request: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """Connect, send one keep-alive request, read its whole (Content-Length) answer."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        await asyncio.wait_for(reader.readexactly(length), 30)
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        # ConnectionError (a non-200 answer) is an OSError too.
        writer.close()
        return None
    return reader, writer


async def idle_connections(
    *, port: int, host: str, path: str, pid: int, count: int, batch: int = 100, settle: float = 1.0
) -> IdleResult:
    """RSS of the sidecar at rest, then with `count` idle keep-alive connections open.

    Connections open `batch` at a time (the listen backlog is finite); each sends
    one GET with keep-alive and then idles until the RSS is read.
    """
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n").encode()
    warm = await _open_idle(port, request)
    if warm is not None:
        warm[1].close()
    await asyncio.sleep(settle)
    rest = _status_kib(pid, "VmRSS")
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    started = time.monotonic()
    try:
        for first in range(0, count, batch):
            results = await asyncio.gather(
                *(_open_idle(port, request) for _ in range(min(batch, count - first)))
            )
            opened.extend(r for r in results if r is not None)
        seconds = time.monotonic() - started
        await asyncio.sleep(settle)
        still_open = sum(1 for reader, _ in opened if not reader.at_eof())
        loaded = _status_kib(pid, "VmRSS")
    finally:
        for _, writer in opened:
            writer.close()
    return IdleResult(count, still_open, rest, loaded, seconds)
