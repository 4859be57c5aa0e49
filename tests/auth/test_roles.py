"""App roles: what the desk is told (X-TicketLog-Roles, `roles` in the identity JWT) and
who gets in with `sso.allowed_roles`, through real servers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from sidecar.headers import encode_roles
from tests.auth.test_flow import desk_headers
from tests.world import Browser, World, open_world


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with open_world() as w:
        yield w


def only_agents(document: dict[str, Any]) -> None:
    document["tenants"][0]["sso"]["allowed_roles"] = ["Agent"]


async def identity_claims(browser: Browser, headers: dict[str, str]) -> dict[str, Any]:
    keys = await browser.get("/.sso/jwks.json", navigate=False)
    token = jwt.decode(headers["X-TicketLog-Identity"], KeySet.import_key_set(keys.json()))
    return dict(token.claims)


async def test_roles_reach_the_desk_as_header_and_jwt(world: World) -> None:
    browser = world.browser("alice")
    landing = await world.sign_up(browser, rd="/echo")
    headers = desk_headers(landing.text)
    assert headers["X-TicketLog-Roles"] == "Agent"
    assert (await identity_claims(browser, headers))["roles"] == ["Agent"]
    info = await browser.get("/.sso/userinfo", navigate=False)
    assert info.json()["roles"] == ["Agent"]


async def test_no_roles_claim_no_header_no_jwt_member(world: World) -> None:
    browser = world.browser("frank")
    landing = await world.sign_up(browser, rd="/echo")
    headers = desk_headers(landing.text)
    assert "X-TicketLog-Roles" not in headers
    assert "roles" not in await identity_claims(browser, headers)
    info = await browser.get("/.sso/userinfo", navigate=False)
    assert "roles" not in info.json()


async def test_role_values_are_encoded_so_the_list_splits_back_exactly(world: World) -> None:
    roles = ["Desk, Tier 1", "Ünïcode", "50%", "Line\r\nBreak"]
    world.emulator.tenants[0].user("alice").roles = roles  # type: ignore[union-attr]
    browser = world.browser("alice")
    headers = desk_headers((await world.sign_up(browser, rd="/echo")).text)
    value = headers["X-TicketLog-Roles"]
    assert value == "Desk%2C Tier 1,%C3%9Cn%C3%AFcode,50%25,Line%0D%0ABreak"
    assert [unquote(part) for part in value.split(",")] == roles
    # The JWT carries the exact Unicode values.
    assert (await identity_claims(browser, headers))["roles"] == roles


def test_encode_roles_keeps_plain_values() -> None:
    assert encode_roles(("Agent", "Requester")) == "Agent,Requester"
    assert encode_roles(()) == ""


@pytest.mark.parametrize("user", ["frank", "bob"])
async def test_a_user_without_an_allowed_role_is_refused_at_the_callback(user: str) -> None:
    async with open_world(edit=only_agents) as world:
        browser = world.browser(user)
        page = await browser.open("/tickets")
        assert page.status == 403
        assert "Contoso Service Desk" in page.text  # the desk's name
        assert "Agent" in page.text  # the roles it needs
        assert "tlsso" not in browser.cookies  # no session
        again = await browser.get("/tickets")
        assert again.status == 302
        assert again.headers["Location"].startswith("/.sso/login")
        api = await browser.get("/api/tickets", navigate=False)
        assert api.status == 401


async def test_a_user_with_an_allowed_role_gets_in() -> None:
    async with open_world(edit=only_agents) as world:
        landing = await world.sign_up(world.browser("alice"), rd="/echo")
        assert desk_headers(landing.text)["X-TicketLog-Roles"] == "Agent"


async def test_a_removed_role_ends_the_session_at_the_next_sign_in() -> None:
    async with open_world(edit=only_agents) as world:
        browser = world.browser("alice")
        await world.sign_up(browser, rd="/echo")
        assert "tlsso" in browser.cookies
        # The admin removes Alice's role assignment in Entra; she signs in again.
        world.emulator.tenants[0].user("alice").roles = None  # type: ignore[union-attr]
        page = await browser.open("/.sso/login?rd=/echo")
        assert page.status == 403
        assert "tlsso" not in browser.cookies
        # The old session cookie, replayed, opens nothing either.
        left = await browser.get("/echo", navigate=False)
        assert left.status == 401


async def test_a_malformed_roles_claim_is_refused() -> None:
    async with open_world() as world:

        def string_roles(header: dict[str, Any], claims: dict[str, Any]) -> None:
            claims["roles"] = "Agent"

        world.emulator.id_token_hook = string_roles
        page = await world.browser("alice").open("/")
        assert page.status == 502


def test_allowed_roles_must_be_role_values() -> None:
    from sidecar.config.loading import ConfigError
    from tests.helpers import config_from
    from tests.world import world_config

    document = world_config(
        desk_url="http://127.0.0.1:9", emulator_url="http://127.0.0.1:9", smtp_port=25
    )
    for bad in ("", "Tier 1"):
        document["tenants"][0]["sso"]["allowed_roles"] = ["Agent", bad]
        with pytest.raises(ConfigError) as caught:
            config_from(document)
        assert caught.value.problems == [
            f"tenants[0].sso.allowed_roles: every role must be an app role Value (no spaces), got '{bad}'"
        ]
    document["tenants"][0]["sso"]["allowed_roles"] = "Agent"
    sso = config_from(document).tenants[0].sso
    assert sso is not None
    assert sso.allowed_roles == ("Agent",)


def test_sessions_keep_roles_and_sessions_stored_before_roles_still_load() -> None:
    import json

    from sidecar.sign_in.storage import SESSION_RECORD, SessionRecord

    session = SessionRecord(
        key="session:h:x", host="desk.contoso.test", user_key="o.t", oid="o", tid="t",
        email_claim=None, email_domain_verified=None, given_name=None, family_name=None,
        name=None, entra_sid=None, login_hint=None, created_at=1.0, last_seen=1.0,
        roles=("Agent", "Desk, Tier 1"),
    )  # fmt: skip
    again = SESSION_RECORD.decode(SESSION_RECORD.encode(session))
    assert again == session
    assert again is not None
    assert again.roles == ("Agent", "Desk, Tier 1")
    older = json.loads(SESSION_RECORD.encode(session))
    del older["roles"], older["v"]
    loaded = SESSION_RECORD.decode(json.dumps(older).encode())
    assert loaded is not None
    assert loaded.roles is None


async def test_the_role_refusal_speaks_the_browsers_language() -> None:
    async with open_world(edit=only_agents) as world:
        browser = world.browser("frank")
        browser.headers["Accept-Language"] = "de-DE,de;q=0.9,en;q=0.5"
        page = await browser.open("/tickets")
        assert page.status == 403
        assert '<html lang="de"' in page.text
        assert "Sie haben keinen Zugang zu diesem Service Desk" in page.text
        assert "Contoso Service Desk erfordert eine dieser Rollen" in page.text
        assert "Agent" in page.text
