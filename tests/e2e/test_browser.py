"""A real browser walks the product: Entra sign-in, the signup screen, the desk, logout.

Debian's Chromium (``/usr/bin/chromium``), driven headless by Playwright for Python, talks
to real servers on loopback: the sidecar, the development Entra emulator, the sample desk
and an SMTP server (aiosmtpd) that receives the verification mail. The desk is browsed at
its custom domain, ``http://desk.contoso.test:PORT/``: Chromium's host resolver rules map
that name to 127.0.0.1, so the Host header, the cookies and the redirect URIs are exactly
what a customer's browser would produce.

Screenshots of every screen land in ``artifacts/screenshots/`` (git-ignored); the first
signup step is also what ``docs/signup-screen.png`` shows, and the walk in two languages at
desktop and phone width gives ``docs/signup-screen-en.png`` and ``docs/signup-screen-de.png``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Playwright,
    async_playwright,
)
from playwright.async_api import expect as expect_

from sidecar.dev.desk import make_desk_app
from sidecar.dev.entra import EntraEmulator, sample_tenant
from tests.helpers import config_from, run_sidecar, serve_app
from tests.smtp_server import Collector, start_smtp
from tests.world import HOST, world_config

CHROMIUM = "/usr/bin/chromium"
UNKNOWN_HOST = "unknown.contoso.test"
ALICE_EMAIL = "alice@contoso.test"
DESK_HEADING = "TicketLog service desk (sample)"
TIMEOUT_MS = 10_000

pytestmark = pytest.mark.slow


@dataclass
class BrowserWorld:
    base: str  # http://desk.contoso.test:PORT, the desk's public origin
    emulator_url: str
    smtp: Collector


@asynccontextmanager
async def open_browser_world(
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> AsyncIterator[BrowserWorld]:
    """tests/world.py's world, but with the emulator registered for the sidecar's real port.

    The sidecar builds its redirect URIs from the Host header's port, so the emulated app
    must list ``http://desk.contoso.test:PORT/.sso/callback``: the tenant is added once the
    sidecar listens (the emulator looks tenants up per request; the sidecar fetches
    discovery lazily, on the first sign-in).
    """
    emulator = EntraEmulator([], frontchannel_server_side=False)
    smtp = Collector()
    controller = start_smtp(smtp)
    try:
        async with (
            serve_app(emulator.make_app()) as emulator_url,
            serve_app(make_desk_app()) as desk_url,
        ):
            document = world_config(
                desk_url=desk_url, emulator_url=emulator_url, smtp_port=controller.port
            )
            if edit is not None:
                edit(document)
            async with run_sidecar(config_from(document)) as sidecar:
                base = f"http://{HOST}:{sidecar.listeners.public_port}"
                emulator.tenants.append(sample_tenant(base))
                yield BrowserWorld(base, emulator_url, smtp)
    finally:
        controller.stop()


async def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless; never a browser downloaded by ``playwright install``.

    A launch failure is a test failure, not a skip: the suite's browser test must run.
    """
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
    )
    rules = f"MAP {HOST} 127.0.0.1, MAP {UNKNOWN_HOST} 127.0.0.1"
    return await playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        timeout=20_000,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--no-proxy-server",
            f"--host-resolver-rules={rules}",
        ],
    )


async def new_context(
    browser: Browser, *, locale: str = "en-GB", width: int = 1000, height: int = 760
) -> BrowserContext:
    context = await browser.new_context(viewport={"width": width, "height": height}, locale=locale)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


async def pick_account(page: Page, world: BrowserWorld, name: str) -> None:
    """On the emulator's "Pick an account" page, click the user's button."""
    await expect_(page).to_have_url(re.compile(re.escape(world.emulator_url) + r"/.*/authorize"))
    await expect_(page.get_by_role("heading", name="Pick an account")).to_be_visible()
    await page.get_by_role("button", name=re.compile(rf"^{name}\b")).click()


def desk_header(page: Page, name: str) -> Locator:
    """The value cell of one header row of the sample desk's table."""
    return page.locator("tr").filter(has=page.locator("th", has_text=name)).locator("td")


