"""`ticketlog-sso serve` as a process: SIGTERM drains in-flight requests, then exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import yaml

from bench.procs import free_port
from tests.helpers import base_config, wait_ready


async def test_sigterm_drains_in_flight_requests_and_exits_0(desk_url: str, tmp_path: Path) -> None:
    public, admin = free_port(), free_port()
    document = base_config(desk_url)
    document["server"].update(
        {
            "listen": f"127.0.0.1:{public}",
            "admin_listen": f"127.0.0.1:{admin}",
            "shutdown_grace": "5s",
        }
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(document))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sidecar",
        "serve",
        "-c",
        str(config),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        await wait_ready(f"http://127.0.0.1:{admin}/readyz")
        async with aiohttp.ClientSession() as http:
            slow = asyncio.ensure_future(
                http.get(
                    f"http://127.0.0.1:{public}/slow?delay=1.5",
                    headers={"Host": "desk.example.test"},
                )
            )
            await asyncio.sleep(0.4)
            process.send_signal(signal.SIGTERM)
            response = await slow
            assert response.status == 200
            assert await response.text() == "slow done"
            response.release()
        assert await asyncio.wait_for(process.wait(), 10) == 0
        stderr = (await process.stderr.read()).decode()  # type: ignore[union-attr]
        assert '"event": "draining"' in stderr
        assert '"event": "request"' in stderr
        # The listener is gone after the drain.
        async with aiohttp.ClientSession() as http:
            try:
                async with http.get(f"http://127.0.0.1:{public}/") as r:
                    raise AssertionError(f"still serving: {r.status}")
            except aiohttp.ClientConnectorError:
                pass
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
