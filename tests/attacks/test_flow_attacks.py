"""Attacks on the flow around the ID token: the callback, redirects, headers, paths,
hosts, cookies and sizes. Each drives the real sidecar (raw sockets where a client
library would tidy the request up) and checks the contract's answer, that nothing
reached the desk it should not, and that no attack earns a 500."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

from sidecar.auth.redirects import safe_redirect_target
from tests.attacks.support import (
    SESSION_COOKIE_NAMES,
    AttackWorld,
    assert_no_leak,
    assert_refused,
    attempt_sign_in,
    capture_everything,
    desk_headers,
    log_text,
    open_attack_world,
    raw_exchange,
    raw_request,
    reach_callback,
    sets_session_cookie,
)
from tests.world import HOST, Browser, World, _add_query

PLAIN = "plain.example.test"
SIGNED_OUT = f"http://{HOST}/.sso/signed-out"


@pytest.fixture
async def aw() -> AsyncIterator[AttackWorld]:
    async with open_attack_world() as world:
        yield world


async def signed_in(aw: AttackWorld, user: str = "alice") -> Browser:
    """A browser with a verified account and a session."""
    browser = aw.browser(user)
    landing = await aw.world.sign_up(browser, rd="/echo")
    assert landing.status == 200, landing.text[:300]
    aw.desk.requests.clear()
    return browser


def with_query(url: str, **replace: str | None) -> str:
    """``url`` with query parameters replaced (None removes one)."""
    parts = urlsplit(url)
    query = [(k, v[0]) for k, v in parse_qs(parts.query, keep_blank_values=True).items()]
    query = [(k, replace.get(k, v)) for k, v in query]
    query = [(k, v) for k, v in query if v is not None]
    query += [(k, v) for k, v in replace.items() if v is not None and k not in dict(query)]
    return parts._replace(query=urlencode(query)).geturl()


def user_key(aw: AttackWorld, user: str = "alice") -> str:
    found = aw.idp.ours.user(user)
    assert found is not None
    return f"{found.oid}.{aw.idp.ours.tenant_id}"


# ---- the callback: state, replay, login CSRF, parameter pollution -------------------------


def _drop_state(url: str) -> str:
    return with_query(url, state=None)


def _empty_state(url: str) -> str:
    return with_query(url, state="")


def _altered_state(url: str) -> str:
    state = parse_qs(urlsplit(url).query)["state"][0]
    return with_query(url, state=state[:-1] + ("A" if state[-1] != "A" else "B"))


def _huge_state(url: str) -> str:
    return with_query(url, state="s" * 2000)


def _duplicated_state(url: str) -> str:
    state = parse_qs(urlsplit(url).query)["state"][0]
    return url + "&state=" + quote(state)


def _duplicated_code(url: str) -> str:
    return url + "&code=attacker-code"


def _same_code_twice(url: str) -> str:
    code = parse_qs(urlsplit(url).query)["code"][0]
    return url + "&code=" + quote(code)


def _no_code(url: str) -> str:
    return with_query(url, code=None)


def _empty_code(url: str) -> str:
    return with_query(url, code="")


@pytest.mark.parametrize(
    "tamper",
    [
        _drop_state,
        _empty_state,
        _altered_state,
        _huge_state,
        _duplicated_state,
        _duplicated_code,
        _same_code_twice,
        _no_code,
        _empty_code,
    ],
    ids=lambda f: f.__name__.strip("_").replace("_", "-"),
)
async def test_tampered_callback_is_400(
    aw: AttackWorld, tamper: Any, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    browser = aw.browser("alice")
    _, _, callback = await reach_callback(browser)
    reply = await browser.get(tamper(callback))
    await assert_refused(aw, browser, reply, caplog, status=400)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    assert_no_leak([reply.text], [code])


async def test_callback_without_any_state_is_400(
    aw: AttackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    browser = aw.browser(None)
    reply = await browser.get("/.sso/callback?code=abc")
    await assert_refused(aw, browser, reply, caplog, status=400)
    reply = await browser.get("/.sso/callback")
    await assert_refused(aw, browser, reply, caplog, status=400)


async def test_replayed_callback_is_refused_even_with_the_transaction_cookie(
    aw: AttackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    browser = aw.browser("alice")
    _, _, callback = await reach_callback(browser)
    stolen = dict(browser.cookies)  # the transaction cookie, as a back button or thief has it
    first = await browser.get(callback)
    assert first.status == 303
    assert sets_session_cookie(first)
    # The same browser again (the transaction cookie is gone by now): it is signed in, so
    # it lands where that sign-in landed, and nothing about its session changes.
    again = await browser.get(callback)
    assert again.status == 303
    assert again.headers["Location"] == "/"
    assert not sets_session_cookie(again)
    # With the transaction cookie restored: the store remembers the state was used.
    thief = aw.browser(None)
    thief.cookies.update(stolen)
    replay = await thief.get(callback)
    await assert_refused(aw, thief, replay, caplog, status=400)


async def test_login_csrf_callback_opened_in_another_browser(
    aw: AttackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 6749 §10.12: the attacker's own callback URL, sent to a victim, must not sign
    the victim in as the attacker, whether or not the victim has a sign-in under way."""
    capture_everything(caplog)
    attacker = aw.browser("bob")
    _, _, attackers_callback = await reach_callback(attacker)
    idle_victim = aw.browser(None)
    reply = await idle_victim.get(attackers_callback)
    await assert_refused(aw, idle_victim, reply, caplog, status=400)
    busy_victim = aw.browser("alice")
    await reach_callback(busy_victim)  # the victim's own transaction cookie is present
    reply = await busy_victim.get(attackers_callback)
    await assert_refused(aw, busy_victim, reply, caplog, status=400)
    # The same through response_mode=form_post (a cross-site auto-submitting form).
    code = parse_qs(urlsplit(attackers_callback).query)
    posted = await idle_victim.post(
        "/.sso/callback", {"code": code["code"][0], "state": code["state"][0]}
    )
    await assert_refused(aw, idle_victim, posted, caplog, status=400)