async def test_signup_desk_logout_and_error_pages_in_chromium(screenshot_dir: Path) -> None:
    async with open_browser_world() as world, async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            context = await new_context(browser)
            page = await context.new_page()
            navigations: list[str] = []
            page.on(
                "framenavigated",
                lambda frame: navigations.append(frame.url) if frame is page.main_frame else None,
            )

            # First visit: the desk sends the browser to Entra's account picker.
            await page.goto(world.base + "/")
            await page.screenshot(path=screenshot_dir / "entra-pick-account.png")
            await pick_account(page, world, "Alice")

            # The signup screen, step 1: the Entra identity and the address to confirm.
            welcome = page.get_by_role("heading", name="Welcome to Contoso Service Desk")
            await expect_(welcome).to_be_visible()
            await expect_(page.locator("#email")).to_have_value(ALICE_EMAIL)
            await page.screenshot(path=screenshot_dir / "signup-1-confirm-email.png")
            await page.get_by_role("button", name="Send verification code").click()

            # Step 2: the code went to the real SMTP server.
            await expect_(page.get_by_role("heading", name="Check your email")).to_be_visible()
            await expect_(page.locator(".lead strong")).to_have_text(ALICE_EMAIL)
            await page.screenshot(path=screenshot_dir / "signup-2-enter-code.png")
            assert len(world.smtp.envelopes) == 1
            assert world.smtp.envelopes[0].rcpt_tos == [ALICE_EMAIL]
            code = world.smtp.last_code(to=ALICE_EMAIL)

            # A wrong code: redirected (post/redirect/get) to the form again, 400, the error said.
            wrong = f"{(int(code) + 1) % 1_000_000:06d}"
            await page.locator("#code").fill(wrong)
            async with page.expect_response(re.compile(r"/\.sso/signup\?rd=")) as answer:
                await page.get_by_role("button", name="Verify and continue").click()
            assert (await answer.value).status == 400
            await expect_(page.locator("#form-error")).to_contain_text("not right")
            await page.screenshot(path=screenshot_dir / "signup-3-wrong-code.png")

            # The right code: the account exists and the browser lands on the desk.
            await page.locator("#code").fill(code)
            await page.get_by_role("button", name="Verify and continue").click()
            await expect_(page.get_by_role("heading", name=DESK_HEADING)).to_be_visible()
            assert page.url == world.base + "/"
            await expect_(page.locator("#greeting")).to_have_text("Hello, Alice Example.")
            email_cell = desk_header(page, "X-TicketLog-Email")
            await expect_(email_cell).to_have_text(ALICE_EMAIL)
            user_cell = desk_header(page, "X-TicketLog-User")
            await expect_(user_cell).to_have_text(re.compile(r"^[0-9a-f-]{36}\.[0-9a-f-]{36}$"))
            await expect_(desk_header(page, "X-Forwarded-Host")).to_have_text(
                re.compile(rf"^{re.escape(HOST)}(:\d+)?$")
            )
            await page.screenshot(path=screenshot_dir / "desk.png", full_page=True)

            # Logout: the sidecar, then Entra's end_session, then the signed-out page.
            await page.goto(world.base + "/.sso/logout")
            await page.wait_for_url(world.base + "/.sso/signed-out")
            signed_out = page.get_by_role("heading", name=re.compile("You have signed out"))
            await expect_(signed_out).to_be_visible()
            await page.screenshot(path=screenshot_dir / "signed-out.png")
            probe = await context.new_page()  # same cookies: the sidecar session ended
            userinfo = await probe.goto(world.base + "/.sso/userinfo")
            assert userinfo is not None
            assert userinfo.status == 401
            await probe.close()

            # Signing in again reaches the desk straight away: no signup screen, no new mail.
            navigations.clear()
            await page.get_by_role("link", name="Sign in again").click()
            await pick_account(page, world, "Alice")
            await expect_(page.get_by_role("heading", name=DESK_HEADING)).to_be_visible()
            await expect_(email_cell).to_have_text(ALICE_EMAIL)
            assert not [u for u in navigations if "/.sso/signup" in u], navigations
            assert len(world.smtp.envelopes) == 1

            # Error page: carol is not assigned to the app; Entra refuses her (AADSTS50105).
            stranger = await (await new_context(browser)).new_page()
            await stranger.goto(world.base + "/")
            async with stranger.expect_response(re.compile(r"/\.sso/callback\?")) as refused:
                await pick_account(stranger, world, "Carol")
            assert (await refused.value).status == 403
            await expect_(stranger.locator("body")).to_contain_text("administrator")
            await stranger.screenshot(path=screenshot_dir / "error-403-not-assigned.png")

            # Error page: a host the sidecar does not serve gets 421 and nothing is forwarded.
            unknown = await stranger.goto(f"http://{UNKNOWN_HOST}:{world.base.rsplit(':', 1)[1]}/")
            assert unknown is not None
            assert unknown.status == 421
            await stranger.screenshot(path=screenshot_dir / "error-421-unknown-host.png")
        finally:
            await browser.close()
    print(f"\nscreenshots: {screenshot_dir}")


