"""`ticketlog-sso demo`: the whole product on one laptop, with no outside service."""

from __future__ import annotations

import asyncio
import secrets
import signal

from aiohttp import web

from sidecar import logs
from sidecar.config.loading import parse_config
from sidecar.dev.desk import make_desk_app
from sidecar.runtime import open_runtime
from sidecar.serve import bound_port, start_listeners

DEMO_HOST = "desk.localhost"


async def _serve(app: web.Application, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, bound_port(runner)


def demo_config_text(*, desk_url: str, public_port: int, admin_port: int) -> str:
    session_key = secrets.token_urlsafe(32)
    return f"""
server:
  listen: 127.0.0.1:{public_port}
  admin_listen: 127.0.0.1:{admin_port}
  shutdown_grace: 2s
session:
  store: memory
  secret_keys: ["{session_key}"]
tenants:
  - host: {DEMO_HOST}
    upstream: {desk_url}
    public_paths: [/assets/]
"""


async def run_demo(*, port: int = 8080, admin_port: int = 9090) -> None:
    logs.configure_logging()
    desk_runner, desk_port = await _serve(make_desk_app(), 0)
    config = parse_config(
        demo_config_text(
            desk_url=f"http://127.0.0.1:{desk_port}", public_port=port, admin_port=admin_port
        )
    )
    async with open_runtime(config) as runtime:
        listeners = await start_listeners(runtime)
        print(
            "\nTicketLog SSO demo is running.\n"
            f"  Open:    http://{DEMO_HOST}:{listeners.public_port}/\n"
            f"  Metrics: http://127.0.0.1:{listeners.admin_port}/metrics\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        runtime.draining = True
        await listeners.close()
    await desk_runner.cleanup()
    print("Demo stopped.", flush=True)
