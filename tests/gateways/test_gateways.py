"""The shipped nginx and Caddy configurations, run for real in front of the sample desk.

Each test runs once per gateway: nginx (`auth_request`, deploy/gateways/nginx) and
Caddy (`forward_auth`, deploy/gateways/caddy), as shipped with only their
addresses changed (bench.gateways). The browser talks to the gateway alone;
the gateway asks the sidecar's /.sso/auth and proxies to the desk itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from multidict import CIMultiDict

from bench.gateways import start_caddy_gateway, start_nginx_gateway
from bench.procs import Child, free_port, wait_for_port
from sidecar.store import Store
from sidecar.store.redis_store import RedisStore
from tests.redis_server import RedisProcess
from tests.world import HOST, Browser, World, open_world

IDENTITY = (
    "X-TicketLog-User",
    "X-TicketLog-Email",
    "X-TicketLog-Given-Name",
    "X-TicketLog-Family-Name",
    "X-TicketLog-Name",
    "X-TicketLog-Roles",
    "X-TicketLog-Identity",
)


def spellings(name: str) -> list[str]:
    """A header name as a forger writes it: any case, `_` for any `-`, and mixtures."""
    first, rest = name.split("-", 1)
    mixed_case = "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(name))
    return [
        name,
        name.lower(),
        name.upper(),
        mixed_case,
        name.replace("-", "_"),
        name.lower().replace("-", "_"),
        mixed_case.replace("-", "_"),
        f"{first}_{rest}",  # X_TicketLog-User
        f"{first}-{rest.replace('-', '_')}",  # X-TicketLog_User
    ]


FORGED = [(spelled, "forged") for name in IDENTITY for spelled in spellings(name)]
FORWARDING = ("X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP")
FORGED_FORWARDING = [
    *((spelled, "forged") for name in FORWARDING for spelled in spellings(name)),
    ("Forwarded", "for=forged;host=forged"),
]


@dataclass
class Gateway:
    world: World
    child: Child
    url: str

    def browser(self, user: str | None = "alice") -> Browser:
        return Browser(self.world.http, self.url, self.world.emulator_url, user=user)

    async def desk_view(
        self, browser: Browser, path: str, extra: list[tuple[str, str]] | None = None
    ) -> tuple[int, dict[str, Any] | str]:
        """What the desk's echo saw of a request through the gateway, as the browser
        sends it plus `extra` headers (several spellings of one name allowed)."""
        headers: CIMultiDict[str] = CIMultiDict([("Host", browser.host)])
        if browser.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        for name, value in extra or []:
            headers.add(name, value)
        async with self.world.http.get(
            self.url + path, headers=headers, allow_redirects=False
        ) as reply:
            text = await reply.text()
            if reply.content_type == "application/json" and '"headers"' in text:
                return reply.status, json.loads(text)
            return reply.status, text


def desk_headers(seen: dict[str, Any] | str) -> dict[str, str]:
    assert isinstance(seen, dict), seen
    return {k.lower(): v for k, v in seen["headers"]}


def identity_seen(seen: dict[str, Any] | str) -> dict[str, str]:
    """Every header the desk received that any spelling of an identity header could be."""
    return {
        k: v for k, v in desk_headers(seen).items() if k.replace("_", "-").startswith("x-ticketlog")
    }


def as_gateway_world(document: dict[str, Any]) -> None:
    document["server"]["trusted_proxies"] = ["127.0.0.0/8"]


Starter = Callable[..., Child]
STARTERS: dict[str, Starter] = {"nginx": start_nginx_gateway, "caddy": start_caddy_gateway}


@asynccontextmanager
async def running_gateway(
    kind: str, workdir: Path, store: Store | None = None
) -> AsyncIterator[Gateway]:
    async with open_world(edit=as_gateway_world, store=store) as world:
        port = free_port()
        child = STARTERS[kind](
            workdir=workdir,
            port=port,
            sidecar_port=world.sidecar.listeners.public_port,
            desk_port=urlsplit(world.desk_url).port,
            host=HOST,
        )
        try:
            await wait_for_port(child)
            yield Gateway(world, child, f"http://127.0.0.1:{port}")
        finally:
            child.stop()


@pytest.fixture(params=["nginx", "caddy"])
async def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(request.param, tmp_path) as running:
        yield running


async def test_sign_in_and_signup_through_the_gateway_then_the_desk_sees_the_identity(
    gateway: Gateway,
) -> None:
    browser = gateway.browser("alice")
    first = await browser.get("/tickets/5?tab=open")
    assert first.status == 302, first.text[:300]
    assert first.headers["Location"] == "/.sso/login?rd=/tickets/5%3Ftab%3Dopen"
    landing = await gateway.world.sign_up(browser, rd="/tickets/5?tab=open")
    assert landing.status == 200, landing.text[:300]
    seen = json.loads(landing.text)
    assert seen["path"] == "/tickets/5?tab=open"
    headers = desk_headers(seen)
    assert headers["x-ticketlog-email"] == "alice@contoso.test"
    assert headers["x-ticketlog-name"] == "Alice Example"
    assert headers["x-forwarded-host"] == HOST
    # The assertion verifies against the sidecar's keys, for this desk.
    keys = await browser.get("/.sso/jwks.json", navigate=False)
    token = jwt.decode(headers["x-ticketlog-identity"], KeySet.import_key_set(keys.json()))
    assert token.claims["aud"] == HOST
    assert token.claims["sub"] == headers["x-ticketlog-user"]
    # The sidecar's cookies stay with the sidecar.
    assert "tlsso" not in headers.get("cookie", "")
    info = await browser.get("/.sso/userinfo", navigate=False)
    assert info.json()["email"] == "alice@contoso.test"


async def test_api_calls_without_a_session_get_the_sidecars_401_json(gateway: Gateway) -> None:
    browser = gateway.browser(None)
    reply = await browser.get(
        "/api/tickets", navigate=False, headers={"Accept": "application/json"}
    )
    assert reply.status == 401
    assert reply.json() == {"error": "login_required", "login_url": "/.sso/login?rd=/api/tickets"}
    posted = await browser.post("/tickets", {"title": "x"}, navigate=False)
    assert posted.status == 401


async def test_signed_in_without_account_is_sent_to_signup(gateway: Gateway) -> None:
    browser = gateway.browser("alice")
    await browser.open("/.sso/login?rd=/")
    page = await browser.get("/tickets/9")
    assert page.status == 302
    assert page.headers["Location"] == "/.sso/signup?rd=/tickets/9"
    api = await browser.get("/api/x", navigate=False)
    assert api.status == 403
    assert api.json()["error"] == "signup_required"


async def test_forged_identity_headers_never_reach_the_desk_in_any_spelling(
    gateway: Gateway,
) -> None:
    browser = gateway.browser("alice")
    await gateway.world.sign_up(browser, rd="/echo")
    status, seen = await gateway.desk_view(browser, "/echo", FORGED + FORGED_FORWARDING)
    assert status == 200
    identity = identity_seen(seen)
    # The forwarding headers the desk reads are the gateway's, in no other spelling.
    headers = desk_headers(seen)
    assert headers["x-forwarded-host"] == HOST
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert not [k for k, v in headers.items() if "forged" in v and "icketlog" not in k], headers
    assert "forged" not in identity.values()
    assert identity["x-ticketlog-email"] == "alice@contoso.test"
    # The roles are alice's own from her ID token (the emulator gives her Agent), not forged.
    assert identity["x-ticketlog-roles"] == "Agent"
    # Signed out, on a public path, on an SSO-less desk: none of them passes either.
    public_status, public = await gateway.desk_view(browser, "/assets/app.css", FORGED)
    assert public_status == 200
    assert identity_seen(public) == {}
    anonymous_status, _ = await gateway.desk_view(gateway.browser(None), "/echo", FORGED)
    assert anonymous_status == 401


async def test_forged_forwarding_headers_cannot_move_the_decision(gateway: Gateway) -> None:
    """A client names a public path, another tenant or another method in the headers
    the sidecar reads the original request from: the gateway overwrites them all."""
    browser = gateway.browser(None)
    forged = [
        ("X-Forwarded-Uri", "/assets/app.css"),
        ("X-Forwarded-Method", "OPTIONS"),
        ("X-Original-URI", "/assets/app.css"),
        ("X-Original-Method", "GET"),
        ("X-Forwarded-Host", "plain.example.test"),
        ("X-Forwarded-Proto", "https"),
        ("X_Forwarded_Uri", "/assets/app.css"),
        ("X_Original_URI", "/assets/app.css"),
        ("Forwarded", "host=plain.example.test"),
    ]
    status, seen = await gateway.desk_view(browser, "/private", forged)
    assert status == 401, seen
    # Nor can a client ask the decision point itself.
    for path in ("/.sso/auth", "/.sso/auth/private"):
        direct, _ = await gateway.desk_view(browser, path, forged)
        assert direct == 404, path


async def test_public_paths_pass_without_sign_in_or_identity(gateway: Gateway) -> None:
    status, seen = await gateway.desk_view(gateway.browser(None), "/assets/app.css")
    assert status == 200
    assert identity_seen(seen) == {}
    # A path that is public only once decoded or resolved is not.
    status, _ = await gateway.desk_view(gateway.browser(None), "/assets/..%2Fprivate")
    assert status in (400, 401)
    signed_in = gateway.browser("alice")
    await gateway.world.sign_up(signed_in, rd="/echo")
    await gateway.desk_view(signed_in, "/echo")  # a signed-in answer the gateway may reuse
    status, seen = await gateway.desk_view(signed_in, "/assets/app.css")
    assert status == 200
    assert identity_seen(seen) == {}


async def test_logout_ends_the_session_for_the_gateway_too(gateway: Gateway) -> None:
    browser = gateway.browser("alice")
    await gateway.world.sign_up(browser, rd="/echo")
    assert (await gateway.desk_view(browser, "/echo"))[0] == 200
    out = await browser.open("/.sso/logout")
    assert out.status == 200
    assert "signed out" in out.text.lower()
    assert (await browser.get("/echo", navigate=False)).status == 401
    # The desk's own logout path: forwarded to the desk, and our session ends with it.
    again = gateway.browser("alice")
    assert (await again.open("/echo")).status == 200  # signed in again; already signed up
    old_cookies = dict(again.cookies)
    desk_logout = await again.get("/logout", navigate=False)
    assert desk_logout.status == 200
    assert desk_logout.text == "desk signed out"
    again.cookies = old_cookies
    # The session is gone in the store; a gateway cache may hold it for cache_ttl.
    fresh_path = "/after-logout"
    assert (await again.get(fresh_path, navigate=False)).status == 401


@pytest.mark.parametrize("kind", ["nginx", "caddy"])
async def test_store_down_is_503_through_the_gateway_and_public_paths_flow(
    kind: str, tmp_path: Path
) -> None:
    redis = RedisProcess(tmp_path)
    await redis.start()
    store = RedisStore.from_url(redis.url)
    try:
        async with running_gateway(kind, tmp_path, store=store) as gateway:
            browser = gateway.browser("alice")
            await gateway.world.sign_up(browser, rd="/echo")
            await redis.stop()
            async with gateway.world.http.get(gateway.world.sidecar.admin_url + "/readyz") as ready:
                assert ready.status == 503
            reply = await browser.get("/fresh-path", navigate=False)
            assert reply.status == 503, reply.text
            assert reply.json()["error"] == "store_unavailable"
            page = await browser.get("/another-path")
            assert page.status == 503
            assert "try again" in page.text.lower()
            status, _ = await gateway.desk_view(browser, "/assets/app.css")
            assert status == 200
    finally:
        await store.close()
        await redis.stop()


async def auth_questions(gateway: Gateway) -> float:
    """How many requests of the desk's tenant the sidecar has answered so far."""
    async with gateway.world.http.get(gateway.world.sidecar.admin_url + "/metrics") as reply:
        text = await reply.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ticketlog_sso_requests_total{") and f'tenant="{HOST}"' in line
    )


