"""Back after sign-out on a shared computer must not show the last user's desk page from the
browser cache: signed-in HTML without a cache header of the desk's own gets no-store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.world import Browser, World, open_world


def cache_desk() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<p>ticket 7 of alice</p>", content_type="text/html")

    async def cached(request: web.Request) -> web.Response:
        response = web.Response(text="<p>logo page</p>", content_type="text/html")
        response.headers["Cache-Control"] = "private, max-age=60"
        return response

    async def expires(request: web.Request) -> web.Response:
        response = web.Response(text="<p>dated</p>", content_type="text/html")
        response.headers["Expires"] = "Thu, 01 Jan 2099 00:00:00 GMT"
        return response

    async def data(request: web.Request) -> web.Response:
        return web.json_response({"tickets": [7]})

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "text/html"
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in range(3):
            await response.write(f"<p>part {part}</p>".encode() * 4096)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/assets/page", page)
    app.router.add_get("/cached", cached)
    app.router.add_get("/expires", expires)
    app.router.add_get("/data", data)
    app.router.add_get("/streamed", streamed)
    return app


def tenant_option(value: bool | None) -> Any:
    def edit(document: dict[str, Any]) -> None:
        if value is not None:
            document["tenants"][0]["signed_in_no_store"] = value

    return edit


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with open_world(desk_app=cache_desk(), edit=tenant_option(None)) as w:
        yield w


async def signed_in(world: World) -> Browser:
    browser = world.browser("alice")
    await world.sign_up(browser, rd="/page")
    return browser


async def test_signed_in_html_without_a_cache_header_is_not_stored(world: World) -> None:
    browser = await signed_in(world)
    reply = await browser.get("/page")
    assert reply.status == 200
    assert "ticket 7 of alice" in reply.text
    assert reply.headers.getall("Cache-Control") == ["no-store"]


async def test_streamed_html_is_covered_too(world: World) -> None:
    browser = await signed_in(world)
    reply = await browser.get("/streamed")
    assert reply.status == 200
    assert reply.headers.get("Transfer-Encoding") == "chunked"
    assert reply.text.count("<p>part 2</p>") == 4096
    assert reply.headers.getall("Cache-Control") == ["no-store"]


async def test_the_desks_own_caching_and_other_content_are_left_alone(world: World) -> None:
    browser = await signed_in(world)
    cached = await browser.get("/cached")
    assert cached.headers.getall("Cache-Control") == ["private, max-age=60"]
    dated = await browser.get("/expires")
    assert "Cache-Control" not in dated.headers
    assert dated.headers["Expires"] == "Thu, 01 Jan 2099 00:00:00 GMT"
    data = await browser.get("/data", navigate=False)
    assert "Cache-Control" not in data.headers


async def test_public_paths_and_anonymous_pages_are_left_alone(world: World) -> None:
    anonymous = await world.browser(None).get("/assets/page")
    assert anonymous.status == 200
    assert "Cache-Control" not in anonymous.headers
    browser = await signed_in(world)
    public = await browser.get("/assets/page")
    assert "Cache-Control" not in public.headers


async def test_the_tenant_can_turn_it_off() -> None:
    async with open_world(desk_app=cache_desk(), edit=tenant_option(False)) as world:
        browser = await signed_in(world)
        reply = await browser.get("/page")
        assert "ticket 7 of alice" in reply.text
        assert "Cache-Control" not in reply.headers
