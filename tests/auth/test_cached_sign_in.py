"""A tenant without logout paths: a cached sign-in is allowed in one step (decide_now's
shortcut past _given). It must decide as the general decision does."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.world import Browser, World, open_world


def without_logout_paths(document: dict[str, Any]) -> None:
    document["tenants"][0].pop("logout_paths")


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with open_world(edit=without_logout_paths) as w:
        yield w


def identity_headers_at_desk(reply_text: str) -> dict[str, str]:
    headers = dict(json.loads(reply_text)["headers"])
    return {k: v for k, v in headers.items() if k.lower().startswith("x-ticketlog")}


async def signed_in(world: World) -> Browser:
    browser = world.browser("alice")
    await world.sign_up(browser)
    assert len(world.sidecar.runtime.sso.cache) == 1  # what follows is answered from it
    return browser


async def test_a_cached_sign_in_reaches_the_desk_with_the_verified_identity(
    world: World,
) -> None:
    browser = await signed_in(world)
    for _ in range(3):
        reply = await browser.get("/echo", navigate=False)
        assert reply.status == 200
        headers = identity_headers_at_desk(reply.text)
        assert headers["X-TicketLog-Email"] == "alice@contoso.test"
        assert headers["X-TicketLog-Identity"].count(".") == 2


async def test_a_public_path_carries_no_identity_even_for_a_cached_sign_in(
    world: World,
) -> None:
    browser = await signed_in(world)
    reply = await browser.get("/assets/app.css", navigate=False)
    assert reply.status == 200
    assert identity_headers_at_desk(reply.text) == {}


async def test_a_forged_identity_header_is_replaced_on_the_cached_path(world: World) -> None:
    browser = await signed_in(world)
    forged = {"X-TicketLog-Email": "mallory@evil.test", "X_TicketLog_User": "mallory"}
    reply = await browser.get("/echo", navigate=False, headers=forged)
    at_desk = json.loads(reply.text)["headers"]
    assert [v for k, v in at_desk if k.lower() == "x-ticketlog-email"] == ["alice@contoso.test"]
    assert not any(v == "mallory" for _, v in at_desk)


async def test_after_logout_the_same_cookie_is_refused_at_once(world: World) -> None:
    browser = await signed_in(world)
    cookies = dict(browser.cookies)
    assert (await browser.get("/.sso/logout")).status == 303
    replayed = Browser(world.http, world.sidecar.url, world.emulator_url, cookies=cookies)
    assert (await replayed.get("/echo", navigate=False)).status == 401
