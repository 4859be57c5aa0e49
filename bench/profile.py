"""Where a sidecar spends its CPU under load: py-spy on `ticketlog-sso serve`, summarised.

    .venv/bin/pip install py-spy      # once; not a project dependency
    .venv/bin/python -m bench.profile [--path private|public] [--store memory|redis] \
        [--duration 20] [--connections 50] [--out /tmp/sidecar-profile.txt]

Starts the benchmark's stack (bench/stack.py), signs `alice` up, puts the same
wrk load as `bench.run` row (e) (or (d)/(f); `--target naive`: row (c)) on the
process and samples it with `py-spy record` meanwhile. Writes the collapsed stacks
(`--out`; speedscope.app and flamegraph.pl open them) and prints the functions
with the most samples of their own (self), the most samples under them
(inclusive), and the self samples grouped by library or sidecar module.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import run_http_load, wrk_path
from bench.procs import CpuMeter, raise_nofile_limit, run_loop
from bench.run import REDIS_URL, check_redis
from bench.stack import PRIVATE_PATH, PUBLIC_PATH, SSO_HOST, open_stack

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class Frame:
    function: str
    file: str

    @property
    def short_file(self) -> str:
        for marker in ("site-packages/", "/lib/python3", "/work/main/"):
            if marker in self.file:
                tail = self.file.split(marker, 1)[1]
                return tail.split("/", 1)[1] if marker == "/lib/python3" else tail
        return self.file

    @property
    def group(self) -> str:
        """A library (top-level package) or, for the product, its module."""
        short = self.short_file
        if short.startswith("sidecar/"):
            return short.removesuffix(".py")
        if "/" in short:
            return short.split("/", 1)[0]
        return short.removesuffix(".py") + " (stdlib)"

    def __str__(self) -> str:
        return f"{self.function} ({self.short_file})"


def parse_collapsed(lines: Iterable[str]) -> list[tuple[list[Frame], int]]:
    """py-spy's raw format: `frame;frame;...;leaf COUNT`, frames `function (file[:line])`."""
    stacks: list[tuple[list[Frame], int]] = []
    for line in lines:
        line = line.rstrip()
        if not line:
            continue
        path, _, count = line.rpartition(" ")
        frames = []
        for part in path.split(";"):
            match = _FRAME.match(part)
            if match:  # skips the process and thread pseudo-frames
                frames.append(Frame(match["function"], match["file"]))
        # The main thread only: the event loop. Worker threads (asyncio.to_thread) wait
        # on a queue that py-spy does not always see as idle.
        if frames and frames[0].function != "Thread._bootstrap":
            stacks.append((frames, int(count)))
    return stacks


def summarise(
    stacks: Sequence[tuple[list[Frame], int]], top: int = 25, us_per_request: float | None = None
) -> list[str]:
    """Self, inclusive and per-library shares; with `us_per_request`, also CPU us per request."""
    total = sum(count for _, count in stacks)
    own: Counter[Frame] = Counter()
    under: Counter[Frame] = Counter()
    groups: Counter[str] = Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
        groups[frames[-1].group] += count
        for frame in set(frames):
            under[frame] += count

    def share(n: int) -> str:
        text = f"{100.0 * n / total:5.1f}%"
        if us_per_request is not None:
            text += f" {us_per_request * n / total:6.1f} us/req"
        return text

    out = [f"{total} samples of the main thread while busy", "", "self (own samples):"]
    out += [f"  {share(n)}  {frame}" for frame, n in own.most_common(top)]
    out += ["", "inclusive (samples under the function; the always-there entry frames left out):"]
    inclusive = [(frame, n) for frame, n in under.most_common() if n < 0.95 * total]
    out += [f"  {share(n)}  {frame}" for frame, n in inclusive[:top]]
    out += ["", "self samples by library / sidecar module:"]
    out += [f"  {share(n)}  {group}" for group, n in groups.most_common(top)]
    return out


async def profile(args: argparse.Namespace) -> int:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    tool = "wrk" if wrk_path() else "aiohttp"
    raise_nofile_limit()
    redis_url = None
    if args.store == "redis":
        problem = await check_redis(REDIS_URL)
        if problem:
            print(problem, file=sys.stderr)
            return 2
        redis_url = REDIS_URL
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="tlsso-profile-") as tmp:
        async with open_stack(Path(tmp)) as stack:
            headers = {"Host": SSO_HOST}
            path = PRIVATE_PATH
            if args.target == "naive":
                target = await stack.start_naive_proxy()
            else:
                target = await stack.start_sidecar("sidecar", redis_url=redis_url)
                if args.path == "private":
                    headers["Cookie"] = await stack.sign_up(target)
                else:
                    path = PUBLIC_PATH
            load = asyncio.ensure_future(
                run_http_load(
                    f"http://127.0.0.1:{target.port}{path}",
                    headers,
                    duration=args.duration + args.warmup + 2,
                    connections=args.connections,
                    threads=1,
                    tool=tool,
                )
            )
            await asyncio.sleep(args.warmup)
            cpu = CpuMeter([target.pid])
            cpu.start()
            spy = await asyncio.create_subprocess_exec(
                py_spy,
                "record",
                "--pid",
                str(target.pid),
                "--duration",
                str(args.duration),
                "--rate",
                str(args.rate),
                "--format",
                "raw",
                "--nolineno",
                "--output",
                str(out),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, spy_err = await spy.communicate()
            busy = cpu.stop()
            result = await load
        if args.store == "redis":
            await check_redis(REDIS_URL)
    if spy.returncode != 0 or not out.exists():
        print(f"py-spy failed: {spy_err.decode()}", file=sys.stderr)
        return 1
    what = "naive proxy" if args.target == "naive" else f"{args.path} path, {args.store} store"
    print(
        f"load: {tool}, {args.connections} connections, {what}: "
        f"{result.rate:,.0f} req/s while sampled at {args.rate} Hz (p50 {result.p50_ms:.1f} ms, "
        f"{result.errors} errors)"
    )
    # CPU per request, assuming the rate was steady over the load (warm-up included).
    us_per_request = busy / 100.0 * 1e6 / result.rate if result.rate else None
    print(f"target CPU while sampled: {busy:.0f}% of a core, ~{us_per_request or 0:.0f} us/request")
    stacks = parse_collapsed(out.read_text().splitlines())
    print("\n".join(summarise(stacks, args.top, us_per_request)))
    print(f"\ncollapsed stacks: {out} (open in https://www.speedscope.app)")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument(
        "--target", choices=("sidecar", "naive"), default="sidecar", help="naive: bench.naive_proxy"
    )
    parser.add_argument("--path", choices=("private", "public"), default="private")
    parser.add_argument("--store", choices=("memory", "redis"), default="memory")
    parser.add_argument("--duration", type=int, default=20, help="seconds sampled")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default="/tmp/sidecar-profile.txt")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run_loop(profile(parse_args())))