@dataclass(frozen=True)
class Words:
    """What the pages say in one language, as a user reads it."""

    locale: str  # Chromium's locale: its Accept-Language
    lang: str  # what <html lang> must say
    welcome: str
    send: str
    check_email: str
    verify: str
    not_right: str
    resend: str
    resent: str
    signed_out: str


ENGLISH = Words(
    "en-GB", "en", "Welcome to Contoso Service Desk", "Send verification code",
    "Check your email", "Verify and continue", "not right", "Send a new code",
    f"A new code was sent to {ALICE_EMAIL}.", "You have signed out of Contoso Service Desk",
)  # fmt: skip
GERMAN = Words(
    "de-DE", "de", "Willkommen bei Contoso Service Desk", "Bestätigungscode senden",
    "Sehen Sie in Ihre E-Mails", "Bestätigen und weiter", "Dieser Code stimmt nicht",
    "Neuen Code senden", f"Ein neuer Code wurde an {ALICE_EMAIL} gesendet.",
    "Sie haben sich bei Contoso Service Desk abgemeldet",
)  # fmt: skip
DESKTOP, PHONE = (1280, 800), (375, 740)


@pytest.mark.parametrize("words", [ENGLISH, GERMAN], ids=["en", "de"])
async def test_the_flow_in_two_languages_at_desktop_and_phone_width(
    words: Words, screenshot_dir: Path
) -> None:
    """Sign-in, signup with a wrong code and a resend, the desk, Back, sign-out and Back
    again, in one language, at desktop and 375 px width."""
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            for size in (DESKTOP, PHONE):
                async with open_browser_world() as world:
                    await walk(browser, world, words, size, screenshot_dir)
        finally:
            await browser.close()