async def test_code_injection_with_the_victims_state_is_refused(
    aw: AttackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """The attacker's code under the victim's state: PKCE and the nonce bind the code to the
    transaction, so Entra refuses it (invalid_grant: 502)."""
    capture_everything(caplog)
    attacker = aw.browser("bob")
    _, _, attackers_callback = await reach_callback(attacker)
    attackers_code = parse_qs(urlsplit(attackers_callback).query)["code"][0]
    victim = aw.browser("alice")
    _, _, callback = await reach_callback(victim)
    reply = await victim.get(with_query(callback, code=attackers_code))
    await assert_refused(aw, victim, reply, caplog, status=502)
    assert_no_leak([reply.text], [attackers_code])


@pytest.mark.parametrize(
    ("error", "status"),
    [("access_denied", 403), ("server_error", 502), ("<img src=x onerror=alert(2)>", 502)],
)
async def test_error_description_carrying_html_is_not_reflected(
    aw: AttackWorld, error: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    browser = aw.browser("alice")
    _, _, callback = await reach_callback(browser)
    description = (
        "AADSTS50105: <script>alert(1)</script> Trace ID: x "
        'Correlation ID: <b onmouseover="alert(3)">x</b>'
    )
    hostile = with_query(callback, code=None, error=error, error_description=description)
    reply = await browser.get(hostile)
    await assert_refused(aw, browser, reply, caplog, status=status)
    for raw in ("<script>alert(1)</script>", "<img src=x", "<b onmouseover", "alert(3)"):
        assert raw not in reply.text


async def test_error_and_code_together_create_no_session(
    aw: AttackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    browser = aw.browser("alice")
    _, _, callback = await reach_callback(browser)
    reply = await browser.get(with_query(callback, error="access_denied"))
    assert reply.status in (400, 403, 502)
    await assert_refused(aw, browser, reply, caplog, status=reply.status)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda url: with_query(url, iss="https://evil.example/6d5a4e1c/v2.0"),
        lambda url: with_query(url, iss=None),
        lambda url: url + "&iss=" + quote(parse_qs(urlsplit(url).query)["iss"][0], safe=""),
        lambda url: with_query(url, iss=parse_qs(urlsplit(url).query)["iss"][0] + "/"),
    ],
    ids=["other-issuer", "missing", "duplicated", "trailing-slash"],
)
async def test_rfc9207_iss_parameter_must_match_when_advertised(
    tamper: Any, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    async with open_attack_world() as aw:
        aw.idp.authorization_response_iss = True
        genuine = await attempt_sign_in(aw.browser("alice"))
        assert genuine.reply.status == 303, genuine.reply.text[:300]
        assert "iss" in genuine.params
        browser = aw.browser("alice")
        _, _, callback = await reach_callback(browser)
        reply = await browser.get(tamper(callback))
        await assert_refused(aw, browser, reply, caplog, status=400)


# ---- open redirects (oauth2-proxy GHSA-4mf2-f3wh-gvf2, GHSA-5m6c-jp6f-2vcv, CVE-2020-11053,
# CVE-2021-21291) ------------------------------------------------------------------------------

OPEN_REDIRECTS = [
    "//evil.com",
    "//evil.com/path",
    "///evil.com",
    "////evil.com",
    "/\\evil.com",
    "/\\/evil.com",
    "\\\\evil.com",
    "\\/evil.com",
    "/%09/evil.com",
    "/\t/evil.com",
    "/%0a/evil.com",
    "/%0d/evil.com",
    "/\n/evil.com",
    "/%2F%2Fevil.com",
    "/%2f%2fevil.com",
    "%2F%2Fevil.com",
    "/%252F%252Fevil.com",
    "/%5Cevil.com",
    "/%5c%5cevil.com",
    "/ /evil.com",
    " //evil.com",
    "https:evil.com",
    "https:/evil.com",
    "https://evil.com",
    "http://evil.com",
    "HTTPS://evil.com",
    "https://desk.contoso.test@evil.com",
    "//desk.contoso.test@evil.com",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/%0d%0aSet-Cookie:x=y",
    "/\r\nSet-Cookie:x=y",
    "/%0D%0ALocation:%20https://evil.com",
    "/%00/evil.com",
    "/.sso/logout",
    "/.sso/login?rd=//evil.com",
    "/.sso/callback?code=x&state=y",
    "/%2Esso/logout",
    "/%2esso/logout",
    "/./.sso/logout",
    "/x/../.sso/logout",
    # Unicode: fullwidth and division slashes, which "best-fit" code-page mappings and some
    # intermediaries fold to '/', and a raw (not percent-encoded) non-ASCII path.
    "\uff0f\uff0fevil.com",
    "\u2215\u2215evil.com",
    "/\uff0f\uff0fevil.com",
    "/\u2215\u2215evil.com",
    "/" + "a" * 5000,
    "/" + "a" * 3000 + "//evil.com",
]


@pytest.mark.parametrize("vector", OPEN_REDIRECTS, ids=lambda v: repr(v[:40]))
def test_safe_redirect_target_refuses(vector: str) -> None:
    assert safe_redirect_target(vector) == "/"


@pytest.mark.parametrize("rd", ["/tickets/42?tab=open", "/", "/caf%C3%A9/x", "/a/b-c_d~e"])
def test_safe_redirect_target_keeps_same_host_paths(rd: str) -> None:
    assert safe_redirect_target(rd) == rd


async def test_every_open_redirect_vector_lands_on_root_after_sign_in(aw: AttackWorld) -> None:
    await signed_in(aw)
    wrong: dict[str, str] = {}
    for vector in OPEN_REDIRECTS:
        browser = aw.browser("alice")
        attempt = await attempt_sign_in(browser, rd=vector)
        if attempt.reply.status != 303 or attempt.reply.headers.get("Location") != "/":
            wrong[vector[:60]] = f"{attempt.reply.status} {attempt.reply.headers.get('Location')}"
    assert wrong == {}


async def test_unauthenticated_navigation_to_a_scheme_relative_path_lands_on_root(
    aw: AttackWorld,
) -> None:
    await signed_in(aw)
    reply = await raw_exchange(
        aw.port,
        raw_request("//evil.com/x", f"Host: {HOST}", "Accept: text/html"),
    )
    assert reply.status == 302
    (location,) = reply.header("Location")
    assert location.startswith("/.sso/login?rd=")
    browser = aw.browser("alice")
    login = await browser.get(location)
    at_entra = await browser.get(_add_query(login.headers["Location"], x_emulator_user="alice"))
    landing = await browser.get(at_entra.headers["Location"])
    assert landing.status == 303
    assert landing.headers["Location"] == "/"


async def test_rd_tampered_in_the_signup_and_verify_forms_lands_on_root(aw: AttackWorld) -> None:
    world: World = aw.world
    browser = aw.browser("alice")
    page = await browser.open("/.sso/login?rd=" + quote("//evil.com", safe=""))
    assert "/.sso/signup" in page.url
    sent = await browser.post(
        "/.sso/signup", {"csrf_token": page.form_value("csrf_token"), "rd": "https://evil.com"}
    )
    assert sent.status == 303
    assert "evil" not in sent.headers["Location"]
    step_two = await browser.follow(sent)
    done = await browser.post(
        "/.sso/verify",
        {
            "csrf_token": step_two.form_value("csrf_token"),
            "code": world.smtp.last_code(),
            "rd": "/\\evil.com",
        },
    )
    assert done.status == 303
    assert done.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("method", "params", "headers"),
    [
        ("GET", {"post_logout_redirect_uri": "https://evil.com/"}, {}),
        ("GET", {"rd": "//evil.com", "redirect_uri": "https://evil.com"}, {}),
        ("GET", {"state": "x", "id_token_hint": "y", "client_id": "evil"}, {}),
        ("POST", {"post_logout_redirect_uri": "https://evil.com/", "rd": "//evil.com"}, {}),
        ("GET", {}, {"X-Forwarded-Host": "evil.com", "X-Forwarded-Proto": "https"}),
        ("GET", {}, {"Referer": "https://evil.com/"}),
    ],
    ids=["plru-param", "rd-param", "oidc-params", "post-form", "forwarded-host", "referer"],
)
async def test_logout_always_returns_to_our_signed_out_page(
    aw: AttackWorld, method: str, params: dict[str, str], headers: dict[str, str]
) -> None:
    browser = await signed_in(aw)
    if method == "GET":
        reply = await browser.get(
            "/.sso/logout" + ("?" + urlencode(params) if params else ""), headers=headers
        )
    else:
        reply = await browser.post("/.sso/logout", params, headers=headers)
    assert reply.status == 303
    location = reply.headers["Location"]
    assert "evil" not in location
    assert location.startswith(aw.world.emulator_url + "/")
    query = parse_qs(urlsplit(location).query)
    assert query["post_logout_redirect_uri"] == [SIGNED_OUT]
    assert query["client_id"] != ["evil"]
    assert not any(name in browser.cookies for name in SESSION_COOKIE_NAMES)


async def test_logout_without_a_session_also_lands_on_signed_out(aw: AttackWorld) -> None:
    reply = await aw.browser(None).get(
        "/.sso/logout?post_logout_redirect_uri=" + quote("https://evil.com", safe="")
    )
    assert reply.status == 303
    location = reply.headers["Location"]
    assert "evil" not in location
    if location != "/.sso/signed-out":
        query = parse_qs(urlsplit(location).query)
        assert query["post_logout_redirect_uri"] == [SIGNED_OUT]


# ---- identity-header smuggling ------------------------------------------------------------

FORGED_IDENTITY = [
    "X-TicketLog-User: forged-user",
    "x-ticketlog-user: forged-lower",
    "X_TicketLog_User: forged-underscore",
    "X-TICKETLOG-USER: forged-upper",
    "X-TicketLog-User: forged-duplicate",
    "X_TICKETLOG_EMAIL: forged@evil.com",
    "X-Ticketlog_Email: forged@evil.com",
    "X-TicketLog-Email: forged@evil.com",
    "X-TicketLog-Given-Name: forged",
    "X_TicketLog_Family_Name: forged",
    "x-ticketlog-name: forged",
    "X-TicketLog-Identity: forged.jwt.value",
    "x_ticketlog_identity: forged.jwt.value",
    "X-TicketLog-Roles: Admin",
    "x_ticketlog_roles: Admin",
    "X-TICKETLOG_ROLES: forged-role",
]


def _identity(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower().replace("_", "-").startswith("x-ticketlog")]


async def test_forged_identity_headers_are_replaced_on_authenticated_paths(
    aw: AttackWorld,
) -> None:
    browser = await signed_in(aw)
    cookie = f"Cookie: tlsso={browser.cookies['tlsso']}"
    reply = await raw_exchange(
        aw.port, raw_request("/echo", f"Host: {HOST}", cookie, *FORGED_IDENTITY)
    )
    assert reply.status == 200, reply.head
    seen = _identity(desk_headers(reply.body.decode()))
    names = sorted(k.lower() for k, _ in seen)
    assert names == sorted(
        n.lower()
        for n in (
            "X-TicketLog-User",
            "X-TicketLog-Email",
            "X-TicketLog-Given-Name",
            "X-TicketLog-Family-Name",
            "X-TicketLog-Name",
            "X-TicketLog-Identity",
            "X-TicketLog-Roles",
        )
    ), seen
    values = dict((k.lower(), v) for k, v in seen)
    assert values["x-ticketlog-user"] == user_key(aw)
    assert values["x-ticketlog-roles"] == "Agent"  # the ID token's, never the client's
    assert values["x-ticketlog-email"] == "alice@contoso.test"
    assert "forged" not in json.dumps(seen)
    assert "Admin" not in json.dumps(seen)
    (recorded,) = aw.desk.requests
    assert "forged" not in json.dumps(recorded.headers)
    assert "Admin" not in json.dumps(recorded.headers)


@pytest.mark.parametrize(
    ("host", "path", "signed"),
    [
        (HOST, "/assets/app.css", False),
        (HOST, "/assets/app.css", True),
        (PLAIN, "/echo", False),
        (PLAIN, "/.sso-lookalike/x", False),
    ],
    ids=["public-path", "public-path-signed-in", "sso-less-tenant", "sso-less-other-path"],
)
async def test_forged_identity_headers_never_reach_the_desk_without_identity(
    aw: AttackWorld, host: str, path: str, signed: bool
) -> None:
    lines = [f"Host: {host}", *FORGED_IDENTITY]
    if signed:
        browser = await signed_in(aw)
        lines.append(f"Cookie: tlsso={browser.cookies['tlsso']}; desk=1")
    reply = await raw_exchange(aw.port, raw_request(path, *lines))
    assert reply.status == 200, reply.head
    (recorded,) = aw.desk.requests
    assert recorded.identity_headers == []
    assert "tlsso" not in json.dumps(recorded.headers)


async def test_obsolete_line_folding_cannot_smuggle_an_identity_header(aw: AttackWorld) -> None:
    request = (
        f"GET /echo HTTP/1.1\r\nHost: {PLAIN}\r\nX-Innocent: a\r\n"
        " X-TicketLog-User: folded\r\nConnection: close\r\n\r\n"
    ).encode()
    reply = await raw_exchange(aw.port, request)
    assert reply.status != 500
    for recorded in aw.desk.requests:
        assert recorded.identity_headers == []


# ---- public-path bypasses ------------------------------------------------------------------

BYPASSES = [
    "/admin?x=/assets/",
    "/admin#/assets/",
    "/assets/../admin",
    "/assets/./../admin",
    "/assets/%2e%2e/admin",
    "/assets/%2E%2E/admin",
    "/assets%2f..%2fadmin",
    "/assets%2F..%2Fadmin",
    "/assets/..%2fadmin",
    "/assets/..%5cadmin",
    "/assets\\..\\admin",
    "/assets/..;/admin",
    "/assets;/../admin",
    "/%2e%2e/assets/x",
    "/ASSETS/x",
    "/Assets/x",
    "/assets",
    "/assets%2Fx",
]


@pytest.mark.parametrize("target", BYPASSES)
@pytest.mark.parametrize("navigation", [False, True], ids=["api", "navigation"])
async def test_public_path_bypass_requires_sign_in(
    aw: AttackWorld, target: str, navigation: bool
) -> None:
    lines = [f"Host: {HOST}"]
    if navigation:
        lines.append("Accept: text/html")
    reply = await raw_exchange(aw.port, raw_request(target, *lines))
    if "#" in target:  # no fragment in a request target: refused before anything else
        assert reply.status == 400, reply.head
        assert aw.desk.requests == []
        return
    assert reply.status == (302 if navigation else 401), reply.head
    if navigation:
        assert reply.header("Location")[0].startswith("/.sso/login")
    assert aw.desk.requests == []


async def test_the_public_path_itself_needs_no_sign_in(aw: AttackWorld) -> None:
    reply = await raw_exchange(aw.port, raw_request("/assets/app.css", f"Host: {HOST}"))
    assert reply.status == 200
    assert [r.raw_path for r in aw.desk.requests] == ["/assets/app.css"]


# ---- Host attacks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "lines", "statuses", "reaches"),
    [
        ("/api/x", ["Host: evil.example"], {421}, False),
        ("/api/x", [f"Host: {HOST}:8443"], {401}, False),
        ("/api/x", [f"Host: {HOST}."], {401}, False),
        ("/api/x", [f"Host: {HOST.upper()}"], {401}, False),
        (f"http://{PLAIN}/api/x", [f"Host: {HOST}"], {401}, False),
        ("http://evil.example/api/x", [f"Host: {HOST}"], {401}, False),
        ("/api/x", [f"Host: {HOST}", f"Host: {PLAIN}"], {400}, False),
        ("/api/x", [f"Host: {PLAIN}", f"Host: {HOST}"], {400}, False),
        ("/api/x", [f"Host: {HOST}", f"Host: {HOST}"], {400}, False),
        ("/api/x", [], {400}, False),
        ("/api/x", ["Host: "], {400}, False),
        ("/api/x", [f"Host: evil.example@{HOST}"], {400, 421}, False),
        ("/api/x", [f"Host: {HOST}:8443:1"], {400, 421}, False),
        ("/api/x", [f"Host: {HOST}, {PLAIN}"], {400, 421}, False),
        ("/api/x", [f"Host: {HOST}", f"X-Forwarded-Host: {PLAIN}"], {401}, False),
        # An SSO-less tenant, however the request names the SSO one, gets no identity.
        (f"http://{HOST}/echo", [f"Host: {PLAIN}"], {200}, True),
        ("/echo", [f"Host: {PLAIN}", f"X-Forwarded-Host: {HOST}"], {200}, True),
    ],
    ids=[
        "unknown",
        "with-port",
        "trailing-dot",
        "upper-case",
        "absolute-form-other-tenant",
        "absolute-form-evil",
        "duplicate-host-sso-first",
        "duplicate-host-plain-first",
        "duplicate-host-same",
        "missing",
        "empty",
        "userinfo",
        "two-ports",
        "comma-list",
        "forwarded-host-from-untrusted-peer",
        "absolute-form-names-sso-tenant",
        "forwarded-host-names-sso-tenant",
    ],
)
async def test_host_attacks(
    aw: AttackWorld, target: str, lines: list[str], statuses: set[int], reaches: bool
) -> None:
    reply = await raw_exchange(aw.port, raw_request(target, *lines))
    assert reply.status in statuses, reply.head
    if reaches:
        assert len(aw.desk.requests) == 1
        assert aw.desk.with_identity() == []
    else:
        assert aw.desk.requests == []


