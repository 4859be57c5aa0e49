"""docs/reference.md's identity-verification examples work as pasted.

The Python and the Node.js example are cut out of the document, written to files
unchanged and run as the desk would run them: against a real sidecar on loopback
(the world of tests/world.py), on the X-TicketLog-Identity header the desk
received for a signed-up user. A tampered or foreign token must be refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.world import HOST, open_world

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def example(name: str) -> str:
    """The fenced code block that follows `<!-- example: NAME -->`."""
    match = re.search(
        rf"<!-- example: {name} -->\n```[a-z]+\n(.*?)\n```", REFERENCE.read_text(), re.DOTALL
    )
    assert match, f"no `{name}` example in {REFERENCE}"
    return match.group(1) + "\n"


async def _run(*command: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


def _tampered(token: str) -> str:
    head, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{payload}.{flipped}"


@pytest.mark.parametrize("language", ["python", "node"])
async def test_the_verification_example_works_as_pasted(language: str, tmp_path: Path) -> None:
    if language == "python":
        script = tmp_path / "verify_identity.py"
        command = [sys.executable, str(script)]
    else:
        node = shutil.which("node")
        assert node, (
            "Node.js is needed to run the reference's Node example (apt-get install nodejs)"
        )
        script = tmp_path / "verify-identity.mjs"
        command = [node, str(script)]
    script.write_text(example(language))

    async with open_world() as world:
        browser = world.browser("alice")
        await world.sign_up(browser)
        echoed = (await browser.get("/echo", navigate=False)).json()
        headers = {name.lower(): value for name, value in echoed["headers"]}
        token = headers["x-ticketlog-identity"]
        env = {
            "TICKETLOG_SSO_URL": world.sidecar.url,
            "TICKETLOG_DESK_HOST": HOST,
            "TICKETLOG_SSO_ISSUER": f"http://{HOST}/.sso",  # the test's sidecar is plain http
        }
        status, out, err = await _run(*command, token, env=env)
        assert status == 0, err
        assert json.loads(out) == {
            "user": headers["x-ticketlog-user"],
            "email": headers["x-ticketlog-email"],
        }

        status, out, _ = await _run(*command, _tampered(token), env=env)
        assert status != 0
        assert not out
        # Checked as another desk would (another Host and audience), it is refused.
        status, out, _ = await _run(*command, token, env={**env, "TICKETLOG_DESK_HOST": "x.test"})
        assert status != 0
        assert not out
