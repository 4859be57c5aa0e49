"""The first-login gate: signup screen, mailed code, accounts (issue: first sign-in)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from urllib.parse import unquote

import pytest

from sidecar.dev.entra import EmulatedUser, EntraEmulator, sample_tenant
from sidecar.signup import AccountStore
from sidecar.store.redis_store import RedisStore
from tests.world import HOST, PUBLIC_BASE, Browser, Reply, World, open_world

TID = "6d5a4e1c-3b2a-4c1d-9e8f-7a6b5c4d3e2f"
EXTRA_USERS = [
    EmulatedUser("mallory", "6d5a4e1c-0000-4000-8000-0000000ba11e", "Mallory Other",
                 "Mallory", "Other", "alice@contoso.test"),
    EmulatedUser("xss", "6d5a4e1c-0000-4000-8000-000000000555", "<script>alert(1)</script>",
                 "Eve\r\nX-Injected: yes", "<img src=x onerror=alert(2)>", "eve@contoso.test"),
    EmulatedUser("jose", "6d5a4e1c-0000-4000-8000-00000000105e", "José Müller-Łukasz 田中",
                 "José", "Müller-Łukasz", "jose@contoso.test"),
]  # fmt: skip


def emulator() -> EntraEmulator:
    tenant = sample_tenant(PUBLIC_BASE)
    tenant.users.extend(EXTRA_USERS)
    return EntraEmulator([tenant])


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with open_world(emulator=emulator()) as w:
        yield w


def desk_headers(reply: Reply) -> dict[str, str]:
    return {k: v for k, v in json.loads(reply.text)["headers"]}


def email_input_is_readonly(page: Reply) -> bool:
    tag = re.search(r"<input[^>]*name=\"email\"[^>]*>", page.text)
    assert tag, "no email input"
    return "readonly" in tag.group(0)


async def at_signup(world: World, user: str, rd: str = "/echo") -> tuple[Browser, Reply]:
    browser = world.browser(user)
    page = await browser.open(rd)
    assert page.status == 200
    assert "/.sso/signup" in page.url
    return browser, page


async def send_code(browser: Browser, page: Reply, **fields: str) -> Reply:
    return await browser.post(
        "/.sso/signup", {"csrf_token": page.form_value("csrf_token"), "rd": "/echo", **fields}
    )


async def enter_code(browser: Browser, code: str) -> Reply:
    page = await browser.get("/.sso/signup?rd=/echo")
    return await browser.post(
        "/.sso/verify", {"csrf_token": page.form_value("csrf_token"), "code": code, "rd": "/echo"}
    )


async def shown(browser: Browser, reply: Reply) -> Reply:
    """The screen a form POST sends the browser back to (post/redirect/get)."""
    assert reply.status == 303, (reply.status, reply.text[:300])
    assert reply.headers["Location"].startswith("/.sso/signup?rd=")
    return await browser.get(reply.headers["Location"])


async def test_screen_shows_entra_identity_with_locked_email_and_advice(world: World) -> None:
    _, page = await at_signup(world, "alice")
    assert "Alice Example" in page.text
    assert "alice@contoso.test" in page.text
    assert email_input_is_readonly(page)
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_wrong_codes_lock_out_and_the_right_code_then_fails(world: World) -> None:
    browser, page = await at_signup(world, "alice")
    assert (await send_code(browser, page)).status == 303
    code = world.smtp.last_code()
    wrong = "000000" if code != "000000" else "111111"
    statuses = [(await shown(browser, await enter_code(browser, wrong))).status for _ in range(5)]
    assert statuses == [400, 400, 400, 400, 429]
    assert (await shown(browser, await enter_code(browser, code))).status == 429
    assert (await browser.get("/api", navigate=False)).status == 403


async def test_wrong_code_page_says_how_many_tries_are_left(world: World) -> None:
    browser, page = await at_signup(world, "alice")
    await send_code(browser, page)
    code = world.smtp.last_code()
    reply = await shown(
        browser, await enter_code(browser, "999999" if code != "999999" else "888888")
    )
    assert reply.status == 400
    assert "4 tries left" in reply.text


async def test_expired_code_fails(world: World) -> None:
    async with open_world(edit=lambda d: d["signup"].update(code_ttl="1s")) as short:
        browser, page = await at_signup(short, "alice")
        await send_code(browser, page)
        code = short.smtp.last_code()
        await asyncio.sleep(1.2)
        reply = await shown(browser, await enter_code(browser, code))
        assert reply.status == 400
        assert "expired" in reply.text


async def test_smtp_down_shows_retry_page_and_creates_nothing(world: World) -> None:
    async with open_world(edit=lambda d: d["email"]["smtp"].update(port=1)) as broken:
        browser, page = await at_signup(broken, "alice")
        reply = await shown(browser, await send_code(browser, page))
        assert reply.status == 503
        assert "could not send the code" in reply.text
        assert (await browser.get("/api", navigate=False)).status == 403
        metrics = await broken.http.get(broken.sidecar.admin_url + "/metrics")
        assert 'reason="smtp"' in await metrics.text()
        metrics.release()


async def test_typed_address_when_entra_sends_no_email(world: World) -> None:
    browser, page = await at_signup(world, "bob")
    assert 'name="email"' in page.text
    assert not email_input_is_readonly(page)
    bad = await shown(browser, await send_code(browser, page, email="not-an-address"))
    assert bad.status == 400
    assert 'value="not-an-address"' in bad.text  # a refused address stays in the field
    assert (await send_code(browser, page, email="Bob@Contoso.com")).status == 303
    code = world.smtp.last_code(to="bob@contoso.com")
    done = await enter_code(browser, code)
    assert done.status == 303
    landing = await browser.follow(done)
    assert desk_headers(landing)["X-TicketLog-Email"] == "Bob@contoso.com"


async def test_allowed_email_domains_refuse_other_addresses() -> None:
    async with open_world(
        emulator=emulator(),
        edit=lambda d: d["tenants"][0].update(allowed_email_domains=["contoso.com"]),
    ) as w:
        browser, page = await at_signup(w, "bob")
        reply = await shown(browser, await send_code(browser, page, email="bob@sub.contoso.com"))
        assert reply.status == 400
        assert 'value="bob@sub.contoso.com"' in reply.text
        assert "contoso.com" in reply.text
        assert (await send_code(browser, page, email="bob@CONTOSO.com")).status == 303


async def test_posts_without_csrf_token_are_refused(world: World) -> None:
    browser, _ = await at_signup(world, "alice")
    assert (await browser.post("/.sso/signup", {"rd": "/"})).status == 403
    assert (await browser.post("/.sso/signup", {"csrf_token": "forged", "rd": "/"})).status == 403
    assert (await browser.post("/.sso/verify", {"code": "123456"})).status == 403
    assert world.smtp.envelopes == []


async def test_double_click_on_send_and_verify_does_no_harm(world: World) -> None:
    browser, page = await at_signup(world, "alice")
    first, second = await asyncio.gather(send_code(browser, page), send_code(browser, page))
    assert {first.status, second.status} == {303}
    assert len(world.smtp.envelopes) == 1
    code = world.smtp.last_code()
    one, two = await asyncio.gather(enter_code(browser, code), enter_code(browser, code))
    assert (one.status, two.status) == (303, 303)
    store = world.sidecar.runtime.store
    assert len(await store.keys_with_prefix(f"account:{HOST}:")) == 1


async def test_same_email_other_oid_gets_its_own_signup_never_the_account(world: World) -> None:
    await world.sign_up(world.browser("alice"))
    # nOAuth: another oid whose (mutable, unverified) email claim is alice's address.
    browser, page = await at_signup(world, "mallory")
    assert "Mallory" in page.text
    assert (await browser.get("/api", navigate=False)).status == 403


async def test_hostile_names_are_harmless_on_page_in_mail_and_headers(world: World) -> None:
    browser, page = await at_signup(world, "xss")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert "<img src=x" not in page.text
    await send_code(browser, page)
    message = world.smtp.messages()[-1]
    assert "X-Injected" not in message
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert "<script>alert(1)</script>" not in html.get_content()
    landing = await browser.follow(await enter_code(browser, world.smtp.last_code()))
    headers = desk_headers(landing)
    assert "X-Injected" not in headers
    assert headers["X-TicketLog-Given-Name"] == "Eve%0D%0AX-Injected: yes"
    assert unquote(headers["X-TicketLog-Given-Name"]) == "Eve\r\nX-Injected: yes"


async def test_non_ascii_names_are_percent_encoded_utf8(world: World) -> None:
    landing = await world.sign_up(world.browser("jose"), rd="/echo")
    headers = desk_headers(landing)
    assert headers["X-TicketLog-Given-Name"] == "Jos%C3%A9"
    assert unquote(headers["X-TicketLog-Name"]) == "José Müller-Łukasz 田中"
    assert headers["X-TicketLog-Name"].isascii()


async def test_email_change_forces_reverification(world: World) -> None:
    await world.sign_up(world.browser("alice"))
    alice = next(u for u in world.emulator.tenants[0].users if u.key == "alice")
    alice.email = "alice.new@contoso.test"
    await asyncio.sleep(1.1)  # the resend cooldown (1 s in these tests) since the first code
    browser = world.browser("alice")
    held = await browser.open("/desk")
    assert held.status == 200
    assert held.url.endswith("/desk")  # the screen is shown in place of the desk page
    assert "alice.new@contoso.test" in held.text
    assert "Confirm your new email address" in held.text
    assert "alice@contoso.test" in held.text
    # Until the new address is verified, the desk keeps receiving the verified one.
    api = await browser.get("/echo", navigate=False)
    assert desk_headers(api)["X-TicketLog-Email"] == "alice@contoso.test"
    await send_code(browser, held)
    landing = await browser.follow(
        await enter_code(browser, world.smtp.last_code(to="alice.new@contoso.test"))
    )
    assert desk_headers(landing)["X-TicketLog-Email"] == "alice.new@contoso.test"


async def test_accounts_survive_a_sidecar_restart_on_redis(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    try:
        async with open_world(store=store) as first:
            await first.sign_up(first.browser("alice"))
        async with open_world(store=store) as second:
            landing = await second.browser("alice").open("/back")
            assert landing.status == 200
            assert desk_headers(landing)["X-TicketLog-Email"] == "alice@contoso.test"
            accounts = await AccountStore(store).list(HOST)
            assert [a.email for a in accounts] == ["alice@contoso.test"]
    finally:
        await store.close()
