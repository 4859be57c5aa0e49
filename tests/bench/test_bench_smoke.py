"""`python -m bench.run --quick` runs end to end and prints the whole table.

A smoke test only: it checks that every row is printed and none failed, never
how fast anything was (benchmarks are not timed tests).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.loadgen import parse_wrk, percentile

ROOT = Path(__file__).resolve().parents[2]

ROWS = (
    "(a) upstream direct",
    "(b) nginx proxy_pass",
    "(c) naive aiohttp proxy",
    "(d) sidecar public path",
    "(e) sidecar signed in, memory store",
    "(f) sidecar signed in, Redis store",
    "(e)/(d) side by side, one CPU",
    "(f)/(c) side by side, one CPU",
    "(g) sidecar WebSocket echo",
    "sign-in callbacks",
    "peak RSS upload",
    "peak RSS download",
    "RSS with idle keep-alive conns",
    "(h) signed in, nginx + forward-auth",
    "(h) without nginx's auth cache",
    "sidecar RSS, upload via nginx gateway",
    "sidecar RSS, download via gateway",
)
RATIOS = ("(e)/(c)", "(f)/(c)", "(e)/(d)", "(d)/(b)", "(h)/(b)", "(h-nocache)/(b)")


@pytest.mark.slow
@pytest.mark.timeout(260)
def test_quick_benchmark_prints_every_row() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=250,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, f"stdout:\n{out}\nstderr:\n{done.stderr[-3000:]}"
    for line in ("machine:", "python:", "event loop:", "load:", "nginx:"):
        assert line in out, line
    table = out.split("ratios of req/s:")[0]
    for row in ROWS:
        lines = [line for line in table.splitlines() if line.startswith(row)]
        assert lines, f"row {row!r} missing from:\n{out}"
        assert "FAILED" not in lines[0], lines[0]
    for ratio in RATIOS:
        assert ratio in out, ratio
    tenants = out.split("\ntenants (")[1]
    for size, form in (("10", "file"), ("10", "directory"), ("100", "file"), ("100", "directory")):
        [line] = [x for x in tenants.splitlines() if x.split()[:2] == [size, form]]
        assert "FAILED" not in line, line
        assert line.endswith(" ms"), line  # the worst wait, the last column


WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8080/api
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    21.04ms    3.01ms  60.10ms   90.00%
    Req/Sec     2.39k   150.00     2.60k    80.00%
  Latency Distribution
     50%   20.50ms
     75%   22.00ms
     90%   24.00ms
     99%    1.20s
  23900 requests in 10.01s, 4.10MB read
  Non-2xx or 3xx responses: 7
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:   2387.61
Transfer/sec:    419.00KB
"""


def test_wrk_output_is_parsed() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests == 23900
    assert result.seconds == pytest.approx(10.01)
    assert result.rate == pytest.approx(2387.6, rel=1e-3)
    assert result.p50_ms == pytest.approx(20.5)
    assert result.p99_ms == pytest.approx(1200.0)
    assert result.errors == 10
    assert result.tool == "wrk"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) == 0.0


async def test_builtin_load_generator_against_the_fast_upstream() -> None:
    import asyncio

    from bench.fast_upstream import UpstreamProtocol
    from bench.loadgen import run_builtin

    server = await asyncio.get_running_loop().create_server(UpstreamProtocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await run_builtin(
            f"http://127.0.0.1:{port}/x", {"Host": "a.test"}, duration=0.3, connections=4
        )
    finally:
        server.close()
        await server.wait_closed()
    assert result.requests > 0
    assert result.errors == 0
    assert 0 < result.p50_ms <= result.p99_ms


async def test_websocket_echo_against_the_sample_desk(desk_url: str) -> None:
    from bench.loadgen import websocket_echo

    result = await websocket_echo(f"{desk_url}/ws", {}, duration=0.3, connections=2)
    assert result.requests > 0
    assert result.errors == 0


def test_ratios_show_the_spread_within_rounds_and_the_instruction_count() -> None:
    from bench.run import LABELS, Report, Row, ratio_lines

    report = Report(
        rows=[
            Row("d", LABELS["d"], value=4000.0),
            Row("e", LABELS["e"], value=3900.0),
            Row("pair", LABELS["pair"], value=0.9512, unit="x"),
            Row("pair-fc", LABELS["pair-fc"], value=1.0834, unit="x"),
            Row("instr", LABELS["instr"], value=450_000.0),
            Row("instr-signed", LABELS["instr-signed"], value=468_750.0),
        ],
        per_round={"d": [4000.0, 3000.0, 5000.0], "e": [3600.0, 3300.0, 4000.0]},
    )
    lines = "\n".join(ratio_lines(report))
    assert "(e)/(d) =  0.97   signed-in (memory) vs public path, same sidecar" in lines
    # Rounds' own ratios 0.90, 1.10, 0.80: median 0.90, range 0.80-1.10.
    assert "within a round: median 0.90, 0.80-1.10" in lines
    assert "(e)/(d) = 0.951   side by side on one CPU" in lines
    assert "(f)/(c) = 1.083   side by side on one CPU" in lines
    assert "(e)/(d) = 0.960   by instructions per request" in lines
    assert "(e)/(c) =   n/a" in lines


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_tenants_table_times_each_cell_as_often_as_asked(tmp_path: Path) -> None:
    argv = ["--tenants", "10,20", "--timed-runs", "2", "--workdir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.tenants", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for size, form in (("10", "file"), ("10", "directory"), ("20", "file"), ("20", "directory")):
        [line] = [x for x in done.stdout.splitlines() if x.split()[:2] == [size, form]]
        assert line.endswith(" ms"), line
    # Two starts per cell, each with its own log; the last one also took the reload.
    for form in ("file", "directory"):
        assert sorted(p.name for p in tmp_path.glob(f"serve-{form}-10-*.log")) == [
            f"serve-{form}-10-0.log",
            f"serve-{form}-10-1.log",
        ]
