"""The whole sign-in and first-login flow against the emulator, the desk and SMTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import unquote

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.world import HOST, World, open_world


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with open_world() as w:
        yield w


def desk_headers(reply_text: str) -> dict[str, str]:
    import json

    return {k: v for k, v in json.loads(reply_text)["headers"]}


async def test_first_sign_in_signup_then_desk_with_verified_identity(world: World) -> None:
    browser = world.browser("alice")
    landing = await world.sign_up(browser, rd="/tickets/42?tab=open")
    assert landing.status == 200, landing.text[:300]
    assert landing.url.endswith("/tickets/42?tab=open")
    headers = desk_headers(landing.text)
    assert headers["X-TicketLog-Email"] == "alice@contoso.test"
    assert headers["X-TicketLog-User"].endswith(".6d5a4e1c-3b2a-4c1d-9e8f-7a6b5c4d3e2f")
    assert headers["X-TicketLog-Name"] == "Alice Example"
    assert "tlsso" not in headers.get("Cookie", "")
    # The identity assertion verifies against the sidecar's published keys.
    keys = await browser.get("/.sso/jwks.json", navigate=False)
    token = jwt.decode(headers["X-TicketLog-Identity"], KeySet.import_key_set(keys.json()))
    assert token.header["alg"] == "ES256"
    assert token.claims["sub"] == headers["X-TicketLog-User"]
    assert token.claims["aud"] == HOST
    assert token.claims["iss"] == f"http://{HOST}/.sso"
    assert token.claims["exp"] - token.claims["iat"] <= 300
    info = await browser.get("/.sso/userinfo", navigate=False)
    assert info.json()["email"] == "alice@contoso.test"


async def test_second_sign_in_skips_signup(world: World) -> None:
    first = world.browser("alice")
    await world.sign_up(first)
    second = world.browser("alice")
    landing = await second.open("/again")
    assert landing.status == 200
    assert desk_headers(landing.text)["X-TicketLog-Email"] == "alice@contoso.test"


async def test_no_session_navigation_redirects_and_api_gets_401(world: World) -> None:
    browser = world.browser(None)
    reply = await browser.get("/tickets?x=1")
    assert reply.status == 302
    assert (
        reply.headers["Location"] == "/.sso/login?rd=/tickets%3Fx%3D1"
        or unquote(reply.headers["Location"]) == "/.sso/login?rd=/tickets?x=1"
    )
    api = await browser.get("/api/tickets", navigate=False)
    assert api.status == 401
    assert api.json()["error"] == "login_required"
    assert "Location" not in api.headers
