"""What the number of tenants costs: check-config, start-up, memory, and a reload.

    .venv/bin/python -m bench.tenants [--tenants 10,1000,10000] [--full] [--quick]

For each size, as one file and as a config directory (100 tenants a file, the
main file apart), every tenant an SSO customer with its client secret in a file
of its own (bench/tenant_configs.py):

  check-config  wall time of `ticketlog-sso check-config -c ...` (output discarded)
  start-up      from spawning `ticketlog-sso serve` until /readyz answers 200
  RSS           the serving process's resident memory when it is ready
  reload        from the change (one tenant added: the file rewritten, or a new file
                in the directory) until the new host is served
  worst wait    the slowest request to another tenant while that reload ran (one
                client asking back to back, from the change until the new host answers)

Each process runs alone, one after the other; sizes are compared with the 10-tenant
run of the same form (x for times, + MiB for memory). check-config and start-up are the
median of five runs each (--timed-runs; one with --quick): the 10-tenant reference is
the denominator of every ratio, and one slow or fast run of it on a shared VM moved
them all. RSS, reload and worst wait come from the last start. `bench.run` prints this
table after its own. Not a test: nothing here is timed against a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.procs import Child, free_port, python_module, run_loop, spawn
from bench.tenant_configs import dump, tenant_entry, write_config

TIMED_RUNS = 5
SIZES = (10, 1_000, 10_000)
FULL_SIZES = (*SIZES, 100_000)
QUICK_SIZES = (10, 100)
FORMS = ("file", "directory")
# A request asking for a page without a session: the sidecar answers it alone (302).
PROBE_HEADERS = {"Accept": "text/html", "Host": "desk0.customer0.test"}


@dataclass
class TenantRow:
    tenants: int
    form: str
    check_config: float | None = None
    startup: float | None = None
    rss_mib: float | None = None
    reload: float | None = None
    worst_wait_ms: float | None = None
    probes: int = 0
    error: str = ""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def check_config(path: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        python_module("sidecar", "check-config", "-c", str(path)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"check-config exited {done.returncode}: {done.stderr[-2000:]!r}")
    return elapsed


async def _status(http: aiohttp.ClientSession, url: str, host: str) -> int:
    async with http.get(
        url, headers={**PROBE_HEADERS, "Host": host}, allow_redirects=False
    ) as response:
        await response.read()
        return response.status


async def wait_ready(http: aiohttp.ClientSession, child: Child, timeout: float) -> None:
    assert child.admin_port is not None
    url = f"http://127.0.0.1:{child.admin_port}/readyz"
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"serve exited:\n{child.log_tail()}")
        try:
            async with http.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.01)
    raise TimeoutError(f"serve not ready in {timeout:.0f} s:\n{child.log_tail()}")


def prepare_onboarding(path: Path, form: str, upstream: str) -> tuple[str, Path, str]:
    """One more customer, the way an operator adds one: (its host, the file to replace,
    the new content). Prepared before the clock starts: writing YAML is not the
    sidecar's time."""
    secret = path.parent / (path.name + ".secrets") / "onboarded"
    secret.write_text("onboarded-client-secret\n")
    entry = tenant_entry(999_999, upstream, secret)
    if form == "directory":
        return str(entry["host"]), path / "zz-onboarded.yaml", dump({"tenants": [entry]})
    # The whole file again, as a ConfigMap update rewrites it: its text plus one entry.
    added = dump([entry])
    return str(entry["host"]), path, path.read_text() + added


def swap_in(target: Path, text: str) -> None:
    tmp = target.with_name(".tmp-" + target.name)  # hidden: never read half-written
    tmp.write_text(text)
    tmp.replace(target)


async def measure_reload(
    http: aiohttp.ClientSession, base: str, path: Path, form: str, timeout: float
) -> tuple[float, float, int]:
    """Seconds until the added tenant is served, worst wait (ms) of the other tenant's
    requests meanwhile, and how many of those were sent."""
    host, target, text = await asyncio.to_thread(
        prepare_onboarding, path, form, "http://127.0.0.1:9"
    )
    for _ in range(3):  # warm: the first requests pay for connection and first-use costs
        await _status(http, base + "/", PROBE_HEADERS["Host"])
    changed = time.perf_counter()
    swap_in(target, text)
    worst = 0.0
    probes = 0
    deadline = changed + timeout
    while True:
        sent = time.perf_counter()
        status = await _status(http, base + "/", PROBE_HEADERS["Host"])
        worst = max(worst, time.perf_counter() - sent)
        probes += 1
        if status != 302:
            raise RuntimeError(f"the other tenant answered {status} during the reload")
        if await _status(http, base + "/", host) != 421:
            return time.perf_counter() - changed, worst * 1000, probes
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the new tenant was not served within {timeout:.0f} s")


