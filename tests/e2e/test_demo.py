"""`make demo`'s program works: `python -m sidecar demo` walked end to end, then Ctrl-C.

The demo runs as a real subprocess on free ports. An HTTP client plays the browser: it
sends ``Host: desk.localhost:PORT`` (what a browser sends for the printed URL), keeps the
sidecar's cookies, follows redirects one by one, picks alice at the emulator with its
``x_emulator_user`` shortcut and reads the verification code from the demo's own output,
where the console mail backend prints it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_string
from email import policy as email_policy
from email.message import EmailMessage

import aiohttp
import pytest

from bench.procs import free_port
from tests.e2e.conftest import REPO_ROOT
from tests.helpers import collect_lines
from tests.world import Browser, Reply

DEMO_HOST = "desk.localhost"
ALICE_EMAIL = "alice@contoso.test"
MAIL_BANNER = "ticketlog-sso console mail (development only)"
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

pytestmark = pytest.mark.slow


@dataclass
class Demo:
    process: asyncio.subprocess.Process
    port: int
    admin_port: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.stdout)

    def diagnostics(self) -> str:
        return f"stdout:\n{self.output}\nstderr (tail):\n{''.join(self.stderr[-30:])}"

    async def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of ``pattern`` in stdout, waiting for it to be printed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            match = re.search(pattern, self.output, re.MULTILINE)
            if match:
                return match
            if self.process.returncode is not None:
                pytest.fail(f"demo exited with {self.process.returncode}\n{self.diagnostics()}")
            if loop.time() > deadline:
                pytest.fail(f"demo never printed {pattern!r}\n{self.diagnostics()}")
            await asyncio.sleep(0.05)

    def mails(self) -> list[EmailMessage]:
        """Every mail the console backend printed, parsed."""
        found = []
        for block in self.output.split("=" * 20 + " " + MAIL_BANNER + " " + "=" * 20 + "\n")[1:]:
            text = block.rsplit("\n" + "=" * 20, 1)[0]
            parsed = message_from_string(text, policy=email_policy.default)
            assert isinstance(parsed, EmailMessage)
            found.append(parsed)
        return found


@asynccontextmanager
async def run_demo() -> AsyncIterator[Demo]:
    """`python -m sidecar demo` on free ports; killed at the end if the test left it running."""
    port, admin_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sidecar",
        "demo",
        "--port",
        str(port),
        "--admin-port",
        str(admin_port),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    demo = Demo(process, port, admin_port)
    demo.readers = [
        asyncio.create_task(collect_lines(process.stdout, demo.stdout)),
        asyncio.create_task(collect_lines(process.stderr, demo.stderr)),
    ]
    try:
        yield demo
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        for reader in demo.readers:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(reader, 5)


class DemoBrowser(Browser):
    """tests/world.py's browser, sending the Host header with the port, as a browser does.

    The sidecar builds the redirect URI from the Host header's port, and the demo's emulator
    registered ``http://desk.localhost:PORT/.sso/callback``.
    """

    def _route(self, url: str) -> tuple[str, dict[str, str]]:
        target, extra = super()._route(url)
        if extra:
            extra["Host"] = f"{self.host}:{self.sidecar_url.rsplit(':', 1)[1]}"
        return target, extra


async def test_demo_walks_the_signup_flow_and_stops_cleanly_on_ctrl_c() -> None:
    async with (
        run_demo() as demo,
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
    ):
        opened = await demo.wait_for_output(r"Open:\s+(http://\S+)", STARTUP_TIMEOUT)
        assert opened.group(1) == f"http://{DEMO_HOST}:{demo.port}/"
        entra = await demo.wait_for_output(r"Entra \(dev\):\s+(http://127\.0\.0\.1:\d+)", 1)
        await demo.wait_for_output(r"Press Ctrl-C to stop\.", 1)

        browser = DemoBrowser(
            http,
            f"http://127.0.0.1:{demo.port}",
            entra.group(1),
            host=DEMO_HOST,
            user="alice",
        )
        # The desk sends the browser to Entra; alice signs in; the signup screen follows.
        signup = await browser.open("/")
        assert signup.status == 200, signup.text[:500] + demo.diagnostics()
        assert "Send verification code" in signup.text
        assert ALICE_EMAIL in signup.text

        sent = await browser.post("/.sso/signup", {"csrf_token": signup.form_value("csrf_token")})
        assert sent.status == 303, sent.text[:500]
        step_two = await browser.follow(sent)
        assert "Verification code" in step_two.text

        # The code is in the plain-text part of the mail the demo printed.
        code = await read_code(demo)
        done = await browser.post(
            "/.sso/verify", {"csrf_token": step_two.form_value("csrf_token"), "code": code}
        )
        assert done.status == 303, done.text[:500]
        desk = await browser.follow(done)
        assert desk.status == 200
        assert "TicketLog service desk (sample)" in desk.text
        assert desk_header(desk, "X-TicketLog-Email") == ALICE_EMAIL
        assert desk_header(desk, "X-TicketLog-Name") == "Alice Example"
        assert desk_header(desk, "X-TicketLog-Roles") == "Agent"

        # Frank holds no app role: the desk's allowed_roles refuse him, with no session.
        frank = DemoBrowser(
            http, f"http://127.0.0.1:{demo.port}", entra.group(1), host=DEMO_HOST, user="frank"
        )
        refused = await frank.open("/")
        assert refused.status == 403, refused.text[:500] + demo.diagnostics()
        assert "Contoso Service Desk" in refused.text
        assert "Agent, Requester" in refused.text
        assert not frank.cookies

        # The admin port answers too.
        async with http.get(f"http://127.0.0.1:{demo.admin_port}/healthz") as health:
            assert health.status == 200

        # Ctrl-C: a clean stop.
        demo.process.send_signal(signal.SIGINT)
        try:
            returncode = await asyncio.wait_for(demo.process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"demo did not stop within {STOP_TIMEOUT}s of SIGINT\n{demo.diagnostics()}")
        for reader in demo.readers:
            await asyncio.wait_for(reader, 5)
        assert returncode == 0, demo.diagnostics()
        assert demo.output.rstrip().endswith("Demo stopped."), demo.diagnostics()
        assert "Traceback" not in "".join(demo.stderr), demo.diagnostics()


async def read_code(demo: Demo, timeout: float = 5.0) -> str:
    await demo.wait_for_output(r"^=+$", timeout)  # the closing line of the printed mail
    mails = demo.mails()
    assert len(mails) == 1, demo.diagnostics()
    assert ALICE_EMAIL in str(mails[0]["To"])
    plain = mails[0].get_body(preferencelist=("plain",))
    assert plain is not None
    content = plain.get_content()
    assert isinstance(content, str)
    match = re.search(r"^\s*(\d{6})\s*$", content, re.MULTILINE)
    assert match, content
    return match.group(1)


def desk_header(page: Reply, name: str) -> str:
    """The value the sample desk shows for one header in its table."""
    match = re.search(rf"<tr><th>{re.escape(name)}</th><td>([^<]*)</td></tr>", page.text)
    assert match, f"{name} not on the desk page"
    return match.group(1)
