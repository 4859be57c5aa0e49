"""The sidecar's benchmark: one table, every row measured in the same run.

    .venv/bin/python -m bench.run [--duration 6] [--rounds 5] [--rows c,e,f] [--quick]

Starts everything itself on loopback, each server in its own process: a fast
raw-asyncio upstream, nginx `proxy_pass` (when installed), a naive aiohttp
proxy, the Entra emulator with the sample desk, and `python -m sidecar serve`
processes (memory store, Redis store on 127.0.0.1:6379 database 14, and fresh
ones for the memory measurements). Then it measures, one after the other:

  (a)-(f)  HTTP req/s and p50/p99 latency (wrk when installed, else aiohttp),
           in interleaved rounds (default 5) so drift hits every row alike; the
           round with the median rate is shown
  (g)      WebSocket echo round trips/s through the sidecar to the desk's /ws
  sign-in  complete sign-ins/s: /.sso/login, the emulator, /.sso/callback
  memory   peak RSS streaming an upload and a download, RSS with idle
           keep-alive connections
  pair     (e)/(d) once more, both loaded at the same time on two sidecars that
           share the proxy's CPU (roles swapped each round): the ratio in time
           without the drift between rounds; pair-fc: (f)/(c) the same way, the
           Redis-store sidecar beside the naive proxy
  instr    rows (d) and (e) once more, in instructions per request counted by
           valgrind (bench/instructions.py; about two minutes, not with --quick):
           on a shared machine whose rounds drift by more than the 5% between
           (d) and (e), the figure that does not move

and prints the machine, the table and the ratios the issue asks for. Then the
tenants table (bench/tenants.py): check-config, start-up, RSS, reload and the
worst request wait during a reload at 10, 1,000 and 10,000 tenants (100,000 with
--full; 10 and 100 with --quick; --tenants none skips it, as --rows does unless
--tenants is given). Rows
that cannot run here (no nginx, no Redis) are printed as skipped with the
reason. CPU columns are the share of one core used during the row by the
proxy under test, the upstream behind it, and the client (this process plus
wrk). Linux only (/proc).
Not a test: nothing here is timed against a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import aiohttp

from bench import instructions, tenants
from bench.loadgen import LoadResult, run_http_load, websocket_echo, wrk_path
from bench.memory import StreamResult, idle_connections, stream_peaks
from bench.nginx import nginx_path, nginx_version
from bench.procs import Child, ClientCpuMeter, CpuMeter, pin, raise_nofile_limit, run_loop
from bench.signin import LoginResult, login_loop
from bench.stack import DESK_HOST, PRIVATE_PATH, PUBLIC_PATH, SSO_HOST, USER, Stack, open_stack

# A database of its own, emptied before and after a run (the test suite uses 15);
# BENCH_REDIS_URL moves it, so that two checkouts on one machine can run at once.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


@dataclass
class Settings:
    duration: int
    warmup: int
    connections: int
    threads: int
    signin_concurrency: int
    stream_mib: int
    idle: int
    loadgen: str
    quick: bool
    workdir: str | None
    rounds: int
    redis_url: str
    rows: frozenset[str]
    tenant_sizes: tuple[int, ...] = ()
    tenant_timed_runs: int = tenants.TIMED_RUNS

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        quick = bool(args.quick)
        return cls(
            duration=args.duration if args.duration is not None else (1 if quick else 6),
            warmup=args.warmup if args.warmup is not None else (0 if quick else 2),
            connections=args.connections if args.connections is not None else (10 if quick else 50),
            threads=args.threads,
            signin_concurrency=args.signin_concurrency,
            stream_mib=args.stream_mib if args.stream_mib is not None else (10 if quick else 1024),
            idle=args.idle if args.idle is not None else (100 if quick else 10_000),
            loadgen=args.loadgen,
            quick=quick,
            workdir=args.workdir,
            rounds=args.rounds if args.rounds is not None else (1 if quick else 5),
            redis_url=args.redis_url,
            rows=frozenset(args.rows.split(",")) if args.rows else frozenset(LABELS),
            tenant_sizes=tenants.sizes_from(args),
            tenant_timed_runs=tenants.timed_runs_from(args),
        )


@dataclass
class Row:
    key: str
    label: str
    value: float | None = None
    unit: str = ""
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None
    cpu_proxy: float | None = None
    cpu_upstream: float | None = None
    cpu_client: float | None = None
    note: str = ""
    failed: bool = False


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    pinning: str = ""
    # Rows (a)-(f): the rate of each round, in the order the rounds ran.
    per_round: dict[str, list[float | None]] = field(default_factory=dict)

    def value(self, key: str) -> float | None:
        for row in self.rows:
            if row.key == key and not row.failed:
                return row.value
        return None


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- machine ------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_lines(settings: Settings, tool: str, nginx: str | None) -> list[str]:
    uvloop = importlib.util.find_spec("uvloop") is not None
    cpus = os.cpu_count() or 1  # not this process's affinity: pinning narrowed that
    if tool == "wrk":
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        version = (wrk.stdout + wrk.stderr).split("[", 1)[0].strip()
        tool_text = f"{version}, {settings.threads} thread(s)"
    else:
        tool_text = "built-in aiohttp closed loop"
    return [
        f"machine:   {cpus} CPUs (nproc), {_cpu_model()}, Linux {platform.release()}",
        f"python:    {platform.python_version()} ({sys.executable}), aiohttp {_version('aiohttp')}",
        "event loop: "
        + (
            f"uvloop {_version('uvloop')} (sidecar, naive proxy, upstream, emulator/desk)"
            if uvloop
            else "asyncio (uvloop not installed)"
        ),
        f"load:      {tool_text}; {settings.connections} connections; {settings.duration} s per "
        f"row after {settings.warmup} s warm-up; (a)-(f) in {settings.rounds} interleaved "
        "round(s), median shown",
        f"nginx:     {nginx_version(nginx) + ', 1 worker' if nginx else 'not installed'}",
    ]


# ---- measurements -------------------------------------------------------------------------


async def _preflight(url: str, headers: dict[str, str]) -> None:
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
        http.get(url, headers=headers, allow_redirects=False) as r,
    ):
        body = await r.read()
        if r.status != 200:
            raise RuntimeError(f"{url} answered {r.status}: {body[:200]!r}")


T = TypeVar("T")


@dataclass
class Cpu:
    proxy: float | None
    upstream: float | None
    client: float


async def _measured(
    pids_proxy: Sequence[int], pids_upstream: Sequence[int], work: Awaitable[T]
) -> tuple[T, Cpu]:
    """Awaits `work` while measuring the CPU share of the proxy, its upstream and the client."""
    proxy, upstream, client = (
        CpuMeter(list(pids_proxy)),
        CpuMeter(list(pids_upstream)),
        ClientCpuMeter(),
    )
    proxy.start()
    upstream.start()
    client.start()
    result = await work
    cpu = Cpu(
        proxy.stop() if pids_proxy else None,
        upstream.stop() if pids_upstream else None,
        client.stop(),
    )
    return result, cpu


@dataclass(frozen=True)
class Load:
    """HTTP load on one proxy process, for the side-by-side rows."""

    process: Child
    url: str
    headers: dict[str, str]


def _side_by_side_row(
    key: str, ratios: Sequence[float], errors: int, duration: int, what: str
) -> Row:
    """The median of the rounds' ratios (sorted), with their range and how they were made."""
    rounds = f"median of {len(ratios)} rounds ({ratios[0]:.3f}-{ratios[-1]:.3f}) of {duration} s"
    return Row(
        key,
        LABELS[key],
        ratios[(len(ratios) - 1) // 2],
        "x",
        errors=errors,
        note=f"{rounds}; requests per CPU-second, {what}",
    )


def _load_note(result: LoadResult) -> str:
    note = f"{result.requests} requests in {result.seconds:.1f} s"
    if result.failed:
        note += f"; {result.failed} answered not 2xx"
    if result.socket_errors:
        note += f"; {result.socket_errors} socket errors"
    return note


LABELS = {
    "a": "(a) upstream direct",
    "b": "(b) nginx proxy_pass",
    "c": "(c) naive aiohttp proxy",
    "d": "(d) sidecar public path",
    "e": "(e) sidecar signed in, memory store",
    "f": "(f) sidecar signed in, Redis store",
    "g": "(g) sidecar WebSocket echo",
    "h": "(h) signed in, nginx + forward-auth",
    "h-nocache": "(h) without nginx's auth cache",
    "signin": "sign-in callbacks (memory store)",
    "upload": "peak RSS upload",
    "download": "peak RSS download",
    "idle": "RSS with idle keep-alive conns",
    "gw-upload": "sidecar RSS, upload via nginx gateway",
    "gw-download": "sidecar RSS, download via gateway",
    "pair": "(e)/(d) side by side, one CPU",
    "pair-fc": "(f)/(c) side by side, one CPU",
    "instr": "instructions/request, public (d)",
    "instr-cookie": "instructions/request, public + cookie",
    "instr-signed": "instructions/request, signed in (e)",
}


async def check_redis(url: str) -> str | None:
    """None when Redis answers (and its benchmark database is now empty), else why not."""
    try:
        import redis.asyncio as aioredis
    except ImportError:
        return "redis-py not installed"
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
        await client.flushdb()
    except Exception as exc:  # the reason shows in the skipped row
        return f"Redis not reachable at {url}: {exc}"
    finally:
        await client.aclose()
    return None


async def _started(coro: Awaitable[Child]) -> Child | Exception:
    try:
        return await coro
    except Exception as exc:  # reported by the rows that need this process
        return exc


# The rows that need the nginx gateway and its sidecar.
GATEWAY_ROWS = frozenset({"h", "h-nocache", "gw-upload", "gw-download"})


def _rss_rows(results: Sequence[StreamResult], *, key_prefix: str, where: str) -> list[Row]:
    """The peak-RSS rows of an upload and a download (rows `upload`, `download`, or
    with `key_prefix`)."""
    return [
        Row(
            key_prefix + result.direction,
            LABELS[key_prefix + result.direction],
            result.peak_kib / 1024,
            "MiB",
            note=f"{result.size_mib} MiB at {result.mib_per_s:.0f} MiB/s{where}; "
            f"+{(result.peak_kib - result.rest_kib) / 1024:.1f} MiB over "
            f"{result.rest_kib / 1024:.1f} MiB before",
        )
        for result in results
    ]


def median_round(rows: Sequence[Row]) -> Row:
    """The round with the median rate, its note telling the spread; FAILED if any round was."""
    failed = [row for row in rows if row.failed]
    if failed or len(rows) == 1:
        return failed[0] if failed else rows[0]
    ranked = sorted(rows, key=lambda row: row.value or 0.0)
    middle = ranked[(len(ranked) - 1) // 2]
    low, high = ranked[0].value or 0.0, ranked[-1].value or 0.0
    return replace(
        middle,
        errors=sum(row.errors or 0 for row in rows),
        note=f"median of {len(rows)} rounds ({low:,.0f}-{high:,.0f}); {middle.note}",
    )


@dataclass
class Bench:
    """One run: the settings, the processes of the stack, and the rows measured so far."""

    settings: Settings
    tool: str
    stack: Stack
    report: Report
    processes: dict[str, Child | Exception] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    proxy_cpu: set[int] = field(default_factory=set)
    other_cpus: set[int] = field(default_factory=set)

    def pin_processes(self) -> str:
        """The proxy under test gets a core of its own; the load generator (this process and
        its wrk children), the upstream and the emulator share the others, so the
        scheduler never puts them on the measured core (less drift between rounds)."""
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        if len(cpus) < 2:
            return "not pinned (one CPU)"
        self.proxy_cpu = {max(cpus)}
        self.other_cpus = cpus - self.proxy_cpu
        others = [os.getpid(), *self.stack.upstream.pids, *self.stack.services.pids]
        proxies = [pid for c in self.processes.values() if isinstance(c, Child) for pid in c.pids]
        if not (pin(others, self.other_cpus) and pin(proxies, self.proxy_cpu)):
            return "not pinned (sched_setaffinity refused)"
        return (
            f"proxy under test on CPU {min(self.proxy_cpu)}; load generator, upstream and "
            f"emulator on CPU {','.join(map(str, sorted(self.other_cpus)))} "
            "(row (a): the upstream on the proxy's CPU)"
        )

    async def start(self, nginx: str | None, redis_url: str | None) -> None:
        """Starts the proxies under test at once (their start-up overlaps)."""
        starts: dict[str, Awaitable[Child]] = {
            "naive": self.stack.start_naive_proxy(),
            "memory": self.stack.start_sidecar("sidecar-memory"),
            "stream": self.stack.start_sidecar("sidecar-stream"),
            "idle": self.stack.start_sidecar("sidecar-idle"),
        }
        if "pair" in self.settings.rows:
            starts["pair-1"] = self.stack.start_sidecar("sidecar-pair-1")
            starts["pair-2"] = self.stack.start_sidecar("sidecar-pair-2")
        if nginx:
            starts["nginx"] = self.stack.start_nginx(nginx)
        if redis_url:
            starts["redis"] = self.stack.start_sidecar("sidecar-redis", redis_url=redis_url)
        if nginx and self.settings.rows & GATEWAY_ROWS:
            starts["gateway-sidecar"] = self.stack.start_sidecar(
                "sidecar-gateway", trusted_proxies=["127.0.0.1/32"]
            )
        done = await asyncio.gather(*(_started(c) for c in starts.values()))
        self.processes = dict(zip(starts, done, strict=True))
        if isinstance(self.processes.get("gateway-sidecar"), Child):
            await self.start_gateways()

    async def start_gateways(self) -> None:
        """Rows (h): the shipped nginx forward-auth configuration asking a sidecar of its
        own, in front of the fast upstream (with and without its auth cache) and of the
        sample desk (the 1 GiB streams)."""
        sidecar = self.child("gateway-sidecar")
        fast, desk = self.stack.upstream.port, self.stack.desk_port
        gateways: dict[str, Awaitable[Child]] = {
            "gateway": self.stack.start_gateway("nginx-gateway", sidecar, desk_port=fast),
            "gateway-nocache": self.stack.start_gateway(
                "nginx-gateway-nocache", sidecar, desk_port=fast, cache=False
            ),
            "gateway-desk": self.stack.start_gateway("nginx-gateway-desk", sidecar, desk_port=desk),
        }
        done = await asyncio.gather(*(_started(c) for c in gateways.values()))
        self.processes.update(zip(gateways, done, strict=True))

    def measured(self, proxy: str) -> list[int]:
        """The processes a row's proxy CPU counts: a gateway row counts nginx and the
        sidecar it asks."""
        pids = self.child(proxy).pids
        if proxy.startswith("gateway"):
            pids += self.child("gateway-sidecar").pids
        return pids

    def child(self, name: str) -> Child:
        found = self.processes[name]
        if isinstance(found, Exception):
            raise RuntimeError(f"{name} did not start: {found}") from found
        return found

    async def cookie(self, name: str) -> str:
        """The session cookie of `alice`, signed up on that sidecar (once); a gateway's is
        that of the sidecar it asks."""
        if name.startswith("gateway"):
            name = "gateway-sidecar"
        if name not in self.cookies:
            self.cookies[name] = await self.stack.sign_up(self.child(name))
        return self.cookies[name]

    async def attempt(self, key: str, make: Callable[[], Awaitable[Row | list[Row]]]) -> list[Row]:
        """One measurement; a failure becomes a FAILED row instead of ending the run."""
        label = LABELS[key]
        progress(f"running {label} ...")
        try:
            made = await make()
        except Exception as exc:  # any failure becomes a FAILED row
            note = f"FAILED: {type(exc).__name__}: {exc}"[:300]
            made = Row(key, label, note=note, failed=True)
        rows = made if isinstance(made, list) else [made]
        for row in rows:
            progress(f"  {row.label}: {_fmt_value(row)} {row.unit} {row.note}".rstrip())
        return rows

    async def run(self, key: str, make: Callable[[], Awaitable[Row | list[Row]]]) -> None:
        self.report.rows += await self.attempt(key, make)

    def skip(self, key: str, reason: str) -> None:
        self.report.rows.append(Row(key, LABELS[key], note=f"skipped: {reason}"))

    def load(self, url: str, headers: dict[str, str], duration: int) -> Awaitable[LoadResult]:
        """HTTP load on `url` with the run's connections, threads and load generator."""
        return run_http_load(
            url,
            headers,
            duration=duration,
            connections=self.settings.connections,
            threads=self.settings.threads,
            tool=self.tool,
        )

    # ---- the rows ---------------------------------------------------------------------

    async def http(
        self, key: str, proxy: str | None, path: str, *, signed_in: bool, warmup: bool
    ) -> Row:
        """(a)-(f): HTTP load on `proxy` (None: the upstream itself)."""
        target = self.stack.upstream if proxy is None else self.child(proxy)
        url = f"http://127.0.0.1:{target.port}{path}"
        headers = {"Host": SSO_HOST}
        if signed_in:
            assert proxy is not None
            headers["Cookie"] = await self.cookie(proxy)
        await _preflight(url, headers)
        settings = self.settings

        def load(duration: int) -> Awaitable[LoadResult]:
            return self.load(url, headers, duration)

        if proxy is None and self.proxy_cpu:
            pin(self.stack.upstream.pids, self.proxy_cpu)  # the upstream is what is measured
        try:
            if warmup and settings.warmup:
                await load(settings.warmup)
            result, cpu = await _measured(
                self.measured(proxy) if proxy else [],
                self.stack.upstream.pids,
                load(settings.duration),
            )
        finally:
            if proxy is None and self.other_cpus:
                pin(self.stack.upstream.pids, self.other_cpus)
        return Row(
            key,
            LABELS[key],
            result.rate,
            "req/s",
            result.p50_ms,
            result.p99_ms,
            result.errors,
            cpu.proxy,
            cpu.upstream,
            cpu.client,
            note=_load_note(result),
        )

    async def side_by_side(self) -> Row:
        """(e)/(d) with both paths loaded at the same time: two sidecars of the same
        configuration share the proxy's CPU, one under row (d)'s load, the other under
        row (e)'s, and swap roles each round. Drift on a shared machine then slows both
        alike, where rows (d) and (e), measured seconds apart, drift apart. Both sign
        alice up first, so that they differ only in the load they serve."""
        one, two = self.child("pair-1"), self.child("pair-2")
        cookies = {one.pid: await self.cookie("pair-1"), two.pid: await self.cookie("pair-2")}

        def load(sidecar: Child, signed_in: bool) -> Load:
            path = PRIVATE_PATH if signed_in else PUBLIC_PATH
            headers = {"Host": SSO_HOST}
            if signed_in:
                headers["Cookie"] = cookies[sidecar.pid]
            return Load(sidecar, f"http://127.0.0.1:{sidecar.port}{path}", headers)

        def arrange(number: int) -> tuple[Load, Load]:
            public, signed = (one, two) if number % 2 == 0 else (two, one)
            return load(signed, True), load(public, False)

        ratios, errors = await self.ratios_per_cpu_second(arrange)
        return _side_by_side_row(
            "pair",
            ratios,
            errors,
            self.settings.duration,
            "(e) over (d), both loaded at once on two sidecars sharing the proxy CPU, roles "
            "swapped each round",
        )

    async def naive_side_by_side(self) -> Row:
        """(f)/(c) the same way: the Redis-store sidecar under row (f)'s load and the naive
        proxy under row (c)'s, at the same time on the proxy's CPU. The two programs
        differ, so there are no roles to swap; each round compares their requests per
        CPU-second."""
        naive, sidecar = self.child("naive"), self.child("redis")
        signed_in = {"Host": SSO_HOST, "Cookie": await self.cookie("redis")}
        loads = (
            Load(sidecar, f"http://127.0.0.1:{sidecar.port}{PRIVATE_PATH}", signed_in),
            Load(naive, f"http://127.0.0.1:{naive.port}{PRIVATE_PATH}", {"Host": SSO_HOST}),
        )
        ratios, errors = await self.ratios_per_cpu_second(lambda _: loads)
        return _side_by_side_row(
            "pair-fc",
            ratios,
            errors,
            self.settings.duration,
            "(f) over (c), both loaded at once on the proxy CPU",
        )

    async def ratios_per_cpu_second(
        self, arrange: Callable[[int], tuple[Load, Load]]
    ) -> tuple[list[float], int]:
        """Rounds of two loads at once on processes that share the proxy's CPU; for each
        round, the ratio of the two processes' requests per CPU-second (so an unequal
        share of the CPU does not count). `arrange(number)` gives (top, bottom) for the
        round; sorted ratios of 2 x --rounds rounds, and the errors."""
        settings = self.settings

        def start(load: Load, duration: int) -> Awaitable[LoadResult]:
            return self.load(load.url, load.headers, duration)

        first, second = arrange(0), arrange(1)
        for top, bottom in [first] if second == first else [first, second]:
            for load in (top, bottom):
                await _preflight(load.url, load.headers)
            if settings.warmup:
                await asyncio.gather(start(top, settings.warmup), start(bottom, settings.warmup))
        ratios: list[float] = []
        errors = 0
        for number in range(2 * settings.rounds):
            top, bottom = arrange(number)
            top_cpu, bottom_cpu = CpuMeter(top.process.pids), CpuMeter(bottom.process.pids)
            top_cpu.start()
            bottom_cpu.start()
            top_result, bottom_result = await asyncio.gather(
                start(top, settings.duration), start(bottom, settings.duration)
            )
            top_share, bottom_share = top_cpu.stop(), bottom_cpu.stop()
            errors += top_result.errors + bottom_result.errors
            if bottom_result.rate and top_share and bottom_share:
                top_rate = top_result.rate / top_share
                ratios.append(top_rate / (bottom_result.rate / bottom_share))
        if not ratios:
            raise RuntimeError("no round served any request")
        return sorted(ratios), errors

    async def websocket(self) -> Row:
        """(g): echo round trips through the sidecar to the desk's /ws."""
        sidecar = self.child("memory")
        url = f"http://127.0.0.1:{sidecar.port}/ws"
        headers = {"Host": DESK_HOST}
        connections = self.settings.connections

        def load(duration: int) -> Awaitable[LoadResult]:
            return websocket_echo(url, headers, duration=duration, connections=connections)

        if self.settings.warmup:
            await load(1)
        result, cpu = await _measured(
            sidecar.pids, self.stack.services.pids, load(self.settings.duration)
        )
        return Row(
            "g",
            LABELS["g"],
            result.rate,
            "msg/s",
            result.p50_ms,
            result.p99_ms,
            result.errors,
            cpu.proxy,
            cpu.upstream,
            cpu.client,
            note=f"round trips to the desk's /ws on {connections} sockets "
            "(SSO-less tenant; upstream CPU = emulator+desk process)",
        )

    async def signin(self) -> Row:
        """Complete sign-ins: /.sso/login, the emulator's authorize, /.sso/callback."""
        sidecar = self.child("memory")
        await self.cookie("memory")  # alice has an account: callbacks land on the desk
        concurrency = self.settings.signin_concurrency

        def load(duration: int) -> Awaitable[LoginResult]:
            return login_loop(
                sidecar_url=f"http://127.0.0.1:{sidecar.port}",
                host=SSO_HOST,
                user=USER,
                duration=duration,
                concurrency=concurrency,
            )

        if self.settings.warmup:
            await load(1)
        result, cpu = await _measured(
            sidecar.pids, self.stack.services.pids, load(self.settings.duration)
        )
        return Row(
            "signin",
            LABELS["signin"],
            result.rate,
            "logins/s",
            result.callback_p50_ms,
            result.callback_p99_ms,
            result.errors,
            cpu.proxy,
            cpu.upstream,
            cpu.client,
            note=f"{concurrency} browsers; p50/p99 of /.sso/callback; whole login p50 "
            f"{result.login_p50_ms:.1f} ms; upstream CPU = emulator",
        )

    async def streams(self) -> list[Row]:
        """Peak RSS of a fresh sidecar while an upload, then a download, streams through."""
        sidecar = self.child("stream")
        results = await stream_peaks(
            sidecar_url=f"http://127.0.0.1:{sidecar.port}",
            host=DESK_HOST,
            pid=sidecar.pid,
            size_mib=self.settings.stream_mib,
        )
        return _rss_rows(results, key_prefix="", where="")

    async def gateway_streams(self) -> list[Row]:
        """The sidecar's RSS while a signed-in upload, then a download, stream through the
        nginx gateway: in forward-auth mode bodies never reach the sidecar."""
        sidecar = self.child("gateway-sidecar")
        gateway = self.child("gateway-desk")
        results = await stream_peaks(
            sidecar_url=f"http://127.0.0.1:{gateway.port}",
            host=SSO_HOST,
            pid=sidecar.pid,
            size_mib=self.settings.stream_mib,
            cookie=await self.cookie("gateway-desk"),
        )
        return _rss_rows(results, key_prefix="gw-", where=" through nginx")

    async def idle(self, count: int) -> Row:
        """RSS of a fresh sidecar holding `count` idle keep-alive connections."""
        sidecar = self.child("idle")
        result = await idle_connections(
            port=sidecar.port, host=SSO_HOST, path=PUBLIC_PATH, pid=sidecar.pid, count=count
        )
        return Row(
            "idle",
            LABELS["idle"],
            result.loaded_kib / 1024,
            "MiB",
            errors=result.wanted - result.opened,
            note=f"{result.opened} of {result.wanted} open (one {PUBLIC_PATH} each); "
            f"{result.rest_kib / 1024:.1f} MiB at rest; "
            f"{result.kib_per_connection:.1f} KiB/connection; opened in "
            f"{result.seconds_to_open:.1f} s",
        )

    def log_tails(self) -> None:
        """The children's last log lines; those that exited last, so that a cut-off
        output (the smoke test shows its end) still shows why."""
        children = [found for found in self.processes.values() if isinstance(found, Child)]
        children.sort(key=lambda child: child.process.poll() is not None)
        for child in children:
            code = child.process.poll()
            state = "running" if code is None else f"exited with {code}"
            progress(f"--- {child.name} log (tail; {state}) ---\n{child.log_tail(15)}")


async def measure(settings: Settings, tool: str, nginx: str | None, report: Report) -> None:
    idle = settings.idle
    nofile = raise_nofile_limit(max(4096, 2 * idle + 1024))
    if nofile < idle + 512:
        idle = max(0, nofile - 512)
        progress(f"RLIMIT_NOFILE is {nofile}: measuring {idle} idle connections")
    redis_problem = await check_redis(settings.redis_url)
    with contextlib.ExitStack() as cleanup:
        if settings.workdir:
            workdir = Path(settings.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(
                cleanup.enter_context(tempfile.TemporaryDirectory(prefix="tlsso-bench-"))
            )
        progress(f"starting processes (logs in {workdir}) ...")
        async with open_stack(workdir) as stack:
            bench = Bench(settings, tool, stack, report)
            await bench.start(nginx, None if redis_problem else settings.redis_url)
            report.pinning = bench.pin_processes()
            # (a)-(f) in rounds, interleaved, so that drift on a shared machine hits every
            # row alike; each row shows its median round.
            plan: list[tuple[str, str | None, str, bool]] = [
                ("a", None, PRIVATE_PATH, False),
                ("b", "nginx", PRIVATE_PATH, False),
                ("c", "naive", PRIVATE_PATH, False),
                ("d", "memory", PUBLIC_PATH, False),
                ("e", "memory", PRIVATE_PATH, True),
                ("f", "redis", PRIVATE_PATH, True),
                ("h", "gateway", PRIVATE_PATH, True),
                ("h-nocache", "gateway-nocache", PRIVATE_PATH, True),
            ]
            wanted = settings.rows
            plan = [step for step in plan if step[0] in wanted]
            no_nginx = "nginx not installed (apt-get install nginx)"
            skipped = {"b": no_nginx, "h": no_nginx, "h-nocache": no_nginx} if not nginx else {}
            if redis_problem:
                skipped["f"] = redis_problem
            rounds: dict[str, list[Row]] = {key: [] for key, *_ in plan}
            for number in range(settings.rounds):
                if settings.rounds > 1:
                    progress(f"round {number + 1} of {settings.rounds}")
                for key, proxy, path, signed_in in plan:
                    if key not in skipped:
                        rounds[key] += await bench.attempt(
                            key,
                            functools.partial(
                                bench.http,
                                key,
                                proxy,
                                path,
                                signed_in=signed_in,
                                warmup=number == 0,
                            ),
                        )
            for key, *_ in plan:
                if key in skipped:
                    bench.skip(key, skipped[key])
                elif rounds[key]:
                    report.rows.append(median_round(rounds[key]))
                    report.per_round[key] = [row.value for row in rounds[key]]
            if "pair" in wanted:
                await bench.run("pair", bench.side_by_side)
            if "pair-fc" in wanted:
                if redis_problem:
                    bench.skip("pair-fc", redis_problem)
                else:
                    await bench.run("pair-fc", bench.naive_side_by_side)
            if "g" in wanted:
                await bench.run("g", bench.websocket)
            if "signin" in wanted:
                await bench.run("signin", bench.signin)
            if wanted & {"upload", "download"}:
                await bench.run("upload", bench.streams)
            if "idle" in wanted:
                await bench.run("idle", lambda: bench.idle(idle))
            if wanted & {"gw-upload", "gw-download"}:
                if nginx:
                    await bench.run("gw-upload", bench.gateway_streams)
                else:
                    bench.skip("gw-upload", no_nginx)
            if any(row.failed for row in report.rows):
                bench.log_tails()
        if wanted & {"instr", "instr-cookie", "instr-signed"}:
            if settings.quick:
                bench.skip("instr", "not with --quick (valgrind needs minutes)")
            elif not instructions.valgrind_installed():
                bench.skip("instr", "valgrind not installed (apt-get install valgrind)")
            elif redis_problem:
                bench.skip("instr", redis_problem)
            else:
                await bench.run("instr", instruction_rows)
    if redis_problem is None:
        await check_redis(settings.redis_url)  # empties the benchmark database again


async def instruction_rows() -> list[Row]:
    """Rows (d) and (e) again, counted in instructions under valgrind (bench/instructions.py)."""
    requests = 1000
    counts = await instructions.measure(requests)
    note = f"callgrind, user space; {requests:,} requests each (make bench-instructions)"
    return [
        Row(key, LABELS[key], value=count, unit="instr", note=note)
        for key, (_, count) in zip(("instr", "instr-cookie", "instr-signed"), counts, strict=True)
    ]


# ---- output -------------------------------------------------------------------------------


def _fmt(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:,.{digits}f}"


def _fmt_value(row: Row) -> str:
    if row.value is None:
        return "-"
    if row.unit == "x":
        return f"{row.value:.3f}"
    return _fmt(row.value, 0 if row.value >= 100 else 1)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def table(rows: Sequence[Row]) -> list[str]:
    header = (
        "row",
        "value",
        "unit",
        "p50 ms",
        "p99 ms",
        "errors",
        "CPU proxy",
        "CPU upstr.",
        "CPU client",
        "notes",
    )
    body = [
        (
            row.label,
            _fmt_value(row),
            row.unit,
            _fmt(row.p50_ms, 2),
            _fmt(row.p99_ms, 2),
            _fmt(row.errors),
            _pct(row.cpu_proxy),
            _pct(row.cpu_upstream),
            _pct(row.cpu_client),
            row.note,
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header) - 1)]
    right = {1, 3, 4, 5, 6, 7, 8}

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells[:-1])
        ]
        return "  ".join([*parts, cells[-1]]).rstrip()

    rule = "-" * (sum(widths) + 2 * len(widths) + 5)
    return [line(header), rule, *(line(cells) for cells in body), rule]


