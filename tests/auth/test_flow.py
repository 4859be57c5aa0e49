"""The whole sign-in and first-login flow against the emulator, the desk and SMTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import unquote

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from sidecar.fingerprints import fingerprint
from tests.world import CLIENT_SECRET, HOST, World, open_world


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


async def test_logout_ends_session_and_lands_on_signed_out(world: World) -> None:
    browser = world.browser("alice")
    await world.sign_up(browser)
    out = await browser.get("/.sso/logout")
    assert out.status == 303
    end_session = out.headers["Location"]
    assert end_session.startswith(world.emulator_url)
    assert (
        "post_logout_redirect_uri=http%3A%2F%2Fdesk.contoso.test%2F.sso%2Fsigned-out" in end_session
    )
    assert "client_id=" in end_session
    assert "logout_hint=" in end_session
    assert not any(name.startswith("tlsso") for name in browser.cookies)
    entra_page = await browser.get(end_session)
    assert entra_page.status == 200
    signed_out = await browser.get("http://desk.contoso.test/.sso/signed-out")
    assert "signed out" in signed_out.text.lower()
    again = await browser.get("/tickets")
    assert again.status == 302
    assert again.headers["Location"].startswith("/.sso/login")


async def test_frontchannel_logout_ends_every_session_of_that_entra_sid(world: World) -> None:
    first, second = world.browser("alice"), world.browser("alice")
    await world.sign_up(first)
    assert (await second.open("/")).status == 200
    # Logging out in the first browser makes Entra call every app's front-channel URL.
    out = await first.get("/.sso/logout")
    await first.get(out.headers["Location"])
    calls = [c for c in world.emulator.frontchannel_calls if "/.sso/frontchannel-logout?sid=" in c]
    assert calls
    for call in calls:
        reply = await world.browser(None).get(call, navigate=False)
        assert reply.status == 200
        assert "frame-ancestors " + world.emulator_url in reply.headers["Content-Security-Policy"]
    after = await second.get("/api/me", navigate=False)
    assert after.status == 401
    unknown = await world.browser(None).get("/.sso/frontchannel-logout?sid=nope", navigate=False)
    assert unknown.status == 200


async def test_desk_logout_path_ends_our_session_then_forwards(world: World) -> None:
    browser = world.browser("alice")
    await world.sign_up(browser)
    reply = await browser.get("/logout")
    assert reply.status == 200
    assert reply.text == "desk signed out"
    assert not any(name.startswith("tlsso") for name in browser.cookies)
    assert (await browser.get("/api", navigate=False)).status == 401


async def test_public_paths_need_no_sign_in_and_carry_no_identity(world: World) -> None:
    browser = world.browser("alice")
    await world.sign_up(browser)
    reply = await browser.get("/assets/app.css", navigate=False)
    assert reply.status == 200
    assert not any(k.lower().startswith("x-ticketlog") for k in desk_headers(reply.text))


async def test_desk_cookies_pass_and_ours_never_reach_the_desk(world: World) -> None:
    browser = world.browser("alice")
    await world.sign_up(browser)
    browser.cookies["desk_session"] = "d1"
    reply = await browser.get("/echo", navigate=False)
    assert desk_headers(reply.text)["Cookie"] == "desk_session=d1"
    set_cookie = await browser.get("/set-cookie", navigate=False)
    assert len(set_cookie.headers.getall("Set-Cookie")) == 2


async def test_unassigned_user_gets_403_page_with_advice(world: World) -> None:
    reply = await world.browser("carol").open("/")
    assert reply.status == 403
    assert "administrator" in reply.text
    assert "assign" in reply.text


async def test_cancel_at_entra_says_so_and_offers_sign_in_again_to_the_same_page(
    world: World,
) -> None:
    """Dave presses Cancel on Entra's consent prompt (AADSTS65004, user declined)."""
    reply = await world.browser("dave").open("/tickets/42?view=full")
    assert reply.status == 403
    assert "You cancelled signing in" in reply.text
    assert "Permission was declined" not in reply.text
    assert 'href="/.sso/login?rd=/tickets/42%3Fview%3Dfull"' in reply.text
    assert ">Sign in again<" in reply.text


async def test_cancel_at_entra_in_german(world: World) -> None:
    browser = world.browser("dave")
    browser.headers["Accept-Language"] = "de-CH, de;q=0.9, en;q=0.5"
    reply = await browser.open("/")
    assert reply.status == 403
    assert '<html lang="de">' in reply.text
    assert "Sie haben die Anmeldung abgebrochen" in reply.text
    assert "Erneut anmelden" in reply.text


