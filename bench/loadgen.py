"""Load generators: `wrk` when installed, else a closed-loop aiohttp client; WebSocket echo.

Each returns a `LoadResult`: answered requests, the rate of successful ones,
p50/p99 latency and errors (unexpected answers plus socket errors). wrk counts
3xx as success, so the benchmark checks every URL for a 200 before its row; the
built-in generator counts anything but 200 as failed.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp

WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True)
class LoadResult:
    requests: int  # answered, whatever the status
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int  # answered with an unexpected status (wrk: not 2xx/3xx)
    socket_errors: int
    tool: str

    @property
    def errors(self) -> int:
        return self.failed + self.socket_errors

    @property
    def rate(self) -> float:
        """Successful requests per second (failed answers do not count)."""
        return (self.requests - self.failed) / self.seconds if self.seconds > 0 else 0.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _wrk_duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * WRK_UNITS[match.group(2)]


def parse_wrk(output: str) -> LoadResult:
    """The numbers of `wrk --latency` output (wrk 4.x)."""
    done = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", output, re.MULTILINE)
    if done is None:
        raise ValueError(f"unrecognised wrk output:\n{output}")
    seconds = float(done.group(2)) * WRK_UNITS[done.group(3)] / 1e3
    latency = {
        m.group(1): _wrk_duration_ms(m.group(2))
        for m in re.finditer(r"^\s*(50|75|90|99)%\s+(\S+)\s*$", output, re.MULTILINE)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return LoadResult(
        requests=int(done.group(1)),
        seconds=seconds,
        p50_ms=latency.get("50", 0.0),
        p99_ms=latency.get("99", 0.0),
        failed=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        tool="wrk",
    )


def wrk_path() -> str | None:
    return shutil.which("wrk")


async def run_wrk(
    url: str,
    headers: Mapping[str, str],
    *,
    duration: float,
    connections: int,
    threads: int,
) -> LoadResult:
    argv = [
        "wrk",
        f"-t{max(1, min(threads, connections))}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{output.decode()}")
    return parse_wrk(output.decode())


async def run_builtin(
    url: str,
    headers: Mapping[str, str],
    *,
    duration: float,
    connections: int,
) -> LoadResult:
    """Closed loop: `connections` workers, each sending its next request when one is answered."""
    latencies: list[float] = []
    failed = socket_errors = 0
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    ) as http:
        started = time.monotonic()
        deadline = started + duration

        async def worker() -> None:
            nonlocal failed, socket_errors
            while (now := time.monotonic()) < deadline:
                try:
                    async with http.get(url, headers=dict(headers), allow_redirects=False) as r:
                        await r.read()
                        status = r.status
                except (aiohttp.ClientError, OSError, TimeoutError):
                    socket_errors += 1
                    continue
                if status == 200:
                    latencies.append((time.monotonic() - now) * 1e3)
                else:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    latencies.sort()
    return LoadResult(
        requests=len(latencies) + failed,
        seconds=elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        failed=failed,
        socket_errors=socket_errors,
        tool="aiohttp",
    )


async def run_http_load(
    url: str,
    headers: Mapping[str, str],
    *,
    duration: float,
    connections: int,
    threads: int,
    tool: str,
) -> LoadResult:
    if tool == "wrk":
        return await run_wrk(
            url, headers, duration=duration, connections=connections, threads=threads
        )
    return await run_builtin(url, headers, duration=duration, connections=connections)


async def websocket_echo(
    url: str,
    headers: Mapping[str, str],
    *,
    duration: float,
    connections: int,
    message: str = "x" * 64,
) -> LoadResult:
    """Round trips per second: each connection sends a text message and awaits its echo."""
    latencies: list[float] = []
    failed = 0
    expected = "echo:" + message
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(
        timeout=timeout,
        connector=aiohttp.TCPConnector(limit=0),
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as http:
        sockets = await asyncio.gather(
            *(http.ws_connect(url, headers=dict(headers)) for _ in range(connections))
        )
        started = time.monotonic()
        deadline = started + duration

        async def worker(ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal failed
            while (now := time.monotonic()) < deadline:
                await ws.send_str(message)
                reply = await ws.receive(timeout=10)
                if reply.type == aiohttp.WSMsgType.TEXT and reply.data == expected:
                    latencies.append((time.monotonic() - now) * 1e3)
                else:
                    failed += 1
                    return

        await asyncio.gather(*(worker(ws) for ws in sockets))
        elapsed = time.monotonic() - started
        await asyncio.gather(*(ws.close() for ws in sockets))
    latencies.sort()
    return LoadResult(
        requests=len(latencies) + failed,
        seconds=elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        failed=failed,
        socket_errors=0,
        tool="aiohttp-ws",
    )
