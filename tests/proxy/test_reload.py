"""Hot reload: tenants change without dropping connections; a bad file changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from sidecar.config.loading import load_config
from sidecar.reload import watch_config
from tests.helpers import base_config, run_sidecar


async def get_status(http: aiohttp.ClientSession, url: str, host: str, path: str = "/echo") -> int:
    async with http.get(url + path, headers={"Host": host}) as response:
        await response.read()
        return response.status


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def write_atomically(path: Path, document: dict[str, Any]) -> None:
    # Like a ConfigMap update: a new file swapped in, never a half-written one.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(document))
    tmp.replace(path)


async def test_reload_adds_tenants_keeps_connections_and_refuses_bad_files(
    desk_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    document = base_config(desk_url)
    write_atomically(path, document)
    async with run_sidecar(load_config(path)) as sidecar, aiohttp.ClientSession() as http:
        sidecar.runtime.config_path = str(path)
        watcher = asyncio.ensure_future(watch_config(sidecar.runtime, path, interval=0.05))
        try:
            assert await get_status(http, sidecar.url, "new.example.test") == 421
            # A slow request in flight while the tenants change still completes.
            slow = asyncio.ensure_future(
                get_status(http, sidecar.url, "desk.example.test", "/slow?delay=0.5")
            )
            document["tenants"].append({"host": "new.example.test", "upstream": desk_url})
            write_atomically(path, document)

            async def new_host_served() -> bool:
                return await get_status(http, sidecar.url, "new.example.test") == 200

            await wait_for(new_host_served)
            assert await slow == 200

            broken = {**document, "tenants": [{"host": "x.example.test", "upstream": "ftp://x"}]}
            write_atomically(path, broken)

            async def refused() -> bool:
                async with http.get(sidecar.admin_url + "/metrics") as r:
                    return "ticketlog_sso_config_last_reload_valid 0.0" in await r.text()

            await wait_for(refused)
            assert await get_status(http, sidecar.url, "new.example.test") == 200
            assert await get_status(http, sidecar.url, "x.example.test") == 421
        finally:
            watcher.cancel()