RATIOS = (
    ("e", "c", "signed-in sidecar (memory) vs naive aiohttp proxy"),
    ("f", "c", "signed-in sidecar (Redis) vs naive aiohttp proxy"),
    ("e", "d", "signed-in (memory) vs public path, same sidecar"),
    ("d", "b", "sidecar public path vs nginx"),
    ("h", "b", "nginx + forward-auth, signed in, vs nginx proxy_pass"),
    ("h-nocache", "b", "the same without nginx's auth cache"),
)


def _per_round(report: Report, top: str, bottom: str) -> str:
    """The ratio within each round (the two rows ran minutes apart at most), as a median
    and range: how far the machine's drift moves it."""
    tops, bottoms = report.per_round.get(top, []), report.per_round.get(bottom, [])
    pairs = [a / b for a, b in zip(tops, bottoms, strict=False) if a is not None and b]
    if len(pairs) < 2 or len(tops) != len(bottoms):
        return ""
    pairs.sort()
    median = pairs[(len(pairs) - 1) // 2]
    return f"; within a round: median {median:.2f}, {pairs[0]:.2f}-{pairs[-1]:.2f}"


def ratio_lines(report: Report) -> list[str]:
    lines = ["ratios of req/s:"]
    for top, bottom, meaning in RATIOS:
        a, b = report.value(top), report.value(bottom)
        shown = f"{a / b:.2f}" if a is not None and b else "n/a"
        rounds = _per_round(report, top, bottom)
        lines.append(f"  ({top})/({bottom}) = {shown:>5}   {meaning}{rounds}")
    for key, name in (("pair-fc", "(f)/(c)"), ("pair", "(e)/(d)")):
        side_by_side = report.value(key)
        if side_by_side:
            lines.append(
                f"  {name} = {side_by_side:5.3f}   side by side on one CPU: the same ratio in "
                "time, without the drift between rounds"
            )
    public, signed = report.value("instr"), report.value("instr-signed")
    if public and signed:
        lines.append(
            f"  (e)/(d) = {public / signed:5.3f}   by instructions per request (callgrind): "
            "the same ratio without the machine's noise"
        )
    return lines


async def main(settings: Settings) -> int:
    tool = settings.loadgen
    if tool == "auto":
        tool = "wrk" if wrk_path() else "aiohttp"
    elif tool == "wrk" and not wrk_path():
        progress("wrk is not installed (apt-get install wrk)")
        return 2
    nginx = nginx_path()
    report = Report()
    await measure(settings, tool, nginx, report)
    out = [
        "ticketlog-sso benchmark"
        + (" (--quick: tiny numbers, not for comparison)" if settings.quick else ""),
        *machine_lines(settings, tool, nginx),
        f"cpus:      {report.pinning}",
        "",
        *table(report.rows),
        *ratio_lines(report),
    ]
    print("\n".join(out), flush=True)
    failed = any(row.failed for row in report.rows)
    if settings.tenant_sizes:
        rows = await tenants.measure(settings.tenant_sizes, runs=settings.tenant_timed_runs)
        print("", f"tenants ({tenants.SECTION_NOTE}):", *tenants.table(rows), sep="\n", flush=True)
        failed = failed or any(row.error for row in rows)
    return 1 if failed else 0


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--duration", type=int, help="seconds per row (default 6; quick 1)")
    parser.add_argument(
        "--rounds", type=int, help="interleaved rounds of rows (a)-(f), median shown (default 5)"
    )
    parser.add_argument("--warmup", type=int, help="warm-up seconds per row (default 2; quick 0)")
    parser.add_argument(
        "--connections", type=int, help="concurrent connections (default 50; quick 10)"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument(
        "--signin-concurrency", type=int, default=8, help="browsers signing in at once (default 8)"
    )
    parser.add_argument("--stream-mib", type=int, help="MiB per stream (default 1024; quick 10)")
    parser.add_argument("--idle", type=int, help="idle connections (default 10000; quick 100)")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "aiohttp"),
        default="auto",
        help="default: wrk if installed",
    )
    parser.add_argument("--quick", action="store_true", help="tiny numbers; under a minute")
    parser.add_argument(
        "--rows",
        help="comma-separated rows to measure, e.g. c,e,f (default: all of "
        + ",".join(LABELS)
        + "); ratios need both of their rows",
    )
    parser.add_argument(
        "--redis-url", default=REDIS_URL, help=f"emptied before and after (default {REDIS_URL})"
    )
    parser.add_argument(
        "--workdir", help="keep configs and every process's log here (default: a temporary dir)"
    )
    tenants.add_arguments(parser)
    args = parser.parse_args(argv)
    unknown = set(args.rows.split(",")) - set(LABELS) if args.rows else set()
    if unknown:
        parser.error(f"--rows: unknown row(s) {', '.join(sorted(unknown))}")
    return Settings.from_args(args)


if __name__ == "__main__":
    sys.exit(run_loop(main(parse_args())))
