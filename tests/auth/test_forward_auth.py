"""`/.sso/auth`: the proxy's decision as a gateway's answer, asked the way each gateway asks.

The sidecar runs with a real Entra emulator, desk and SMTP server; the test
plays the gateway, sending the headers nginx, Caddy/Traefik and Envoy send.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from sidecar.store.redis_store import RedisStore
from tests.redis_server import RedisProcess
from tests.world import HOST, Browser, Reply, World, open_world

GATEWAY = ["127.0.0.0/8"]
NAVIGATION = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}
XHR = {"Accept": "application/json"}


def as_gateway(document: dict[str, Any]) -> None:
    document["server"]["trusted_proxies"] = GATEWAY


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with open_world(edit=as_gateway) as w:
        yield w


def traefik(method: str, uri: str) -> dict[str, str]:
    return {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri, "X-Forwarded-Proto": "http"}


def nginx(method: str, uri: str) -> dict[str, str]:
    return {"X-Original-Method": method, "X-Original-URI": uri}


async def ask(browser: Browser, headers: dict[str, str], path: str = "/.sso/auth") -> Reply:
    """/.sso/auth as a gateway asks it: the browser's own headers (cookie included) plus
    the gateway's description of the request."""
    return await browser.get(path, navigate=False, headers=headers)


def identity_of(reply: Reply) -> dict[str, str]:
    return {k: v for k, v in reply.headers.items() if k.lower().startswith("x-ticketlog-")}


async def test_a_client_that_is_not_a_trusted_gateway_cannot_ask() -> None:
    async with open_world() as world:  # no trusted_proxies
        browser = world.browser("alice")
        await world.sign_up(browser)
        reply = await ask(browser, {**NAVIGATION, **traefik("GET", "/tickets")})
        assert reply.status == 403
        assert reply.json()["error"] == "untrusted_gateway"
        assert not identity_of(reply)
        # Not even an Envoy-style path lets it choose what is judged.
        assert (await ask(browser, XHR, "/.sso/auth/assets/x")).status == 403


async def test_no_session_navigation_redirects_to_sign_in_in_each_convention(
    world: World,
) -> None:
    browser = world.browser(None)
    reply = await ask(browser, {**NAVIGATION, **traefik("GET", "/tickets/7?tab=open")})
    assert reply.status == 302
    assert reply.headers["Location"] == "/.sso/login?rd=/tickets/7%3Ftab%3Dopen"
    assert reply.headers["Cache-Control"] == "no-store"
    # nginx takes only 2xx/401/403 from auth_request: 401 with the same Location.
    reply = await ask(browser, {**NAVIGATION, **nginx("GET", "/tickets/7?tab=open")})
    assert reply.status == 401
    assert reply.headers["Location"] == "/.sso/login?rd=/tickets/7%3Ftab%3Dopen"
    # Envoy's path_prefix: the path under /.sso/auth is the original, the method its own.
    reply = await ask(browser, NAVIGATION, "/.sso/auth/tickets/7?tab=open")
    assert reply.status == 302
    assert reply.headers["Location"] == "/.sso/login?rd=/tickets/7%3Ftab%3Dopen"


async def test_no_session_api_call_gets_401_json_and_no_redirect(world: World) -> None:
    browser = world.browser(None)
    for headers in (traefik("GET", "/api/tickets"), nginx("GET", "/api/tickets")):
        reply = await ask(browser, {**XHR, **headers})
        assert reply.status == 401
        assert "Location" not in reply.headers
        assert reply.json() == {
            "error": "login_required",
            "login_url": "/.sso/login?rd=/api/tickets",
        }
    # A POST is never a navigation, whatever it accepts.
    reply = await ask(browser, {**NAVIGATION, **traefik("POST", "/tickets")})
    assert reply.status == 401


async def test_signed_in_user_is_allowed_with_the_proxy_modes_identity(world: World) -> None:
    browser = world.browser("alice")
    landing = await world.sign_up(browser, rd="/echo")
    proxied = {k: v for k, v in json.loads(landing.text)["headers"]}
    reply = await ask(browser, {**NAVIGATION, **traefik("GET", "/tickets/1")})
    assert reply.status == 200, reply.text
    assert reply.text == ""
    assert reply.headers["Cache-Control"] == "private, max-age=5"
    identity = identity_of(reply)
    for name in ("X-TicketLog-User", "X-TicketLog-Email", "X-TicketLog-Name"):
        assert identity[name] == proxied[name]
    assert identity["X-TicketLog-Email"] == "alice@contoso.test"
    keys = await browser.get("/.sso/jwks.json", navigate=False)
    token = jwt.decode(identity["X-TicketLog-Identity"], KeySet.import_key_set(keys.json()))
    assert token.claims["aud"] == HOST
    assert token.claims["iss"] == f"http://{HOST}/.sso"
    assert token.claims["sub"] == identity["X-TicketLog-User"]
    # The same answer through nginx's and Envoy's conventions, for any method.
    assert (await ask(browser, {**XHR, **nginx("DELETE", "/api/t/1")})).status == 200
    envoy = await browser.request("POST", "/.sso/auth/api/t/1", navigate=False)
    assert envoy.status == 200
    assert identity_of(envoy)["X-TicketLog-User"] == identity["X-TicketLog-User"]