@pytest.mark.parametrize(
    ("headers", "redirect_uri"),
    [
        ({"X-Forwarded-Host": "evil.com", "X-Forwarded-Proto": "https"}, f"http://{HOST}/.sso/callback"),
        ({"X-Forwarded-For": "6.6.6.6", "Forwarded": "host=evil.com;proto=https"}, f"http://{HOST}/.sso/callback"),
        ({"Host": f"{HOST.upper()}."}, f"http://{HOST}/.sso/callback"),
        ({"Host": f"{HOST}:8443"}, f"http://{HOST}:8443/.sso/callback"),
    ],
    ids=["forwarded-host", "forwarded", "case-and-dot", "port"],
)  # fmt: skip
async def test_redirect_uri_is_built_from_the_configured_host(
    aw: AttackWorld, headers: dict[str, str], redirect_uri: str
) -> None:
    reply = await aw.browser(None).get("/.sso/login?rd=/", headers=headers)
    assert reply.status == 302
    query = parse_qs(urlsplit(reply.headers["Location"]).query)
    assert query["redirect_uri"] == [redirect_uri]


# ---- cookies -------------------------------------------------------------------------------


def _flip(value: str, index: int) -> str:
    swapped = "B" if value[index] != "B" else "C"
    return value[:index] + swapped + value[index + 1 :]