async def measure_size(tenants: int, form: str, workdir: Path, runs: int = TIMED_RUNS) -> TenantRow:
    row = TenantRow(tenants, form)
    port, admin_port = free_port(), free_port()
    target = workdir / (f"{form}-{tenants}" + ("" if form == "directory" else ".yaml"))
    path = await asyncio.to_thread(
        write_config,
        target,
        tenants,
        directory=form == "directory",
        listen=f"127.0.0.1:{port}",
        admin_listen=f"127.0.0.1:{admin_port}",
    )
    # Scaled to the size so that 100,000 tenants on a slow machine still finish.
    timeout = 30 + tenants / 1000
    row.check_config = statistics.median(
        [await asyncio.to_thread(check_config, path) for _ in range(runs)]
    )
    startups: list[float] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        for run in range(runs):
            started = time.perf_counter()
            child = spawn(
                f"serve-{form}-{tenants}-{run}",
                python_module("sidecar", "serve", "-c", str(path)),
                port=port,
                workdir=workdir,
            )
            child.admin_port = admin_port
            try:
                await wait_ready(http, child, timeout)
                startups.append(time.perf_counter() - started)
                if run == runs - 1:  # the last start: memory, and the reload (which adds a tenant)
                    row.rss_mib = rss_mib(child.pid)
                    row.reload, row.worst_wait_ms, row.probes = await measure_reload(
                        http, f"http://127.0.0.1:{port}", path, form, timeout
                    )
            finally:
                child.stop()
    row.startup = statistics.median(startups)
    return row


async def measure(
    sizes: Sequence[int], workdir: Path | None = None, runs: int = TIMED_RUNS
) -> list[TenantRow]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tenants-") as tmp:
        where = workdir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        for tenants in sizes:
            for form in FORMS:
                progress(f"tenants: {tenants} as one {form}")
                try:
                    rows.append(await measure_size(tenants, form, where, runs))
                except (OSError, RuntimeError, TimeoutError, aiohttp.ClientError) as exc:
                    rows.append(TenantRow(tenants, form, error=str(exc).splitlines()[0][:120]))
    return rows


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _times(value: float | None, reference: float | None) -> str:
    return "" if value is None or not reference else f" ({value / reference:.1f}x)"


def table(rows: Sequence[TenantRow]) -> list[str]:
    """The tenants table, each size beside the 10-tenant run of the same form."""
    base = {r.form: r for r in rows if r.tenants == min(x.tenants for x in rows) and not r.error}
    header = (
        f"{'tenants':>8} {'form':<10}{'check-config':>18}{'start-up':>18}"
        f"{'RSS when ready':>22}{'reload':>10}{'worst wait':>12}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        if row.error:
            lines.append(f"{row.tenants:>8,} {row.form:<10}FAILED: {row.error}")
            continue
        first = base.get(row.form)
        if first is row:
            first = None  # the reference itself: no comparison
        memory = ""
        if first is not None and row.rss_mib and first.rss_mib:
            memory = f" ({row.rss_mib - first.rss_mib:+.0f})"
        check = _times(row.check_config, first.check_config if first else None)
        start = _times(row.startup, first.startup if first else None)
        lines.append(
            f"{row.tenants:>8,} {row.form:<10}"
            f"{_cell(row.check_config, '.2f') + ' s' + check:>18}"
            f"{_cell(row.startup, '.2f') + ' s' + start:>18}"
            f"{_cell(row.rss_mib, '.0f') + ' MiB' + memory:>22}"
            f"{_cell(row.reload, '.2f') + ' s':>10}"
            f"{_cell(row.worst_wait_ms, '.0f') + ' ms':>12}"
        )
    return lines


SECTION_NOTE = "one file / a directory of 100 a file, each tenant beside 10 of the same form"


def sizes_from(args: argparse.Namespace) -> tuple[int, ...]:
    if args.tenants == "none":
        return ()
    if args.tenants:
        return tuple(int(s.replace("_", "")) for s in args.tenants.split(","))
    if getattr(args, "rows", None):
        return ()  # `bench.run --rows ...` reruns some rows only: the table when asked for
    if args.quick:
        return QUICK_SIZES
    return FULL_SIZES if args.full else SIZES


def timed_runs_from(args: argparse.Namespace) -> int:
    if args.timed_runs is not None:
        return max(1, int(args.timed_runs))
    return 1 if args.quick else TIMED_RUNS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenants",
        help="tenant counts, comma-separated (default 10,1000,10000; quick 10,100; none: skip)",
    )
    parser.add_argument("--full", action="store_true", help="100,000 tenants too")
    parser.add_argument(
        "--timed-runs",
        type=int,
        help=f"runs of check-config and start-up per size and form, median shown "
        f"(default {TIMED_RUNS}; quick 1)",
    )


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tenants", description=__doc__.split("\n\n")[0]
    )
    add_arguments(parser)
    parser.add_argument("--quick", action="store_true", help="10 and 100 tenants only")
    parser.add_argument("--workdir", type=Path, help="keep the configs and logs here")
    args = parser.parse_args(argv)
    rows = await measure(sizes_from(args), args.workdir, timed_runs_from(args))
    print(f"tenants, on {os.cpu_count()} CPUs ({SECTION_NOTE}):")
    print("\n".join(table(rows)), flush=True)
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(run_loop(main()))
