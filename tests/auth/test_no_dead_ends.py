"""No dead ends on the way in: every form is post/redirect/get, stale links land somewhere
useful, and each refusal says what to do next (the contract's "Pages people see")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.world import Browser, Reply, World, open_world


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with open_world() as w:
        yield w


async def at_screen(world: World, user: str, rd: str = "/tickets/7") -> tuple[Browser, Reply]:
    browser = world.browser(user)
    page = await browser.open(rd)
    assert page.status == 200
    assert "/.sso/signup" in page.url
    return browser, page


def form(page: Reply, **fields: str) -> dict[str, str]:
    return {"csrf_token": page.form_value("csrf_token"), "rd": "/tickets/7", **fields}


async def test_every_signup_post_answers_with_a_redirect_to_a_get(world: World) -> None:
    """So the browser's history holds only GETs: Back and reload never resend a form."""
    browser, page = await at_screen(world, "alice")
    sent = await browser.post("/.sso/signup", form(page))
    assert (sent.status, sent.headers["Location"]) == (303, "/.sso/signup?rd=/tickets/7")
    wrong = await browser.post("/.sso/verify", form(page, code="12345x"))
    assert (wrong.status, wrong.headers["Location"]) == (303, "/.sso/signup?rd=/tickets/7")
    shown = await browser.get(wrong.headers["Location"])
    assert shown.status == 400
    assert "That code is not right." in shown.text
    # Reloading that GET (or coming Back to it) shows the screen, not the old error again.
    again = await browser.get(wrong.headers["Location"])
    assert again.status == 200
    assert "That code is not right." not in again.text
    done = await browser.post("/.sso/verify", form(page, code=world.smtp.last_code()))
    assert (done.status, done.headers["Location"]) == (303, "/tickets/7")
    # Back to the screen after success: straight on to where the user was going.
    back = await browser.get("/.sso/signup?rd=/tickets/7")
    assert (back.status, back.headers["Location"]) == (303, "/tickets/7")


async def test_verify_opened_by_get_goes_back_to_the_screen(world: World) -> None:
    browser, _ = await at_screen(world, "alice")
    reply = await browser.get("/.sso/verify?rd=/tickets/7")
    assert (reply.status, reply.headers["Location"]) == (303, "/.sso/signup?rd=/tickets/7")
    evil = await browser.get("/.sso/verify?rd=//evil.example/")
    assert evil.headers["Location"] == "/.sso/signup?rd=/"


async def test_a_resend_says_where_the_new_code_went_and_when_the_next_may_be_asked(
    world: World,
) -> None:
    browser, page = await at_screen(world, "alice")
    first = await browser.submit("/.sso/signup", form(page))
    assert "We sent a 6-digit code to" in first.text
    assert "A new code was sent" not in first.text
    assert "You can ask for a new code in 1 second." in first.text
    await asyncio.sleep(1.1)  # the resend cooldown of these tests
    resent = await browser.submit("/.sso/signup", form(page))
    assert resent.status == 200
    assert "A new code was sent to alice@contoso.test." in resent.text
    assert 'role="status"' in resent.text
    assert "You can ask for a new code in 1 second." in resent.text
    assert "<script" not in resent.text  # the wait is shown by CSS alone (the CSP has no script)


async def test_a_superseded_code_is_named_and_costs_no_try(world: World) -> None:
    browser, page = await at_screen(world, "alice")
    await browser.submit("/.sso/signup", form(page))
    old = world.smtp.last_code()
    new = old
    while new == old:  # two random codes are equal once in a million: send another
        await asyncio.sleep(1.1)  # the resend cooldown of the world's config
        await browser.submit("/.sso/signup", form(page))
        new = world.smtp.last_code()
    for _ in range(6):  # more than max_attempts (5): none of these counts
        reply = await browser.submit("/.sso/verify", form(page, code=old))
        assert reply.status == 400
        assert "That code was replaced by a newer one." in reply.text
    wrong = next(c for c in ("000000", "111111", "222222") if c not in (old, new))
    reply = await browser.submit("/.sso/verify", form(page, code=wrong))
    assert "You have 4 tries left." in reply.text
    done = await browser.post("/.sso/verify", form(page, code=new))
    assert (done.status, done.headers["Location"]) == (303, "/tickets/7")


