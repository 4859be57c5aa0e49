"""Faults around the proxy: a desk that resets mid-body, clients that stall or vanish, Entra down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.helpers import RunningSidecar, base_config, config_from, run_sidecar
from tests.world import open_world

HOST = "desk.example.test"


@pytest.fixture
async def sidecar(desk_url: str) -> AsyncIterator[RunningSidecar]:
    async with run_sidecar(config_from(base_config(desk_url))) as s:
        yield s


async def settled_task_count() -> int:
    for _ in range(50):
        await asyncio.sleep(0.02)
    return len(asyncio.all_tasks())


async def test_desk_resetting_mid_body_cuts_the_client_and_the_sidecar_carries_on(
    sidecar: RunningSidecar,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(sidecar.url + "/reset-mid-body", headers={"Host": HOST}) as r:
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        async with http.get(sidecar.url + "/echo", headers={"Host": HOST}) as r:
            assert r.status == 200
        async with http.get(sidecar.admin_url + "/metrics") as r:
            assert 'kind="stream_interrupted"' in await r.text()


async def test_client_vanishing_mid_upload_leaks_no_tasks(sidecar: RunningSidecar) -> None:
    before = await settled_task_count()
    for _ in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", sidecar.listeners.public_port)
        writer.write(
            f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 10000000\r\n\r\n".encode()
            + b"x" * 50_000
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    assert await settled_task_count() <= before
    async with (
        aiohttp.ClientSession() as http,
        http.get(sidecar.url + "/echo", headers={"Host": HOST}) as r,
    ):
        assert r.status == 200


async def test_client_vanishing_mid_download_leaks_no_tasks(sidecar: RunningSidecar) -> None:
    before = await settled_task_count()
    for _ in range(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.listeners.public_port)
        writer.write(f"GET /download?size=50000000 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        await writer.drain()
        await reader.read(100_000)
        writer.close()
        await writer.wait_closed()
    assert await settled_task_count() <= before


async def test_slow_uploader_still_gets_through(sidecar: RunningSidecar) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000
            await asyncio.sleep(0.05)

    async with (
        aiohttp.ClientSession() as http,
        http.post(sidecar.url + "/upload", data=trickle(), headers={"Host": HOST}) as r,
    ):
        assert (await r.json())["length"] == 10_000


async def test_entra_token_endpoint_down_gives_502_and_existing_sessions_keep_working() -> None:
    async with open_world() as world:
        signed_in = world.browser("alice")
        await world.sign_up(signed_in, rd="/echo")
        newcomer = world.browser("alice")
        start = await newcomer.get("/.sso/login?rd=/echo")
        at_entra = await newcomer.get(start.headers["Location"] + "&x_emulator_user=alice")
        world.emulator.available = False  # Entra goes down before the code is redeemed
        callback = await newcomer.get(at_entra.headers["Location"])
        assert callback.status == 502
        assert "Microsoft" in callback.text
        assert not any(name.startswith("tlsso") and "tx" not in name for name in newcomer.cookies)
        # Sessions already made need nothing from Entra.
        assert (await signed_in.get("/echo", navigate=False)).status == 200
        # Login with cached discovery still answers; the page comes from Entra being down.
        again = await world.browser("alice").get("/.sso/login")
        assert again.status == 302
