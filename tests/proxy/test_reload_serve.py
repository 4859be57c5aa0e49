"""`ticketlog-sso serve -c DIR` as a real process: SIGHUP reloads at once, an invalid change
is kept out with every problem logged by file, a session change waits for a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.procs import free_port
from tests.helpers import SESSION_KEY, collect_lines, wait_ready

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    process: asyncio.subprocess.Process
    port: int
    admin_port: int
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("event") == name:
                    found.append(entry)
        return found


@asynccontextmanager
async def serve(config: Path) -> AsyncIterator[Served]:
    port, admin_port = free_port(), free_port()
    main = config / "00-main.yaml"
    main.write_text(main.read_text().replace("PUBLIC", str(port)).replace("ADMIN", str(admin_port)))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sidecar",
        "serve",
        "-c",
        str(config),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    served = Served(process, port, admin_port)
    reader = asyncio.create_task(collect_lines(process.stderr, served.log))
    try:
        await wait_ready(f"http://127.0.0.1:{admin_port}/readyz")
        yield served
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
        await asyncio.wait_for(reader, 5)


def main_file(store_keys: list[str] | None = None) -> dict[str, Any]:
    return {
        "server": {"listen": "127.0.0.1:PUBLIC", "admin_listen": "127.0.0.1:ADMIN"},
        "session": {"store": "memory", "secret_keys": store_keys or [SESSION_KEY]},
    }


async def status(http: aiohttp.ClientSession, served: Served, host: str) -> int:
    async with http.get(served.url + "/echo", headers={"Host": host}) as response:
        await response.read()
        return response.status


async def metrics(http: aiohttp.ClientSession, served: Served) -> str:
    async with http.get(f"http://127.0.0.1:{served.admin_port}/metrics") as response:
        return await response.text()


async def eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


def rewrite_unnoticed(path: Path, text: str) -> None:
    """Change a file's content in place, keeping its size, inode and mtime: a change no
    poll can see, so only SIGHUP can make the sidecar read it."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    with path.open("r+") as file:
        file.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


async def test_sighup_reloads_at_once(desk_url: str, tmp_path: Path) -> None:
    config = tmp_path / "conf"
    config.mkdir()
    (config / "00-main.yaml").write_text(yaml.safe_dump(main_file()))
    tenants = config / "tenants.yaml"
    tenants.write_text(yaml.safe_dump({"tenants": [{"host": "aaa.test", "upstream": desk_url}]}))
    async with serve(config) as served, aiohttp.ClientSession() as http:
        assert await status(http, served, "aaa.test") == 200
        rewrite_unnoticed(tenants, tenants.read_text().replace("aaa.test", "bbb.test"))
        await asyncio.sleep(1.5)  # longer than the poll interval: no poll saw the change
        assert await status(http, served, "bbb.test") == 421
        served.process.send_signal(signal.SIGHUP)

        async def switched() -> bool:
            return await status(http, served, "bbb.test") == 200

        await eventually(switched, timeout=1.0)
        assert await status(http, served, "aaa.test") == 421
        assert 'ticketlog_sso_config_reloads_total{result="ok"} 1.0' in await metrics(http, served)
        assert served.events("config_reload_requested")
        # The helper that reads configs in child processes leaves with serve.
        pid = served.process.pid
        helpers = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(helpers) == 1
        served.process.terminate()
        assert await served.process.wait() == 0
        await asyncio.sleep(0.2)
        assert not Path(f"/proc/{helpers[0]}").exists()


async def test_invalid_change_is_kept_out_and_session_changes_wait_for_a_restart(
    desk_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "conf"
    config.mkdir()
    (config / "00-main.yaml").write_text(yaml.safe_dump(main_file()))
    tenants = config / "tenants.yaml"
    tenants.write_text(yaml.safe_dump({"tenants": [{"host": "aaa.test", "upstream": desk_url}]}))
    async with serve(config) as served, aiohttp.ClientSession() as http:
        # A bad tenant file: refused whole, every problem logged with its file.
        bad = config / "zz-new.yaml"
        bad.write_text(
            yaml.safe_dump(
                {
                    "tenants": [
                        {"host": "new.test", "upstream": "ftp://x"},
                        {"host": "aaa.test", "upstream": desk_url, "plna": "pro"},
                    ]
                }
            )
        )

        async def refused() -> bool:
            return 'ticketlog_sso_config_reloads_total{result="invalid"} 1.0' in await metrics(
                http, served
            )

        await eventually(refused)
        assert await status(http, served, "new.test") == 421
        assert await status(http, served, "aaa.test") == 200
        [entry] = served.events("config_reload_refused")
        assert (
            f"{bad}: tenants[0].upstream: must be an http:// or https:// URL, got 'ftp://x'"
            in (entry["problems"])
        )
        assert f"{bad}: tenants[1].plna: unknown field (did you mean plan?)" in entry["problems"]
        assert "ticketlog_sso_config_last_reload_valid 0.0" in await metrics(http, served)

        # Fixed, together with a new session key: tenants apply, the session waits.
        bad.write_text(yaml.safe_dump({"tenants": [{"host": "new.test", "upstream": desk_url}]}))
        main = config / "00-main.yaml"
        document = yaml.safe_load(main.read_text())
        document["session"]["secret_keys"] = ["n" * 40, SESSION_KEY]
        main.write_text(yaml.safe_dump(document))

        async def applied() -> bool:
            return await status(http, served, "new.test") == 200

        await eventually(applied)
        [restart] = served.events("config_change_needs_restart")
        assert restart["sections"] == ["session"]
        assert "n" * 40 not in "".join(served.log)
        assert "ticketlog_sso_config_last_reload_valid 1.0" in await metrics(http, served)
        # Killed outright, serve cannot stop its helper: the kernel does.
        pid = served.process.pid
        [helper] = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        served.process.kill()
        await served.process.wait()

        async def helper_gone() -> bool:
            status = Path(f"/proc/{helper}/status")
            return not status.exists() or "State:\tZ" in status.read_text()

        await eventually(helper_gone)
