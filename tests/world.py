"""A whole world on loopback: Entra emulator, sample desk, SMTP server, sidecar, a browser.

Nothing is mocked: every piece is a real server on 127.0.0.1, and the
"browser" is an HTTP client that keeps the sidecar's cookies and follows
redirects the way a browser does, so tests drive the flow a user walks.
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from sidecar.dev.desk import make_desk_app
from sidecar.dev.entra import EntraEmulator, sample_tenant
from sidecar.store import Store
from sidecar.store.redis_store import RedisStore
from tests.helpers import SESSION_KEY, RunningSidecar, config_from, run_sidecar, serve_app
from tests.smtp_server import Collector, start_smtp

HOST = "desk.contoso.test"
PUBLIC_BASE = f"http://{HOST}"
TENANT_ID = "6d5a4e1c-3b2a-4c1d-9e8f-7a6b5c4d3e2f"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "dev~emulator-secret-value"


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    text: str
    url: str

    def json(self) -> Any:
        import json

        return json.loads(self.text)

    def form_value(self, name: str) -> str:
        match = re.search(rf'name="{re.escape(name)}"[^>]*value="([^"]*)"', self.text) or re.search(
            rf'value="([^"]*)"[^>]*name="{re.escape(name)}"', self.text
        )
        assert match, f"no field {name} in page"
        return match.group(1).replace("&amp;", "&")


@dataclass
class Browser:
    http: aiohttp.ClientSession
    sidecar_url: str
    emulator_url: str
    host: str = HOST
    cookies: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # the emulator user this browser signs in as
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request

    def _route(self, url: str) -> tuple[str, dict[str, str]]:
        parts = urlsplit(url)
        if not parts.netloc or parts.netloc.split(":")[0] == self.host:
            path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
            return self.sidecar_url + path, {"Host": self.host}
        return url, {}

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None = None,
        navigate: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        target, extra = self._route(url)
        sending = {**self.headers, **extra}
        if navigate:
            sending["Accept"] = "text/html,application/xhtml+xml"
            sending["Sec-Fetch-Mode"] = "navigate"
        if extra and self.cookies:
            sending["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        sending.update(headers or {})
        async with self.http.request(
            method, target, data=data, headers=sending, allow_redirects=False
        ) as response:
            if extra:
                for raw in response.headers.getall("Set-Cookie", []):
                    jar: SimpleCookie = SimpleCookie()
                    jar.load(raw)
                    for name, morsel in jar.items():
                        if morsel["max-age"] == "0" or morsel.value == "":
                            self.cookies.pop(name, None)
                        else:
                            self.cookies[name] = morsel.value
            return Reply(response.status, response.headers, await response.text(), url)

    async def get(self, url: str, **kw: Any) -> Reply:
        return await self.request("GET", url, **kw)

    async def post(self, url: str, data: dict[str, str], **kw: Any) -> Reply:
        return await self.request("POST", url, data=data, **kw)

    async def submit(self, url: str, data: dict[str, str], **kw: Any) -> Reply:
        """POST a signup form and show the screen it redirects back to (post/redirect/get),
        as a browser does; any other answer is returned as it is."""
        reply = await self.post(url, data, **kw)
        location = reply.headers.get("Location", "")
        if reply.status == 303 and location.startswith("/.sso/signup"):
            return await self.get(location)
        return reply

    async def follow(self, reply: Reply, hops: int = 12) -> Reply:
        """Follow redirects like a browser; at the emulator, pick ``self.user``."""
        while reply.status in (301, 302, 303, 307) and hops:
            location = reply.headers["Location"]
            if location.startswith(self.emulator_url) and "/authorize" in location and self.user:
                location = _add_query(location, x_emulator_user=self.user)
            reply = await self.get(location)
            hops -= 1
        return reply

    async def open(self, url: str) -> Reply:
        return await self.follow(await self.get(url))


def _add_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class World:
    emulator: EntraEmulator
    emulator_url: str
    desk_url: str
    smtp: Collector
    smtp_port: int
    sidecar: RunningSidecar
    http: aiohttp.ClientSession
    document: dict[str, Any]

    def browser(self, user: str | None = "alice") -> Browser:
        return Browser(self.http, self.sidecar.url, self.emulator_url, user=user)

    async def sign_up(self, browser: Browser, rd: str = "/") -> Reply:
        """First sign-in through the signup screen with the mailed code; returns the landing."""
        page = await browser.open(rd)
        assert page.status == 200, page.text[:500]
        assert "/.sso/verify" not in page.text or "code" in page.text
        csrf = page.form_value("csrf_token")
        sent = await browser.post(
            "/.sso/signup", {"csrf_token": csrf, "rd": rd, **_email_field(page)}
        )
        assert sent.status == 303, sent.text[:500]
        step_two = await browser.follow(sent)
        code = self.smtp.last_code()
        done = await browser.post(
            "/.sso/verify",
            {"csrf_token": step_two.form_value("csrf_token"), "code": code, "rd": rd},
        )
        assert done.status == 303, done.text[:800]
        return await browser.follow(done)


def _email_field(page: Reply) -> dict[str, str]:
    return {}


def world_config(
    *, desk_url: str, emulator_url: str, smtp_port: int, store: str = "memory", redis_url: str = ""
) -> dict[str, Any]:
    session: dict[str, Any] = {"store": store, "secret_keys": [SESSION_KEY]}
    if store == "redis":
        session["redis_url"] = redis_url
    return {
        "server": {"listen": "127.0.0.1:0", "admin_listen": "localhost:0"},
        "session": session,
        "signup": {"resend_cooldown": "1s"},
        "email": {
            "backend": "smtp",
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "tls": "none",
                "from": "TicketLog <no-reply@ticketlog.test>",
                "timeout": "3s",
            },
        },
        "tenants": [
            {
                "host": HOST,
                "name": "Contoso Service Desk",
                "upstream": desk_url,
                "plan": "pro",
                "public_paths": ["/assets/"],
                "logout_paths": ["/logout"],
                "sso": {
                    "tenant": "contoso.test",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "authority": emulator_url,
                },
            },
            {"host": "plain.example.test", "upstream": desk_url},
        ],
    }


@asynccontextmanager
async def open_world(
    *,
    store: Store | None = None,
    edit: Any = None,
    emulator: EntraEmulator | None = None,
    desk_app: web.Application | None = None,
) -> AsyncIterator[World]:
    emulator = emulator or EntraEmulator(
        [sample_tenant(PUBLIC_BASE)], frontchannel_server_side=False
    )
    smtp = Collector()
    controller = start_smtp(smtp)
    try:
        async with (
            serve_app(emulator.make_app()) as emulator_url,
            serve_app(desk_app if desk_app is not None else make_desk_app()) as desk_url,
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
        ):
            document = world_config(
                desk_url=desk_url, emulator_url=emulator_url, smtp_port=controller.port
            )
            if edit is not None:
                edit(document)
            async with run_sidecar(config_from(copy.deepcopy(document)), store=store) as sidecar:
                yield World(
                    emulator, emulator_url, desk_url, smtp, controller.port, sidecar, http, document
                )
    finally:
        controller.stop()


@asynccontextmanager
async def two_replicas(
    redis_url: str, *, edit: Any = None
) -> AsyncIterator[tuple[World, RunningSidecar]]:
    """The world's sidecar (replica A) and a second one of the same config (replica B),
    each with its own connection to one Redis, as two pods of a deployment."""
    store_a, store_b = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    try:
        async with (
            open_world(store=store_a, edit=edit) as world,
            run_sidecar(config_from(world.document), store=store_b) as replica_b,
        ):
            yield world, replica_b
    finally:
        await store_a.close()
        await store_b.close()
