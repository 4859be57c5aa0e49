"""Test helpers: real servers on loopback, configs built like an operator writes them."""

from __future__ import annotations

import asyncio
import copy
import secrets
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.config.loading import parse_config
from sidecar.config.model import Config
from sidecar.runtime import Runtime, open_runtime
from sidecar.serve import Listeners, start_listeners
from sidecar.store import Store

SESSION_KEY = "k" * 8 + secrets.token_urlsafe(32)


def base_config(desk_url: str, **tenant_extra: Any) -> dict[str, Any]:
    tenant: dict[str, Any] = {"host": "desk.example.test", "upstream": desk_url}
    tenant.update(tenant_extra)
    return {
        "server": {"listen": "127.0.0.1:0", "admin_listen": "localhost:0"},
        "session": {"store": "memory", "secret_keys": [SESSION_KEY]},
        "tenants": [tenant],
    }


#: The repository's top folder.
REPO = Path(__file__).resolve().parents[1]


def repository_files() -> list[Path]:
    """Every file of the repository a commit would hold (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def config_from(document: dict[str, Any]) -> Config:
    return parse_config(yaml.safe_dump(copy.deepcopy(document)), env={})


#: How the tests' stand-in apps (sample desk, emulators) are served, by pytest-aiohttp's
#: ``aiohttp_server`` or by ``serve_app``: their own access lines are no part of what any
#: test reads, and a desk handler still streaming at teardown must not hold the test for
#: aiohttp's default shutdown grace.
SERVER_OPTIONS: dict[str, Any] = {"access_log": None, "shutdown_timeout": 0.5}


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp app on 127.0.0.1, a free port; yields its base URL (no trailing /).

    The server is aiohttp's ``TestServer``, what pytest-aiohttp's ``aiohttp_server`` fixture
    starts; tests take that fixture. This wrapper exists for the places that cannot take a
    fixture: async context managers that build a whole world (tests/world.py and its kin,
    opened in a test's body, often several times with different configs) and the bench
    scripts, which run outside pytest.
    """
    server = TestServer(app, host="127.0.0.1", port=0)
    # Not ``async with server``: that starts it without these options.
    await server.start_server(**SERVER_OPTIONS)
    try:
        yield str(server.make_url(""))
    finally:
        await server.close()


@dataclass
class RunningSidecar:
    runtime: Runtime
    listeners: Listeners

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listeners.public_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.listeners.admin_port}"


@asynccontextmanager
async def run_sidecar(config: Config, store: Store | None = None) -> AsyncIterator[RunningSidecar]:
    async with open_runtime(config, store=store) as runtime:
        listeners = await start_listeners(runtime, public=("127.0.0.1", 0), admin=("127.0.0.1", 0))
        try:
            yield RunningSidecar(runtime, listeners)
        finally:
            await listeners.close()


async def raw_http(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes exactly as written (duplicate Host, absolute-form targets...)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()
        await writer.wait_closed()


async def collect_lines(stream: asyncio.StreamReader | None, into: list[str]) -> None:
    """Append each line a child process writes to ``into`` until it closes the stream."""
    assert stream is not None
    while line := await stream.readline():
        into.append(line.decode("utf-8", "replace"))


async def wait_ready(url: str, timeout: float = 15.0) -> None:
    """Poll ``url`` until it answers 200 (a process we started is up)."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(url)
            await asyncio.sleep(0.05)


class FakeClock:
    """An injected clock: time moves only when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