async def test_replayed_callback_and_foreign_browser_are_refused(world: World) -> None:
    victim = world.browser("alice")
    start = await victim.get("/.sso/login?rd=/x")
    at_entra = await victim.get(start.headers["Location"] + "&x_emulator_user=alice")
    callback = at_entra.headers["Location"]
    # Login CSRF: the callback opened in another browser (no transaction cookie).
    attacker = world.browser(None)
    assert (await attacker.get(callback)).status == 400
    first = await victim.get(callback)
    assert first.status == 303
    # Opened again by the same, now signed-in browser (Back, a reload): it lands on rd.
    again = await victim.get(callback)
    assert (again.status, again.headers["Location"]) == (303, "/x")
    assert "Set-Cookie" not in again.headers
    # Signed out, the same replay is refused as before.
    await victim.get("/.sso/logout")
    assert (await victim.get(callback)).status == 400


async def test_callback_without_state_or_with_repeated_parameters_is_400(world: World) -> None:
    browser = world.browser(None)
    assert (await browser.get("/.sso/callback?code=abc")).status == 400
    assert (await browser.get("/.sso/callback?code=a&state=s&state=t")).status == 400


async def test_key_rotation_keeps_sign_in_working(world: World) -> None:
    await world.sign_up(world.browser("alice"))
    world.emulator.rotate_keys(drop_old=True)
    landing = await world.browser("alice").open("/after-rotation")
    assert landing.status == 200
    assert desk_headers(landing.text)["X-TicketLog-Email"] == "alice@contoso.test"


async def test_entra_down_at_cold_start_gives_502_page(world: World) -> None:
    world.emulator.available = False
    reply = await world.browser("alice").open("/")
    assert reply.status == 502
    assert "Microsoft" in reply.text


async def test_sso_less_tenant_passes_through_without_sign_in(world: World) -> None:
    browser = world.browser(None)
    browser.host = "plain.example.test"
    reply = await browser.get("/echo", navigate=False, headers={"X-TicketLog-User": "forged"})
    assert reply.status == 200
    assert "X-TicketLog-User" not in desk_headers(reply.text)
    assert (await browser.get("/.sso/login")).status == 404


def metric(text: str, sample: str) -> float:
    """The value of one sample line (metrics are process-wide, so tests compare deltas)."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_sign_ins_and_entra_fetches(world: World) -> None:
    async def scrape() -> str:
        async with world.http.get(world.sidecar.admin_url + "/metrics") as response:
            return await response.text()

    ok = 'ticketlog_sso_sign_ins_total{result="ok",tenant="desk.contoso.test"}'
    refused = 'ticketlog_sso_idp_errors_total{aadsts="50105",error="access_denied",tenant="desk.contoso.test"}'
    discovery = (
        'ticketlog_sso_idp_fetches_total{document="discovery",result="ok",tenant="contoso.test"}'
    )
    jwks = 'ticketlog_sso_idp_fetches_total{document="jwks",result="ok",tenant="contoso.test"}'
    created = 'ticketlog_sso_accounts_created_total{tenant="desk.contoso.test"}'
    before = await scrape()
    await world.sign_up(world.browser("alice"))
    await world.browser("carol").open("/")
    after = await scrape()
    assert metric(after, ok) - metric(before, ok) == 1
    assert metric(after, refused) - metric(before, refused) == 1
    assert metric(after, discovery) - metric(before, discovery) == 1
    assert metric(after, jwks) - metric(before, jwks) == 1
    assert metric(after, created) - metric(before, created) == 1
    in_use = f'ticketlog_sso_client_secret_index{{fingerprint="{fingerprint(CLIENT_SECRET)}",tenant="desk.contoso.test"}} 0.0'
    assert in_use in after


async def test_client_secret_rotation_tries_the_next_secret() -> None:
    stale_first = lambda d: d["tenants"][0]["sso"].update(  # noqa: E731
        client_secret=["a-stale-secret-value", d["tenants"][0]["sso"]["client_secret"]]
    )
    async with open_world(edit=stale_first) as world:
        landing = await world.sign_up(world.browser("alice"), rd="/echo")
        assert desk_headers(landing.text)["X-TicketLog-Email"] == "alice@contoso.test"
        async with world.http.get(world.sidecar.admin_url + "/metrics") as response:
            text = await response.text()
        # The series names the secret that worked (the second), never its value.
        second = fingerprint(CLIENT_SECRET)
        assert (
            f'ticketlog_sso_client_secret_index{{fingerprint="{second}",tenant="desk.contoso.test"}} 1.0'
            in text
        )
        assert CLIENT_SECRET not in text


async def test_signed_in_websocket_handshake_carries_the_identity(world: World) -> None:
    browser = world.browser("alice")
    await world.sign_up(browser)
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    forged = {"X-TicketLog-Email": "mallory@evil.test"}
    async with browser.http.ws_connect(
        browser.sidecar_url + "/ws", headers={"Host": HOST, "Cookie": cookie, **forged}
    ) as ws:
        await ws.send_str("whoami")
        handshake = json.loads((await ws.receive()).data)
    assert handshake["X-TicketLog-Email"] == "alice@contoso.test"
    assert handshake["X-TicketLog-User"].endswith(".6d5a4e1c-3b2a-4c1d-9e8f-7a6b5c4d3e2f")
    assert handshake["X-TicketLog-Identity"].count(".") == 2
    assert "tlsso" not in handshake.get("Cookie", "")