async def test_public_paths_and_sso_less_tenants_pass_without_identity(world: World) -> None:
    browser = world.browser("alice")
    await world.sign_up(browser)
    reply = await ask(browser, {**NAVIGATION, **traefik("GET", "/assets/app.css")})
    assert reply.status == 200
    assert not identity_of(reply)
    assert reply.headers["Cache-Control"] == "no-store"
    # A path that only looks public once decoded or resolved is judged as private.
    for sneaky in ("/assets/..%2Fadmin", "/assets/../admin", "/assets%2F..%2Fadmin"):
        reply = await ask(world.browser(None), {**XHR, **traefik("GET", sneaky)})
        assert reply.status == 401, sneaky
    plain = world.browser(None)
    plain.host = "plain.example.test"
    reply = await ask(plain, {**NAVIGATION, **nginx("GET", "/anything")})
    assert reply.status == 200
    assert not identity_of(reply)


async def test_signed_in_without_account_is_sent_to_signup(world: World) -> None:
    browser = world.browser("alice")
    first = await browser.open("/.sso/login?rd=/")  # signed in at Entra, not signed up
    assert first.status == 200
    assert "csrf_token" in first.text
    reply = await ask(browser, {**NAVIGATION, **traefik("GET", "/tickets/3")})
    assert reply.status == 302
    assert reply.headers["Location"] == "/.sso/signup?rd=/tickets/3"
    reply = await ask(browser, {**NAVIGATION, **nginx("GET", "/tickets/3")})
    assert reply.status == 403
    assert reply.headers["Location"] == "/.sso/signup?rd=/tickets/3"
    reply = await ask(browser, {**XHR, **traefik("GET", "/api/x")})
    assert reply.status == 403
    assert reply.json() == {"error": "signup_required", "signup_url": "/.sso/signup"}


async def test_the_desks_logout_path_ends_the_session_and_is_never_cached(world: World) -> None:
    browser = world.browser("alice")
    await world.sign_up(browser)
    cookie = dict(browser.cookies)
    reply = await ask(browser, {**NAVIGATION, **traefik("GET", "/logout")})
    assert reply.status == 200
    assert reply.headers["Cache-Control"] == "no-store"
    assert "Max-Age=0" in reply.headers["Set-Cookie"]
    browser.cookies = cookie  # the old cookie, replayed, no longer signs in
    reply = await ask(browser, {**XHR, **traefik("GET", "/tickets")})
    assert reply.status == 401


async def test_malformed_questions_get_400_and_our_prefix_is_never_approved(
    world: World,
) -> None:
    browser = world.browser("alice")
    await world.sign_up(browser)
    assert (await ask(browser, XHR)).status == 400  # nothing describes the request
    reply = await ask(browser, {**XHR, **traefik("GET", "tickets")})
    assert reply.status == 400
    assert "origin-form" in reply.json()["message"]
    reply = await ask(browser, {**XHR, **traefik("G ET", "/tickets")})
    assert reply.status == 400
    # The desk never receives /.sso/*, however it is spelled.
    for reserved in ("/.sso/userinfo", "/%2Esso/userinfo", "/x/../.sso/userinfo"):
        reply = await ask(browser, {**XHR, **traefik("GET", reserved)})
        assert reply.status == 403, reserved
        assert not identity_of(reply)


async def test_store_down_answers_503_and_public_paths_still_pass(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path)
    await redis.start()
    store = RedisStore.from_url(redis.url)
    try:
        async with open_world(store=store, edit=as_gateway) as world:
            browser = world.browser("alice")
            await world.sign_up(browser)
            assert (await ask(browser, {**XHR, **traefik("GET", "/t")})).status == 200
            await redis.stop()
            async with world.http.get(world.sidecar.admin_url + "/readyz") as ready:
                assert ready.status == 503  # the outage is noticed (the cache stops answering)
            reply = await ask(browser, {**XHR, **traefik("GET", "/t")})
            assert reply.status == 503
            assert reply.json()["error"] == "store_unavailable"
            assert reply.headers["Cache-Control"] == "no-store"
            assert not identity_of(reply)
            public = await ask(browser, {**XHR, **traefik("GET", "/assets/a.css")})
            assert public.status == 200
    finally:
        await store.close()
        await redis.stop()


async def test_a_tenant_without_upstream_serves_only_its_sso_routes() -> None:
    def forward_auth_only(document: dict[str, Any]) -> None:
        as_gateway(document)
        del document["tenants"][0]["upstream"]

    async with open_world(edit=forward_auth_only) as world:
        browser = world.browser("alice")
        page = await browser.get("/tickets")
        assert page.status == 404
        assert "<html" in page.text.lower()
        # Signing in and signing up work as ever; afterwards the gateway serves rd.
        landed = await browser.open("/.sso/login?rd=/tickets")
        assert landed.url == "/.sso/signup?rd=/tickets"
        assert "csrf_token" in landed.text
        reply = await ask(browser, {**NAVIGATION, **traefik("GET", "/tickets")})
        assert reply.status == 302
        assert reply.headers["Location"] == "/.sso/signup?rd=/tickets"
        after = await world.sign_up(browser, rd="/.sso/signup?rd=/tickets")
        assert after.status == 404  # the desk is the gateway's to serve, not ours
        reply = await ask(browser, {**NAVIGATION, **traefik("GET", "/tickets")})
        assert reply.status == 200
        assert identity_of(reply)["X-TicketLog-Email"] == "alice@contoso.test"
