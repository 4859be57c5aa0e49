"""`ticketlog-sso demo`: the whole product on one laptop, with no outside service.

The sidecar, the development Entra emulator, the sample desk and the console
mail backend run in this one process, with the memory store. The browser
reaches the desk at http://desk.localhost:PORT/ (browsers resolve *.localhost
to loopback), exactly as a customer's staff reach desk.contoso.com.
"""

from __future__ import annotations

import asyncio
import secrets
import signal

from aiohttp import web

from sidecar import logs
from sidecar.config.loading import parse_config
from sidecar.dev.desk import make_desk_app
from sidecar.dev.entra import EntraEmulator, sample_tenant
from sidecar.runtime import open_runtime
from sidecar.serve import bound_port, start_listeners

DEMO_HOST = "desk.localhost"
DEMO_CLIENT_ID = "11111111-2222-3333-4444-555555555555"
DEMO_CLIENT_SECRET = "dev~emulator-secret-value"


async def _serve(app: web.Application, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, bound_port(runner)


def demo_config_text(*, desk_url: str, emulator_url: str, public_port: int, admin_port: int) -> str:
    session_key = secrets.token_urlsafe(32)
    return f"""
server:
  listen: 127.0.0.1:{public_port}
  admin_listen: 127.0.0.1:{admin_port}
  shutdown_grace: 2s
session:
  store: memory
  secret_keys: ["{session_key}"]
signup:
  allow_reserved_email_domains: true   # the demo's users have .test addresses
email:
  backend: console
tenants:
  - host: {DEMO_HOST}
    name: Contoso Service Desk
    upstream: {desk_url}
    plan: pro
    public_paths: [/assets/]
    logout_paths: [/logout]
    sso:
      tenant: contoso.test
      client_id: {DEMO_CLIENT_ID}
      client_secret: "{DEMO_CLIENT_SECRET}"
      authority: {emulator_url}
"""


async def run_demo(*, port: int = 8080, admin_port: int = 9090, emulator_port: int = 0) -> None:
    logs.configure_logging()
    public_base = f"http://{DEMO_HOST}:{port}"
    emulator = EntraEmulator(
        [sample_tenant(public_base, client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET)],
        frontchannel_server_side=True,
    )
    emulator_runner, emulator_port = await _serve(emulator.make_app(), emulator_port)
    desk_runner, desk_port = await _serve(make_desk_app(), 0)
    config = parse_config(
        demo_config_text(
            desk_url=f"http://127.0.0.1:{desk_port}",
            emulator_url=f"http://127.0.0.1:{emulator_port}",
            public_port=port,
            admin_port=admin_port,
        )
    )
    async with open_runtime(config) as runtime:
        listeners = await start_listeners(runtime)
        print(
            "\nTicketLog SSO demo is running.\n"
            f"  Open:        http://{DEMO_HOST}:{listeners.public_port}/\n"
            f"  Entra (dev): http://127.0.0.1:{emulator_port}/  (a development emulator)\n"
            f"  Metrics:     http://127.0.0.1:{listeners.admin_port}/metrics\n"
            "Test users on the emulator's sign-in page:\n"
            "  alice  has an email claim (the usual case)\n"
            "  bob    has no email claim: types an address on the signup screen\n"
            "  erin   email from an unverified domain\n"
            "  carol  not assigned to the app (shows the 'ask your administrator' page)\n"
            "  dave   declines consent\n"
            "Verification codes are printed here (console mail backend).\n"
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
    await emulator_runner.cleanup()
    print("Demo stopped.", flush=True)