COOKIE_ATTACKS: list[tuple[str, Any]] = [
    ("garbage", lambda real: "tlsso=garbage"),
    ("empty", lambda real: "tlsso="),
    ("huge", lambda real: "tlsso=" + "A" * 7000),
    ("binary-ish", lambda real: "tlsso=%00%FF%FE\\x"),
    ("quoted", lambda real: 'tlsso="a;b,c\\"d"'),
    ("tampered-middle", lambda real: "tlsso=" + _flip(real, len(real) // 2)),
    ("tampered-first", lambda real: "tlsso=" + _flip(real, 0)),
    ("tampered-last", lambda real: "tlsso=" + _flip(real, len(real) - 1)),
    ("truncated", lambda real: "tlsso=" + real[:-4]),
    ("extended", lambda real: "tlsso=" + real + "AAAA"),
    ("host-prefixed-over-http", lambda real: "__Host-tlsso=" + real),
    ("many-cookies", lambda real: "; ".join(f"c{i}=v{i}" for i in range(300)) + "; tlsso=x"),
    ("json", lambda real: 'tlsso={"user":"admin","exp":9999999999}'),
]


@pytest.mark.parametrize("make", [m for _, m in COOKIE_ATTACKS], ids=[n for n, _ in COOKIE_ATTACKS])
async def test_bad_session_cookies_are_no_session(aw: AttackWorld, make: Any) -> None:
    real = (await signed_in(aw)).cookies["tlsso"]
    cookie = make(real)
    for navigation, expected in ((False, 401), (True, 302)):
        lines = [f"Host: {HOST}", f"Cookie: {cookie}"]
        if navigation:
            lines.append("Accept: text/html")
        reply = await raw_exchange(aw.port, raw_request("/api/tickets", *lines))
        assert reply.status == expected, reply.head
    assert aw.desk.requests == []


async def test_session_cookie_is_dead_after_logout(aw: AttackWorld) -> None:
    browser = await signed_in(aw)
    stolen = browser.cookies["tlsso"]
    out = await browser.get("/.sso/logout")
    assert out.status == 303
    thief = aw.browser(None)
    thief.cookies["tlsso"] = stolen
    api = await thief.get("/api/tickets", navigate=False)
    assert api.status == 401
    page = await thief.get("/tickets")
    assert page.status == 302
    assert page.headers["Location"].startswith("/.sso/login")
    assert aw.desk.requests == []


async def test_garbage_transaction_cookie_at_the_callback_is_400(
    aw: AttackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    browser = aw.browser("alice")
    _, _, callback = await reach_callback(browser)
    for name in [n for n in browser.cookies if n.startswith("tlsso_tx_")]:
        browser.cookies[name] = "garbage" + browser.cookies[name][7:]
    reply = await browser.get(callback)
    await assert_refused(aw, browser, reply, caplog, status=400)


# ---- sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "lines"),
    [
        ("/api/x", ["X-Big: " + "a" * 20_000]),
        ("/api/x", ["Cookie: tlsso=" + "a" * 20_000]),
        ("/api/" + "a" * 20_000, []),
        ("/api/x", ["X-" + "n" * 20_000 + ": 1"]),
        ("/api/x", [f"X-Many-{i}: " + "v" * 100 for i in range(2000)]),
        ("/.sso/login?rd=/" + "a" * 20_000, []),
        ("/.sso/callback?state=" + "s" * 20_000, []),
    ],
    ids=["value", "cookie", "target", "name", "many", "login-rd", "callback-state"],
)
async def test_oversized_headers_are_4xx_never_500(
    aw: AttackWorld, target: str, lines: list[str]
) -> None:
    reply = await raw_exchange(aw.port, raw_request(target, f"Host: {HOST}", *lines))
    assert 400 <= reply.status < 500, reply.head or reply.body[:200]
    assert aw.desk.requests == []


async def test_over_long_lines_never_echo_the_session_cookie_or_the_code(
    aw: AttackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """A desk that sets many cookies can push a signed-in browser's Cookie header over the
    line limit, and a padded callback URL is over it too: the 4xx answer and the log lines
    must not repeat the session cookie or the authorization code."""
    capture_everything(caplog)
    cookie = (await signed_in(aw)).cookies["tlsso"]
    desk_cookies = "; ".join(f"desk{i}=" + "v" * 90 for i in range(100))
    too_many_cookies = await raw_exchange(
        aw.port, raw_request("/echo", f"Host: {HOST}", f"Cookie: tlsso={cookie}; {desk_cookies}")
    )
    _, _, callback = await reach_callback(aw.browser("alice"))
    code = parse_qs(urlsplit(callback).query)["code"][0]
    target = callback[callback.index("/.sso/callback") :] + "&pad=" + "p" * 9000
    long_callback = await raw_exchange(aw.port, raw_request(target, f"Host: {HOST}"))
    for reply in (too_many_cookies, long_callback):
        assert 400 <= reply.status < 500, reply.head
    shown = [too_many_cookies.body.decode("latin-1"), long_callback.body.decode("latin-1")]
    assert_no_leak([*shown, log_text(caplog)], [cookie[:24], code[:24]])
    assert aw.desk.requests == []


@pytest.mark.parametrize("path", ["/.sso/signup", "/.sso/verify", "/.sso/callback"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_oversized_body_to_our_routes_is_413(
    aw: AttackWorld, path: str, chunked: bool
) -> None:
    browser = aw.browser("alice")
    page = await browser.open("/")  # signed in, at the signup screen
    assert "/.sso/signup" in page.url
    body = urlencode({"csrf_token": page.form_value("csrf_token"), "email": "x" * (1 << 20)})

    async def chunks() -> AsyncIterator[bytes]:
        data = body.encode()
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    async with aw.world.http.post(
        aw.world.sidecar.url + path,
        data=chunks() if chunked else io.BytesIO(body.encode()),
        headers={
            "Host": HOST,
            "Cookie": f"tlsso={browser.cookies['tlsso']}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    ) as response:
        assert response.status == 413, await response.text()
    assert aw.world.smtp.envelopes == []
    assert aw.desk.requests == []


async def test_large_desk_uploads_are_not_limited_like_our_forms(aw: AttackWorld) -> None:
    browser = await signed_in(aw)
    async with aw.world.http.post(
        aw.world.sidecar.url + "/upload",
        data=io.BytesIO(b"x" * (2 << 20)),
        headers={"Host": HOST, "Cookie": f"tlsso={browser.cookies['tlsso']}"},
    ) as response:
        assert response.status == 200
        assert (await response.json())["length"] == 2 << 20


# ---- the admin port's routes and "trusted" requests ----------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_admin_routes_are_absent_from_the_public_port(aw: AttackWorld, path: str) -> None:
    sso = await raw_exchange(aw.port, raw_request(path, f"Host: {HOST}"))
    assert sso.status == 401, sso.head
    unknown = await raw_exchange(aw.port, raw_request(path, "Host: evil.example"))
    assert unknown.status == 421
    own = await raw_exchange(aw.port, raw_request("/.sso" + path, f"Host: {HOST}"))
    assert own.status == 404
    plain = await raw_exchange(aw.port, raw_request(path, f"Host: {PLAIN}"))
    # An SSO-less tenant forwards the path to its desk, like any other.
    assert plain.status == 200
    assert json.loads(plain.body)["path"] == path
    async with aw.world.http.get(aw.world.sidecar.admin_url + path) as admin:
        assert admin.status == 200  # they do live on the admin port
        admin_body = await admin.read()
    for reply in (sso, unknown, own, plain):
        assert b"# TYPE" not in reply.body
        assert reply.body != admin_body


async def test_a_request_without_user_agent_is_authenticated_normally(aw: AttackWorld) -> None:
    browser = await signed_in(aw)
    anonymous = await raw_exchange(aw.port, raw_request("/echo", f"Host: {HOST}"))
    assert anonymous.status == 401
    assert aw.desk.requests == []
    signed = await raw_exchange(
        aw.port, raw_request("/echo", f"Host: {HOST}", f"Cookie: tlsso={browser.cookies['tlsso']}")
    )
    assert signed.status == 200
    headers = dict(desk_headers(signed.body.decode()))
    assert headers["X-TicketLog-User"] == user_key(aw)
    assert "User-Agent" not in headers


NO_SKIP_HEADERS = [
    "User-Agent: kube-probe/1.30",
    "User-Agent: ELB-HealthChecker/2.0",
    "User-Agent: GoogleHC/1.0",
    "User-Agent: Googlebot/2.1",
    "X-Forwarded-For: 127.0.0.1",
    "X-Real-IP: 127.0.0.1",
    "X-Original-URL: /assets/app.css",
    "X-Rewrite-URL: /assets/app.css",
    "X-Forwarded-Uri: /assets/app.css",
    "X-Forwarded-Prefix: /assets/",
    "X-Envoy-Original-Path: /assets/app.css",
    "X-Auth-Request-User: admin",
    "X-Forwarded-User: admin",
    "Remote-User: admin",
    "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
    "Authorization: Basic YWRtaW46YWRtaW4=",
    "X-HTTP-Method-Override: GET",
    "Referer: http://desk.contoso.test/assets/",
    "Sec-Fetch-Site: same-origin",
    "X-Requested-With: XMLHttpRequest",
    "Purpose: prefetch",
    "Origin: null",
    "X-TicketLog-User: 6d5a4e1c-0000-4000-8000-00000000a11c.6d5a4e1c-3b2a-4c1d-9e8f-7a6b5c4d3e2f",
    "Upgrade: websocket",
]


@pytest.mark.parametrize("line", NO_SKIP_HEADERS, ids=lambda line: line.split(":")[0] + line[-8:])
async def test_no_header_skips_authentication(aw: AttackWorld, line: str) -> None:
    lines = [f"Host: {HOST}", line]
    if line.startswith("Upgrade"):
        lines += [
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ]
        request = ("\r\n".join(["GET /ws HTTP/1.1", *lines]) + "\r\n\r\n").encode()
    else:
        request = raw_request("/admin", *lines)
    reply = await raw_exchange(aw.port, request)
    assert reply.status == 401, reply.head
    assert aw.desk.requests == []


@pytest.mark.parametrize(
    "method", ["OPTIONS", "HEAD", "POST", "PUT", "PATCH", "DELETE", "TRACE", "PROPFIND"]
)
async def test_every_method_needs_sign_in(aw: AttackWorld, method: str) -> None:
    reply = await raw_exchange(
        aw.port,
        raw_request("/admin", f"Host: {HOST}", "Origin: https://evil.com", method=method),
    )
    assert reply.status == 401, reply.head
    assert aw.desk.requests == []