async def walk(
    browser: Browser, world: BrowserWorld, words: Words, size: tuple[int, int], shots: Path
) -> None:
    width, height = size
    context = await new_context(browser, locale=words.locale, width=width, height=height)
    page = await context.new_page()
    name = f"{words.lang}-{width}"

    await page.goto(world.base + "/?view=mine")
    await pick_account(page, world, "Alice")
    await expect_(page.get_by_role("heading", name=words.welcome)).to_be_visible()
    assert await page.get_attribute("html", "lang") == words.lang
    await assert_fits(page, width)
    await page.screenshot(path=shots / f"{name}-signup-1.png", full_page=True)
    await page.get_by_role("button", name=words.send).click()

    await expect_(page.get_by_role("heading", name=words.check_email)).to_be_visible()
    code = world.smtp.last_code(to=ALICE_EMAIL)
    mail = world.smtp.messages()[-1]
    assert mail["Content-Language"] == words.lang

    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    await page.locator("#code").fill(wrong)
    async with page.expect_response(re.compile(r"/\.sso/signup\?rd=")) as answer:
        await page.get_by_role("button", name=words.verify).click()
    assert (await answer.value).status == 400
    await expect_(page.locator("#form-error")).to_contain_text(words.not_right)
    await assert_fits(page, width)
    await page.screenshot(path=shots / f"{name}-signup-2-wrong-code.png", full_page=True)

    # A resend (once the 1 s cooldown of these tests has passed) says where the code went.
    await page.wait_for_timeout(1100)
    await page.get_by_role("button", name=words.resend).click()
    await expect_(page.locator("#form-notice")).to_contain_text(words.resent)
    await page.screenshot(path=shots / f"{name}-signup-3-resent.png", full_page=True)
    code = world.smtp.last_code(to=ALICE_EMAIL)

    await page.locator("#code").fill(code)
    await page.get_by_role("button", name=words.verify).click()
    await expect_(page.get_by_role("heading", name=DESK_HEADING)).to_be_visible()
    assert page.url == world.base + "/?view=mine"  # rd kept through every form

    # Back: the screen's GET, which sends a verified user on to the desk. No form resent.
    await page.go_back()
    await expect_(page.get_by_role("heading", name=DESK_HEADING)).to_be_visible()
    assert not page.url.startswith("chrome-error:"), page.url

    await page.goto(world.base + "/.sso/logout")
    await page.wait_for_url(world.base + "/.sso/signed-out")
    await expect_(page.get_by_role("heading", name=words.signed_out)).to_be_visible()
    await page.screenshot(path=shots / f"{name}-signed-out.png", full_page=True)
    # Back on a shared computer: the desk page is not shown again from the cache.
    await page.go_back()
    await page.wait_for_load_state()
    await expect_(page.locator("#greeting")).to_have_count(0)
    await context.close()


async def assert_fits(page: Page, width: int) -> None:
    """Nothing sticks out sideways: no horizontal scrolling at this width."""
    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"page is {scroll_width}px wide in a {width}px viewport"


async def test_branded_error_page_in_french_at_phone_width(
    screenshot_dir: Path, tmp_path: Path
) -> None:
    """Cancel at Entra (dave declines consent) on a branded tenant: the page names the desk,
    shows its logo (allowed by the pages' CSP), accent colour and support contact, and
    "Sign in again" goes back to Entra for the page dave wanted."""
    logo = tmp_path / "contoso.svg"
    logo.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="32" viewBox="0 0 120 32">'
        '<rect width="120" height="32" rx="6" fill="#8a1538"/></svg>'
    )

    def brand(document: dict[str, Any]) -> None:
        document["tenants"][0]["branding"] = {
            "logo_file": str(logo),
            "accent_color": "#8a1538",
            "support_contact": "Service informatique, it-help@contoso.com",
        }

    async with open_browser_world(brand) as world, async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            context = await new_context(browser, locale="fr-FR", width=375, height=740)
            page = await context.new_page()
            await page.goto(world.base + "/tickets/42")
            async with page.expect_response(re.compile(r"/\.sso/callback\?")) as refused:
                await pick_account(page, world, "Dave")
            assert (await refused.value).status == 403
            assert await page.get_attribute("html", "lang") == "fr"
            await expect_(
                page.get_by_role("heading", name="Vous avez annulé la connexion")
            ).to_be_visible()
            await expect_(page.locator(".masthead-desk")).to_have_text("Contoso Service Desk")
            await expect_(page.locator(".support")).to_contain_text("it-help@contoso.com")
            logo_img = page.locator("img.masthead-logo")
            await expect_(logo_img).to_be_visible()
            assert await logo_img.evaluate("img => img.complete && img.naturalWidth") == 120
            button = page.get_by_role("link", name="Se reconnecter")
            colour = await button.evaluate("a => getComputedStyle(a).backgroundColor")
            assert colour == "rgb(138, 21, 56)"
            await assert_fits(page, 375)
            await page.screenshot(
                path=screenshot_dir / "fr-375-error-cancelled-branded.png", full_page=True
            )
            assert await button.get_attribute("href") == "/.sso/login?rd=/tickets/42"
            await button.click()
            await expect_(page.get_by_role("heading", name="Pick an account")).to_be_visible()
        finally:
            await browser.close()
