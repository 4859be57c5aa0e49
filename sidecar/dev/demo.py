"""`ticketlog-sso demo`: the whole product on one laptop, with no outside service.

The sidecar, the development Entra emulator, the sample desk and the console
mail backend run in this one process, with the memory store. The browser
reaches the desk at http://desk.localhost:PORT/ (browsers resolve *.localhost
to loopback), exactly as a customer's staff reach desk.contoso.com.

The app proves itself to the emulator with a certificate, the recommended
credential (a fresh self-signed one, "uploaded" to the emulated app), and the
desk admits users holding the app role Agent or Requester.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import tempfile
from pathlib import Path

from aiohttp import web

from sidecar import logs
from sidecar.config.loading import parse_config
from sidecar.dev.certificates import self_signed
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


#: The demo's config, as written out in config/demo.yaml (a test keeps the two the same).
#: The ${DEMO_*} values are only known once the demo has started its servers; the loader
#: fills them in from ``demo_environment``, as it would from the environment.
DEMO_CONFIG = """\
# The config `ticketlog-sso demo` runs (sidecar/dev/demo.py holds the same text): one
# desk, the development Entra emulator as the authority, the memory store and the
# console mail backend. The demo fills in the ${DEMO_*} values when it starts (its ports,
# the sample desk's and the emulator's URLs, a fresh session key and certificate);
# tests/config/test_examples.py checks this file with `check-config`.
server:
  listen: 127.0.0.1:${DEMO_PORT}
  admin_listen: 127.0.0.1:${DEMO_ADMIN_PORT}
  shutdown_grace: 2s
session:
  store: memory
  secret_keys: ["${DEMO_SESSION_KEY}"]
signup:
  allow_reserved_email_domains: true   # the demo's users have .test addresses
email:
  backend: console
tenants:
  - host: desk.localhost
    name: Contoso Service Desk
    upstream: ${DEMO_DESK_URL}
    plan: pro
    public_paths: [/assets/]
    logout_paths: [/logout]
    sso:
      tenant: contoso.test
      client_id: 11111111-2222-3333-4444-555555555555
      client_certificate:
        certificate_file: ${DEMO_CERTIFICATE_FILE}
        private_key_file: ${DEMO_PRIVATE_KEY_FILE}
      authority: ${DEMO_ENTRA_URL}
      allowed_roles: [Agent, Requester]
"""


def demo_environment(
    *,
    desk_url: str,
    emulator_url: str,
    public_port: int,
    admin_port: int,
    certificate_file: str,
    private_key_file: str,
) -> dict[str, str]:
    """The values of DEMO_CONFIG's ${DEMO_*} references; a fresh session key each run."""
    return {
        "DEMO_PORT": str(public_port),
        "DEMO_ADMIN_PORT": str(admin_port),
        "DEMO_SESSION_KEY": secrets.token_urlsafe(32),
        "DEMO_DESK_URL": desk_url,
        "DEMO_ENTRA_URL": emulator_url,
        "DEMO_CERTIFICATE_FILE": certificate_file,
        "DEMO_PRIVATE_KEY_FILE": private_key_file,
    }


def _demo_certificate(emulator: EntraEmulator, directory: Path) -> tuple[Path, Path]:
    """A fresh certificate, uploaded to the emulated app, its files in ``directory``."""
    certificate = self_signed("TicketLog SSO demo", days=90)
    emulator.tenants[0].apps[0].certificates.append(certificate.certificate)
    certificate_file = directory / "demo.crt"
    private_key_file = directory / "demo.key"
    certificate_file.write_text(certificate.certificate_pem)
    private_key_file.touch(mode=0o600)
    private_key_file.write_text(certificate.private_key_pem)
    return certificate_file, private_key_file


async def run_demo(*, port: int = 8080, admin_port: int = 9090, emulator_port: int = 0) -> None:
    logs.configure_logging()
    public_base = f"http://{DEMO_HOST}:{port}"
    emulator = EntraEmulator(
        [sample_tenant(public_base, client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET)],
        frontchannel_server_side=True,
    )
    files = tempfile.TemporaryDirectory(prefix="ticketlog-sso-demo-")
    certificate_file, private_key_file = _demo_certificate(emulator, Path(files.name))
    emulator_runner, emulator_port = await _serve(emulator.make_app(), emulator_port)
    desk_runner, desk_port = await _serve(make_desk_app(), 0)
    config = parse_config(
        DEMO_CONFIG,
        demo_environment(
            desk_url=f"http://127.0.0.1:{desk_port}",
            emulator_url=f"http://127.0.0.1:{emulator_port}",
            public_port=port,
            admin_port=admin_port,
            certificate_file=str(certificate_file),
            private_key_file=str(private_key_file),
        ),
    )
    async with open_runtime(config) as runtime:
        listeners = await start_listeners(runtime)
        print(
            "\nTicketLog SSO demo is running.\n"
            f"  Open:        http://{DEMO_HOST}:{listeners.public_port}/\n"
            f"  Entra (dev): http://127.0.0.1:{emulator_port}/  (a development emulator)\n"
            f"  Metrics:     http://127.0.0.1:{listeners.admin_port}/metrics\n"
            "The desk admits the app roles Agent and Requester; the app signs in to Entra\n"
            "with a certificate (no client secret).\n"
            "Test users on the emulator's sign-in page:\n"
            "  alice  has an email claim (the usual case), app role Agent\n"
            "  bob    has no email claim: types an address on the signup screen; Requester\n"
            "  erin   email from an unverified domain; Requester\n"
            "  frank  has no app role: refused by the desk's allowed_roles\n"
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
    files.cleanup()
    print("Demo stopped.", flush=True)
