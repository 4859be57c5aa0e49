"""Instructions per request on each path, counted by valgrind: figures that do not move.

    .venv/bin/python -m bench.instructions [--requests 1000]     # or: make bench-instructions

req/s on a shared 2-core machine moves by a few percent from one round to the next,
as much as the difference between the public and the signed-in path. This counts
instead: it signs `alice` up on a sidecar with the Redis store (bench/stack.py),
starts a second sidecar on the same configuration under `valgrind --tool=callgrind`
(so the same cookie is valid there), and counts the instructions that process runs
per request on

  public          row (d): the public path, no cookie
  public+cookie   the public path with alice's session cookie
  signed in       rows (e)/(f): the authenticated path, sign-in cached

The counts are user space only: the kernel's share of each socket call is not in
them, so they overstate the sidecar's own code against the real cost per request.
The sign-in cache's ttl is 300 s here, because under valgrind (about 50 times
slower) its renewals every 5 s would weigh 50 times more than at full speed.
Needs valgrind (apt-get install valgrind) and Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.procs import free_port, run_loop
from bench.stack import PRIVATE_PATH, PUBLIC_PATH, SSO_HOST, open_stack

REDIS_URL = "redis://127.0.0.1:6379/12"  # a database of its own (tests 15, bench 14)
_CONCURRENCY = 10


async def _requests(port: int, path: str, headers: dict[str, str], count: int) -> None:
    """`count` keep-alive GETs on one connection, each answered 200 before the next."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {SSO_HOST}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    try:
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{path}: {head.splitlines()[0]!r}")
            length = re.search(rb"(?i)content-length: (\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
    finally:
        writer.close()


async def _until_up(port: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await _requests(port, PUBLIC_PATH, {}, 1)
            return
        except (OSError, RuntimeError, asyncio.IncompleteReadError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


def _total_instructions(dump: Path) -> int:
    found = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(errors="replace"), re.M)
    if found is None:
        raise RuntimeError(f"no instruction total in {dump}")
    return int(found.group(1))


async def measure(requests: int) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory(prefix="tlsso-instructions-") as tmp:
        workdir = Path(tmp)
        async with open_stack(workdir) as stack:
            signer = await stack.start_sidecar("sidecar-redis", redis_url=REDIS_URL)
            cookie = await stack.sign_up(signer)
            port = free_port()
            document = stack.sidecar_config(
                public_port=port, admin_port=free_port(), redis_url=REDIS_URL
            )
            document["session"]["cache_ttl"] = "300s"
            config = workdir / "counted.yaml"
            config.write_text(yaml.safe_dump(document))
            dumps = workdir / "callgrind"
            dumps.mkdir()
            counted = subprocess.Popen(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={dumps}/out.%p",
                    sys.executable,
                    "-m",
                    "sidecar",
                    "serve",
                    "-c",
                    str(config),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                await _until_up(port)
                paths = [
                    ("public (d)", PUBLIC_PATH, {}),
                    ("public + cookie", PUBLIC_PATH, {"Cookie": cookie}),
                    ("signed in (e)/(f)", PRIVATE_PATH, {"Cookie": cookie}),
                ]
                for _, path, headers in paths:  # warm: imports, caches, pooled connections
                    await _requests(port, path, headers, 200)
                results = []
                for label, path, headers in paths:
                    subprocess.run(
                        ["callgrind_control", "-z", str(counted.pid)],
                        check=True,
                        capture_output=True,
                    )
                    each = requests // _CONCURRENCY
                    await asyncio.gather(
                        *(_requests(port, path, headers, each) for _ in range(_CONCURRENCY))
                    )
                    for old in dumps.iterdir():
                        old.unlink()
                    subprocess.run(
                        ["callgrind_control", "-d", str(counted.pid)],
                        check=True,
                        capture_output=True,
                    )
                    dump = max(dumps.iterdir(), key=lambda p: p.stat().st_mtime)
                    per_request = _total_instructions(dump) / (each * _CONCURRENCY)
                    results.append((label, per_request))
                    print(f"  {label}: {per_request:,.0f} instructions/request", file=sys.stderr)
                return results
            finally:
                counted.terminate()
                counted.wait(timeout=60)


def valgrind_installed() -> bool:
    return bool(shutil.which("valgrind") and shutil.which("callgrind_control"))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="per path (default 1000)")
    args = parser.parse_args()
    if not valgrind_installed():
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    results = run_loop(measure(args.requests))
    public = results[0][1]
    print("\ninstructions per request in the sidecar process (user space, callgrind)")
    for label, count in results:
        print(f"  {label:<20} {count:>10,.0f}   {public / count:5.3f} x public")
    print("(public / path: the ratio of req/s the two would show if only instructions counted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
