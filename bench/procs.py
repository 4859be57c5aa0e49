"""Child processes for the benchmark: start, wait for their port, measure them in /proc, stop.

Every server under test runs in its own process so that its RSS and CPU time
are its own, and so that the benchmark's load generator never shares its event
loop. Linux only (/proc).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# Ports free_port() has handed out in this process.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never the same one twice in this process (the one
    helper of the benchmark and the tests). Servers started together bind theirs only
    later, and once the probe socket is closed the kernel may offer its port again: two
    servers given one port would have one answer the other's readiness check while the
    other exits."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def raise_nofile_limit(wanted: int = 65536) -> int:
    """Raise RLIMIT_NOFILE (children inherit it); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (nginx workers of the master)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of the given processes (utime, stime of /proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return total / CLOCK_TICKS


@dataclass
class CpuMeter:
    """CPU share of some processes over an interval, in percent of one core."""

    pids: list[int]
    _cpu: float = 0.0
    _wall: float = 0.0

    def start(self) -> None:
        self._cpu = cpu_seconds(self.pids)
        self._wall = time.monotonic()

    def stop(self) -> float:
        wall = time.monotonic() - self._wall
        return 100.0 * (cpu_seconds(self.pids) - self._cpu) / wall if wall > 0 else 0.0


@dataclass
class ClientCpuMeter:
    """CPU share of this process plus its reaped children (wrk), in percent of one core."""

    _cpu: float = 0.0
    _wall: float = 0.0

    @staticmethod
    def _now() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def start(self) -> None:
        self._cpu = self._now()
        self._wall = time.monotonic()

    def stop(self) -> float:
        wall = time.monotonic() - self._wall
        return 100.0 * (self._now() - self._cpu) / wall if wall > 0 else 0.0


@dataclass
class Child:
    """A running child process with its log file; `pids` includes workers when `tree`."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int
    tree: bool = False
    admin_port: int | None = None  # sidecars: /healthz, /readyz, /metrics

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def pids(self) -> list[int]:
        return [self.pid, *child_pids(self.pid)] if self.tree else [self.pid]

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    workdir: Path,
    tree: bool = False,
    env: dict[str, str] | None = None,
) -> Child:
    """Start `argv` with stdout and stderr in `workdir/NAME.log` (never a pipe that can fill)."""
    log = workdir / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    return Child(name, process, log, port, tree=tree)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


async def wait_for_port(child: Child, port: int | None = None, timeout: float = 30.0) -> None:
    """Until something accepts TCP connections on 127.0.0.1:port; fails if the child dies."""
    port = child.port if port is None else port
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(
                f"{child.name} exited with {child.process.returncode}:\n{child.log_tail()}"
            )
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"{child.name} did not listen on {port}:\n{child.log_tail()}")


def pin(pids: Sequence[int], cpus: set[int]) -> bool:
    """Restrict processes to `cpus` (Linux); False where that is not possible."""
    try:
        for pid in pids:
            os.sched_setaffinity(pid, cpus)
    except (AttributeError, OSError):
        return False
    return True


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (as `ticketlog-sso serve` does), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result
