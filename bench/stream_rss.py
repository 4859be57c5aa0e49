"""Peak RSS of a real `ticketlog-sso serve` process while 1 GB streams through it.

    .venv/bin/python -m bench.stream_rss [--size-mb 1024]

Starts the sample desk in this process and the sidecar as a child process (the
way it runs in production), streams an upload and then a download of
``--size-mb`` through it, and prints the sidecar's RSS before and its peak
(VmHWM) after each transfer. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator

import aiohttp
import yaml

from bench.procs import free_port
from sidecar.dev.desk import make_desk_app
from tests.helpers import SESSION_KEY, serve_app, wait_ready

HOST = "desk.example.test"


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak(pid: int) -> None:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so each transfer gets its own peak.
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")


async def main(size_mb: int) -> None:
    size = size_mb * 1024 * 1024
    block = os.urandom(1024 * 1024)
    async with serve_app(make_desk_app()) as desk_url:
        public, admin = free_port(), free_port()
        config = {
            "server": {"listen": f"127.0.0.1:{public}", "admin_listen": f"127.0.0.1:{admin}"},
            "session": {"store": "memory", "secret_keys": [SESSION_KEY]},
            "tenants": [{"host": HOST, "upstream": desk_url}],
        }
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            yaml.safe_dump(config, handle)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sidecar",
            "serve",
            "-c",
            handle.name,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await wait_ready(f"http://127.0.0.1:{admin}/readyz")
            timeout = aiohttp.ClientTimeout(total=None)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                async with http.get(f"http://127.0.0.1:{public}/", headers={"Host": HOST}) as r:
                    await r.read()  # warm up: imports, pools
                base = _status_kib(child.pid, "VmRSS")
                print(f"sidecar RSS at rest: {base / 1024:.1f} MiB")

                async def body() -> AsyncIterator[bytes]:
                    for _ in range(size_mb):
                        yield block

                _reset_peak(child.pid)
                started = time.monotonic()
                async with http.post(
                    f"http://127.0.0.1:{public}/upload", data=body(), headers={"Host": HOST}
                ) as r:
                    result = await r.json()
                assert result["length"] == size, result
                upload_s = time.monotonic() - started
                upload_peak = _status_kib(child.pid, "VmHWM")
                _reset_peak(child.pid)
                started = time.monotonic()
                received = 0
                async with http.get(
                    f"http://127.0.0.1:{public}/download?size={size}", headers={"Host": HOST}
                ) as r:
                    async for chunk in r.content.iter_any():
                        received += len(chunk)
                assert received == size
                download_s = time.monotonic() - started
                download_peak = _status_kib(child.pid, "VmHWM")
            for label, seconds, peak in (
                ("upload  ", upload_s, upload_peak),
                ("download", download_s, download_peak),
            ):
                print(
                    f"{label} {size_mb} MiB in {seconds:.1f} s: peak RSS {peak / 1024:.1f} MiB "
                    f"(+{(peak - base) / 1024:.1f} MiB over rest)"
                )
        finally:
            child.terminate()
            await child.wait()
            os.unlink(handle.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024)
    asyncio.run(main(parser.parse_args().size_mb))