async def test_nginx_reuses_a_signed_in_answer_for_at_most_cache_ttl(tmp_path: Path) -> None:
    async with running_gateway("nginx", tmp_path) as gateway:
        browser = gateway.browser("alice")
        await gateway.world.sign_up(browser, rd="/echo")
        before = await auth_questions(gateway)
        for _ in range(5):
            assert (await gateway.desk_view(browser, "/tickets"))[0] == 200
        assert await auth_questions(gateway) - before == 1  # asked once, then cached
        # The desk's logout path is never answered from the cache: the session ends.
        old_cookies = dict(browser.cookies)
        assert (await browser.get("/logout", navigate=False)).status == 200
        browser.cookies = old_cookies
        # A replayed cookie may hold on a cached path for at most session.cache_ttl (5 s),
        # the bound the sidecar's own cache has across replicas; a new path asks again.
        assert (await gateway.desk_view(browser, "/other"))[0] == 401
        await asyncio.sleep(5.5)
        assert (await gateway.desk_view(browser, "/tickets"))[0] == 401


async def test_websockets_go_through_the_gateway_with_the_identity(gateway: Gateway) -> None:
    browser = gateway.browser("alice")
    await gateway.world.sign_up(browser, rd="/echo")
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    async with gateway.world.http.ws_connect(
        gateway.url + "/ws", headers={"Host": HOST, "Cookie": cookie}
    ) as ws:
        await ws.send_str("hello")
        assert await ws.receive_str() == "echo:hello"
        await ws.send_str("whoami")
        seen = {k.lower(): v for k, v in json.loads(await ws.receive_str()).items()}
        assert seen["x-ticketlog-email"] == "alice@contoso.test"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await gateway.world.http.ws_connect(gateway.url + "/ws", headers={"Host": HOST})
    assert refused.value.status == 401
