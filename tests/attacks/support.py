"""What the attack tests share: a desk that records, the world, one sign-in attempt, and
the checks every refused attempt must pass."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from sidecar.dev.desk import make_desk_app
from sidecar.headers import canonical
from tests.attacks.hostile_idp import HostileIdP
from tests.world import CLIENT_SECRET, Browser, Reply, World, _add_query, open_world

SESSION_COOKIE_NAMES = ("tlsso", "__Host-tlsso")
IDENTITY_PREFIX = "x-ticketlog"


@dataclass
class DeskRequest:
    method: str
    raw_path: str
    headers: list[tuple[str, str]]

    @property
    def identity_headers(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.headers if canonical(k).startswith(IDENTITY_PREFIX)]


@dataclass
class RecordingDesk:
    """The sample desk, noting every request that reaches it."""

    requests: list[DeskRequest] = field(default_factory=list)

    def make_app(self) -> web.Application:
        app = make_desk_app()

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.requests.append(
                DeskRequest(request.method, request.raw_path, list(request.headers.items()))
            )
            return await handler(request)

        app.middlewares.insert(0, record)
        return app

    def with_identity(self) -> list[DeskRequest]:
        return [r for r in self.requests if r.identity_headers]


@dataclass
class AttackWorld:
    world: World
    idp: HostileIdP
    desk: RecordingDesk

    def browser(self, user: str | None = "alice") -> Browser:
        return self.world.browser(user)

    @property
    def port(self) -> int:
        return self.world.sidecar.listeners.public_port


@asynccontextmanager
async def open_attack_world(**kw: Any) -> AsyncIterator[AttackWorld]:
    idp = HostileIdP()
    desk = RecordingDesk()
    async with open_world(emulator=idp, desk_app=desk.make_app(), **kw) as world:
        yield AttackWorld(world, idp, desk)


@dataclass
class Attempt:
    """One sign-in driven step by step: /.sso/login, Entra, then the callback."""

    login: Reply
    authorize_url: str
    callback_url: str
    reply: Reply

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.callback_url).query)

    @property
    def code(self) -> str:
        return self.params["code"][0]

    @property
    def state(self) -> str:
        return self.params["state"][0]


async def reach_callback(browser: Browser, rd: str | None = "/") -> tuple[Reply, str, str]:
    """/.sso/login, then Entra as ``browser.user``: (login reply, authorize URL, callback URL)."""
    target = "/.sso/login" if rd is None else "/.sso/login?rd=" + quote(rd, safe="")
    login = await browser.get(target)
    assert login.status == 302, (login.status, login.text[:300])
    authorize = login.headers["Location"]
    assert browser.user is not None
    at_entra = await browser.get(_add_query(authorize, x_emulator_user=browser.user))
    assert at_entra.status in (302, 303), (at_entra.status, at_entra.text[:300])
    return login, authorize, at_entra.headers["Location"]


async def attempt_sign_in(browser: Browser, rd: str | None = "/") -> Attempt:
    login, authorize, callback = await reach_callback(browser, rd)
    reply = await browser.get(callback)
    return Attempt(login, authorize, callback, reply)


def sets_session_cookie(reply: Reply) -> bool:
    for raw in reply.headers.getall("Set-Cookie", []):
        jar: SimpleCookie = SimpleCookie()
        jar.load(raw)
        for name, morsel in jar.items():
            if name in SESSION_COOKIE_NAMES and morsel.value and morsel["max-age"] != "0":
                return True
    return False


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured log line with its structured fields, as the formatter would see them."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        fields = getattr(record, "fields", None)
        if fields is not None:
            parts.append(json.dumps(fields, default=str))
        parts.append(repr(record.args))
    return "\n".join(parts)


def secrets_of(attempt: Attempt | None, idp: HostileIdP) -> list[str]:
    """What must never be shown or logged: the code, the client secret, the ID tokens
    (whole, and their payload and signature parts)."""
    found = [CLIENT_SECRET]
    if attempt is not None:
        found.append(attempt.code)
    for token in idp.issued_id_tokens:
        found.append(token)
        found.extend(token.split(".")[1:])
    return [s for s in found if len(s) >= 16]


def assert_no_leak(texts: list[str], secrets: list[str]) -> None:
    """No secret appears in any text (``texts[-1]`` is usually the log, the others pages)."""
    for secret in secrets:
        for index, text in enumerate(texts):
            where = text.find(secret)
            assert where < 0, (
                f"secret {secret[:12]}... shown in text #{index}: "
                f"...{text[max(0, where - 150) : where + 40]!r}"
            )


async def assert_not_signed_in(aw: AttackWorld, browser: Browser) -> None:
    assert not any(name in browser.cookies for name in SESSION_COOKIE_NAMES), browser.cookies
    api = await browser.get("/api/tickets", navigate=False)
    assert api.status == 401, (api.status, api.text[:200])
    assert api.json()["error"] == "login_required"
    page = await browser.get("/tickets")
    assert page.status == 302, (page.status, page.text[:200])
    assert page.headers["Location"].startswith("/.sso/login")


async def assert_refused(
    aw: AttackWorld,
    browser: Browser,
    reply: Reply,
    caplog: pytest.LogCaptureFixture,
    *,
    status: int,
    attempt: Attempt | None = None,
) -> None:
    """A refused sign-in: the status, an HTML page, no session, nothing reached the desk,
    and nothing secret on the page or in the logs."""
    assert reply.status == status, (reply.status, reply.text[:500])
    assert reply.headers.get("Content-Type", "").startswith("text/html"), reply.headers
    assert "<html" in reply.text.lower()
    assert not sets_session_cookie(reply), reply.headers.getall("Set-Cookie", [])
    await assert_not_signed_in(aw, browser)
    assert aw.desk.with_identity() == []
    assert aw.desk.requests == [], [r.raw_path for r in aw.desk.requests]
    assert_no_leak([reply.text, log_text(caplog)], secrets_of(attempt, aw.idp))


@dataclass
class RawReply:
    status: int
    head: str
    body: bytes

    def header(self, name: str) -> list[str]:
        wanted = name.lower() + ":"
        return [
            line.split(":", 1)[1].strip()
            for line in self.head.split("\r\n")[1:]
            if line.lower().startswith(wanted)
        ]


async def raw_exchange(port: int, request: bytes, timeout: float = 5.0) -> RawReply:
    """Send bytes exactly as written and read one whole answer (by its Content-Length, else
    until the server closes); an answer-less close is status 0."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b""
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
                if _complete(data):
                    break
    except ConnectionResetError:
        pass
    finally:
        writer.close()
        with suppress(ConnectionResetError):
            await writer.wait_closed()
    if not data.startswith(b"HTTP/"):
        return RawReply(0, "", data)
    head, _, body = data.partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    return RawReply(int(text.split(" ", 2)[1]), text, body)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def raw_request(target: str, *lines: str, method: str = "GET", body: bytes = b"") -> bytes:
    head = [f"{method} {target} HTTP/1.1", *lines, "Connection: close"]
    if body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def desk_headers(reply_text: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in json.loads(reply_text)["headers"]]


def capture_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
