"""Regression tests for what a second read of the code found (each was a real bug)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from sidecar.dev.entra import EmulatedUser, EntraEmulator, sample_tenant
from sidecar.store.redis_store import RedisStore
from tests.helpers import base_config, config_from, raw_http, run_sidecar
from tests.world import PUBLIC_BASE, open_world

PLAIN = "plain.example.test"


async def test_huge_websocket_message_is_refused_not_buffered(desk_url: str) -> None:
    async with (
        run_sidecar(config_from(base_config(desk_url))) as sidecar,
        aiohttp.ClientSession() as http,
    ):
        ws = await http.ws_connect(sidecar.url + "/ws", headers={"Host": "desk.example.test"})
        with contextlib.suppress(ConnectionError):  # the sidecar may close mid-send
            await ws.send_bytes(b"x" * (17 * 1024 * 1024))
        reply = await ws.receive()
        # Not echoed: the sidecar closed the socket, 1009 "message too big" (RFC 6455
        # §7.4.1), or 1006 when it shut the connection while we were still sending.
        assert reply.type != aiohttp.WSMsgType.BINARY
        assert ws.close_code in (1009, 1006)
        with contextlib.suppress(ConnectionError):
            await ws.close()


async def test_invalid_websocket_handshake_is_400(desk_url: str) -> None:
    async with run_sidecar(config_from(base_config(desk_url))) as sidecar:
        request = (
            b"GET /ws HTTP/1.1\r\nHost: desk.example.test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        reply = await raw_http(sidecar.listeners.public_port, request)
        assert reply.startswith(b"HTTP/1.1 400")


async def test_many_sign_in_attempts_never_lock_the_browser_out() -> None:
    async with open_world() as world:
        browser = world.browser(None)
        for _ in range(20):
            reply = await browser.get("/.sso/login?rd=/")
            assert reply.status == 302
        assert sum(name.startswith("tlsso_tx_") for name in browser.cookies) <= 3
        assert (await browser.get("/")).status == 302  # not 400 for an oversized Cookie


@pytest.mark.parametrize("claim", ["jörg@contoso.test", "not an email"])
async def test_an_unusable_email_claim_lets_the_user_type_an_address(claim: str) -> None:
    tenant = sample_tenant(PUBLIC_BASE)
    tenant.users.append(
        EmulatedUser(
            "odd", "6d5a4e1c-0000-4000-8000-0000000000dd", "Odd Claim", "Odd", "Claim", claim
        )
    )
    async with open_world(emulator=EntraEmulator([tenant])) as world:
        browser = world.browser("odd")
        page = await browser.open("/echo")
        assert page.status == 200
        tag = page.text.split('name="email"', 1)[1].split(">", 1)[0]
        assert "readonly" not in tag
        sent = await browser.post(
            "/.sso/signup",
            {
                "csrf_token": page.form_value("csrf_token"),
                "rd": "/echo",
                "email": "jorg@contoso.com",
            },
        )
        assert sent.status == 303
        assert world.smtp.last_code(to="jorg@contoso.com")


async def test_trusted_proxy_headers_are_read_from_the_proxys_entry(desk_url: str) -> None:
    document = base_config(desk_url)
    document["server"]["trusted_proxies"] = ["127.0.0.0/8"]
    document["tenants"].append({"host": PLAIN, "upstream": desk_url})
    async with run_sidecar(config_from(document)) as sidecar:
        request = (
            b"GET /echo HTTP/1.1\r\nHost: internal:8080\r\nConnection: close\r\n"
            b"X-Forwarded-Host: evil.example\r\nX-Forwarded-Host: desk.example.test\r\n"
            b"X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n\r\n"
        )
        reply = await raw_http(sidecar.listeners.public_port, request)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
        body = reply.split(b"\r\n\r\n", 1)[1]
        assert b'["X-Forwarded-Host", "desk.example.test"]' in body
        assert b'["X-Forwarded-Proto", "http"]' in body
        assert b"evil.example" not in body


async def test_made_up_error_values_do_not_create_metric_series() -> None:
    async with open_world() as world:
        for i in range(5):
            browser = world.browser(None)
            start = await browser.get("/.sso/login")
            state = start.headers["Location"].split("state=", 1)[1].split("&", 1)[0]
            reply = await browser.get(
                f"/.sso/callback?state={state}&error=made_up_{i}&error_description=Correlation+ID:"
            )
            assert reply.status == 502  # never a 500, also with an empty correlation id
        async with world.http.get(world.sidecar.admin_url + "/metrics") as r:
            text = await r.text()
        assert "made_up_" not in text
        assert 'error="other"' in text


async def test_sign_in_with_the_store_down_is_503_before_going_to_entra() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0")
    try:
        async with open_world(store=store) as world:
            reply = await world.browser(None).get("/.sso/login?rd=/")
            assert reply.status == 503
            assert not world.emulator.requests
    finally:
        await store.close()


@pytest.mark.parametrize(
    "path", ["/x/../.sso/login", "/./.sso/login", "//.sso/login", "/x/..%2f.sso/login"]
)
async def test_our_prefix_never_reaches_the_desk_however_spelled(desk_url: str, path: str) -> None:
    async with run_sidecar(config_from(base_config(desk_url))) as sidecar:
        request = f"GET {path} HTTP/1.1\r\nHost: desk.example.test\r\nConnection: close\r\n\r\n"
        reply = await raw_http(sidecar.listeners.public_port, request.encode())
        assert reply.startswith(b"HTTP/1.1 404"), reply[:200]


async def test_a_send_after_lockout_inside_the_cooldown_is_429() -> None:
    async with open_world(edit=lambda d: d["signup"].update(resend_cooldown="10s")) as world:
        browser = world.browser("alice")
        page = await browser.open("/echo")
        csrf = page.form_value("csrf_token")
        await browser.post("/.sso/signup", {"csrf_token": csrf, "rd": "/echo"})
        code = world.smtp.last_code()
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            await browser.post("/.sso/verify", {"csrf_token": csrf, "code": wrong, "rd": "/echo"})
        await asyncio.sleep(5.2)  # past the double-click window, still inside the cooldown
        again = await browser.submit("/.sso/signup", {"csrf_token": csrf, "rd": "/echo"})
        assert again.status == 429
        assert "try again in" in again.text