async def test_an_unverified_domain_address_can_be_replaced_by_a_typed_one(world: World) -> None:
    """erin's email claim comes from a domain her tenant has not verified (xms_edov false)."""
    browser, page = await at_screen(world, "erin")
    assert 'value="erin@unverified.example"' in page.text
    assert "readonly" not in page.text.split('id="email"', 1)[1].split(">", 1)[0]
    assert "has not verified this address's domain" in page.text
    sent = await browser.submit("/.sso/signup", form(page, email="erin@contoso.com"))
    assert "erin@contoso.com" in sent.text
    done = await browser.post(
        "/.sso/verify", form(page, code=world.smtp.last_code(to="erin@contoso.com"))
    )
    landing = await browser.follow(done)
    assert '"X-TicketLog-Email", "erin@contoso.com"' in landing.text


async def test_a_verified_domain_address_stays_fixed(world: World) -> None:
    browser, page = await at_screen(world, "alice")
    assert "readonly" in page.text.split('id="email"', 1)[1].split(">", 1)[0]
    await browser.submit("/.sso/signup", form(page, email="mallory@evil.example"))
    assert world.smtp.last_code(to="alice@contoso.test")  # the claim, not the posted field


async def test_reserved_domains_are_refused_and_the_address_stays_in_the_field(
    world: World,
) -> None:
    browser, page = await at_screen(world, "bob")
    refused = await browser.submit("/.sso/signup", form(page, email="bob@contoso.test"))
    assert refused.status == 400
    assert "special-use or reserved name" in refused.text
    assert 'value="bob@contoso.test"' in refused.text
    assert world.smtp.envelopes == []


async def test_reserved_domains_are_accepted_where_configured() -> None:
    def allow(document: dict[str, object]) -> None:
        document["signup"] = {"resend_cooldown": "1s", "allow_reserved_email_domains": True}

    async with open_world(edit=allow) as world:
        browser, page = await at_screen(world, "bob")
        sent = await browser.submit("/.sso/signup", form(page, email="bob@contoso.test"))
        assert sent.status == 200
        assert world.smtp.last_code(to="bob@contoso.test")


async def test_refusals_speak_the_browsers_language(world: World) -> None:
    browser, page = await at_screen(world, "bob")
    browser.headers["Accept-Language"] = "es-ES,es;q=0.9"
    refused = await browser.submit("/.sso/signup", form(page, email="not-an-address"))
    assert '<html lang="es">' in refused.text
    assert "Esa no es una dirección de correo válida." in refused.text
    assert 'value="not-an-address"' in refused.text


async def test_a_signed_in_users_stale_callback_lands_on_rd(world: World) -> None:
    """Back to Entra's account picker and the same account again: Entra answers with the
    state of the finished sign-in once more."""
    browser = world.browser("alice")
    await world.sign_up(browser, rd="/tickets/7")
    start = await browser.get("/.sso/login?rd=/tickets/9")
    at_entra = await browser.get(start.headers["Location"] + "&x_emulator_user=alice")
    callback = at_entra.headers["Location"]
    assert (await browser.get(callback)).headers["Location"] == "/tickets/9"
    picked_again = await browser.get(start.headers["Location"] + "&x_emulator_user=alice")
    stale = await browser.get(picked_again.headers["Location"])
    assert (stale.status, stale.headers["Location"]) == (303, "/tickets/9")
    # A state that was never used is still an error, signed in or not.
    forged = await browser.get("/.sso/callback?code=x&state=never-issued")
    assert forged.status == 400
    assert "Sign in again" in forged.text


async def test_callback_errors_offer_sign_in_again_keeping_rd(world: World) -> None:
    browser = world.browser("carol")  # not assigned to the app: AADSTS50105
    start = await browser.get("/.sso/login?rd=/tickets/3")
    reply = await browser.follow(start)
    assert reply.status == 403
    assert "You are not assigned to this app" in reply.text
    assert 'href="/.sso/login?rd=/tickets/3"' in reply.text
    assert "Contoso Service Desk" in reply.text
