"""The development Entra emulator, over real HTTP on 127.0.0.1 (no mocks).

Each test starts its own emulator on a free port and talks to it with a real aiohttp
ClientSession; ID tokens are verified with joserfc against the emulator's JWKS.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet
from pytest_aiohttp import AiohttpServer

from sidecar.dev.entra import EmulatedApp, EmulatedTenant, EmulatedUser, EntraEmulator

TENANT_ID = "7f4c2d1e-8a9b-4c3d-9e2f-1a2b3c4d5e6f"
OTHER_TENANT_ID = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
OTHER_CLIENT_ID = "99999999-8888-7777-6666-555555555555"
# Characters that RFC 6749 §2.3.1 requires to be form-encoded inside HTTP Basic.
SECRET = "s3cr3t~value+/=&:%"
EXPIRED_SECRET = "old-secret-value"
SECRET_ID = "3f1d2c4b-0000-4000-8000-123456789abc"
REDIRECT = "http://desk.contoso.test/.sso/callback"
FRONTCHANNEL = "http://desk.contoso.test/.sso/frontchannel-logout"
SIGNED_OUT = "http://desk.contoso.test/.sso/signed-out"


def _users() -> list[EmulatedUser]:
    return [
        EmulatedUser(
            "alice", "aaaaaaaa-0000-4000-8000-000000000001", "Alice Example", "Alice",
            "Example", "alice@contoso.test", preferred_username="alice@contoso.test",
        ),
        EmulatedUser("bob", "bbbbbbbb-0000-4000-8000-000000000002", "Bob", "Bob", None, None),
        EmulatedUser(
            "erin", "eeeeeeee-0000-4000-8000-000000000005", "Erin", None, None,
            "erin@elsewhere.test", email_verified_domain=False,
        ),
        EmulatedUser(
            "carol", "cccccccc-0000-4000-8000-000000000003", "Carol", "Carol", "C",
            "carol@contoso.test", assigned=False,
        ),
        EmulatedUser(
            "dave", "dddddddd-0000-4000-8000-000000000004", "Dave", "Dave", "D",
            "dave@contoso.test", declines_consent=True,
        ),
    ]  # fmt: skip


def _tenants() -> list[EmulatedTenant]:
    app = EmulatedApp(
        client_id=CLIENT_ID,
        secrets={SECRET: None, EXPIRED_SECRET: time.time() - 60},
        redirect_uris=[REDIRECT],
        logout_url=FRONTCHANNEL,
        post_logout_redirect_uris=[SIGNED_OUT],
    )
    other_app = EmulatedApp(OTHER_CLIENT_ID, {SECRET: None}, ["http://desk.fabrikam.test/cb"])
    other_user = EmulatedUser("frank", "ffffffff-0000-4000-8000-000000000006", "Frank", None,
                              None, "frank@fabrikam.test")  # fmt: skip
    return [
        EmulatedTenant(TENANT_ID, ["contoso.test", "contoso.onmicrosoft.com"], [app], _users()),
        EmulatedTenant(OTHER_TENANT_ID, ["fabrikam.test"], [other_app], [other_user]),
    ]


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class _FormParser(HTMLParser):
    """Collects <form action> and its inputs (name -> value) from a page."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.buttons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.action:
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and a.get("name") == "user":
            self.buttons.append(a.get("value", ""))


def _parse_form(text: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(text)
    return parser


@dataclass
class Env:
    emu: EntraEmulator
    origin: str
    http: aiohttp.ClientSession

    def url(self, path: str, tenant: str = TENANT_ID) -> str:
        return f"{self.origin}/{tenant}{path}"

    @property
    def issuer(self) -> str:
        return f"{self.origin}/{TENANT_ID}/v2.0"

    def auth_params(self, **extra: str) -> dict[str, str]:
        params = {
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid profile email",
            "state": "st-123",
            "nonce": "n-456",
        }
        params.update(extra)
        return params

    async def authorize(
        self, user: str | None = "alice", *, tenant: str = TENANT_ID, **extra: str
    ) -> aiohttp.ClientResponse:
        params = self.auth_params(**extra)
        if user is not None:
            params["x_emulator_user"] = user
        resp = await self.http.get(
            self.url("/oauth2/v2.0/authorize", tenant), params=params, allow_redirects=False
        )
        await resp.read()
        return resp

    async def code_for(self, user: str = "alice", **extra: str) -> dict[str, str]:
        """Signs ``user`` in and returns the redirect's query parameters."""
        resp = await self.authorize(user, **extra)
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
        assert location.startswith(REDIRECT + "?")
        return dict(parse_qsl(urlsplit(location).query))

    async def token(
        self, form: dict[str, str], *, tenant: str = TENANT_ID, basic: tuple[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        auth = None
        if basic is not None:
            # RFC 6749 §2.3.1: form-encode both halves, then Basic.
            raw = f"{quote(basic[0], safe='')}:{quote(basic[1], safe='')}".encode()
            auth = "Basic " + base64.b64encode(raw).decode()
        headers = {"Authorization": auth} if auth else {}
        async with self.http.post(
            self.url("/oauth2/v2.0/token", tenant), data=form, headers=headers
        ) as resp:
            return resp.status, await resp.json()

    async def redeem(self, code: str, verifier: str | None = None, **extra: str) -> Any:
        form = {
            "grant_type": "authorization_code",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "code": code,
            "redirect_uri": REDIRECT,
        }
        if verifier is not None:
            form["code_verifier"] = verifier
        form.update(extra)
        return await self.token(form)

    async def jwks(self) -> dict[str, Any]:
        async with self.http.get(self.url("/discovery/v2.0/keys")) as resp:
            assert resp.status == 200
            data: dict[str, Any] = await resp.json()
            return data

    async def verify(self, id_token: str) -> jwt.Token:
        keys = KeySet.import_key_set(await self.jwks())  # type: ignore[arg-type]
        token = jwt.decode(id_token, keys, algorithms=["RS256"])
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": CLIENT_ID},
            exp={"essential": True},
            nbf={"essential": True},
            iat={"essential": True},
        )
        registry.validate(token.claims)
        return token


EnvFactory = Callable[..., Awaitable[Env]]


@pytest.fixture
async def make_env() -> AsyncIterator[EnvFactory]:
    started: list[Env] = []

    async def factory(**kwargs: Any) -> Env:
        emu = EntraEmulator(_tenants(), **kwargs)
        # The emulator's own start() and stop() (its public way to serve itself), not
        # aiohttp_server: they are part of the emulator these tests check.
        origin = await emu.start()
        # The emulator runs on an IP address: aiohttp's default jar drops cookies there.
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        env = Env(emu, origin, http)
        started.append(env)
        return env

    yield factory
    for env in started:
        await env.http.close()
        await env.emu.stop()


@pytest.fixture
async def env(make_env: EnvFactory) -> Env:
    return await make_env()


def _b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _assert_entra_error(body: dict[str, Any], error: str, code: int) -> None:
    """entra-reference §5: the full JSON error schema."""
    assert body["error"] == error
    assert body["error_codes"] == [code]
    description = body["error_description"]
    assert description.startswith(f"AADSTS{code}: ")
    assert f"\r\nTrace ID: {body['trace_id']}\r\n" in description
    assert f"\r\nCorrelation ID: {body['correlation_id']}\r\nTimestamp: " in description
    assert body["timestamp"]
    assert body["error_uri"].endswith(f"/error?code={code}")


# ---- discovery and keys -------------------------------------------------------------------


@pytest.mark.parametrize("segment", [TENANT_ID, "contoso.test", "CONTOSO.onmicrosoft.com"])
async def test_discovery_always_advertises_the_guid_issuer(env: Env, segment: str) -> None:
    async with env.http.get(env.url("/v2.0/.well-known/openid-configuration", segment)) as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "max-age=86400, private"
        doc = await resp.json()
    assert doc["issuer"] == env.issuer
    base = f"{env.origin}/{TENANT_ID}"
    assert doc["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert doc["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert doc["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert doc["end_session_endpoint"] == f"{base}/oauth2/v2.0/logout"
    assert {"client_secret_post", "client_secret_basic"} <= set(
        doc["token_endpoint_auth_methods_supported"]
    )
    assert set(doc["response_modes_supported"]) == {"query", "form_post", "fragment"}
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["frontchannel_logout_supported"] is True
    assert doc["http_logout_supported"] is True
    assert "authorization_response_iss_parameter_supported" not in doc


@pytest.mark.parametrize("segment", ["common", "organizations"])
async def test_multi_tenant_discovery_uses_the_template_issuer(env: Env, segment: str) -> None:
    async with env.http.get(env.url("/v2.0/.well-known/openid-configuration", segment)) as resp:
        doc = await resp.json()
    assert doc["issuer"] == f"{env.origin}/{{tenantid}}/v2.0"
    async with env.http.get(env.url("/discovery/v2.0/keys", segment)) as resp:
        keys = (await resp.json())["keys"]
    assert {k["issuer"] for k in keys} == {f"{env.origin}/{{tenantid}}/v2.0"}


async def test_unknown_tenant_is_400_invalid_tenant(env: Env) -> None:
    for path in ("/v2.0/.well-known/openid-configuration", "/discovery/v2.0/keys"):
        async with env.http.get(env.url(path, "nowhere.test")) as resp:
            assert resp.status == 400
            body = await resp.json()
        _assert_entra_error(body, "invalid_tenant", 90002)
        assert "Tenant 'nowhere.test' not found" in body["error_description"]
    status, body = await env.token({"grant_type": "client_credentials"}, tenant="nowhere.test")
    assert status == 400
    _assert_entra_error(body, "invalid_tenant", 90002)


async def test_jwks_lists_every_key_with_the_concrete_issuer(env: Env) -> None:
    keys = (await env.jwks())["keys"]
    assert len(keys) == 2
    assert [k["kid"] for k in keys] == env.emu.kids
    for key in keys:
        assert {"kty", "use", "kid", "n", "e", "issuer"} <= set(key)
        assert (key["kty"], key["use"], key["issuer"]) == ("RSA", "sig", env.issuer)


# ---- code flow ----------------------------------------------------------------------------


async def test_code_flow_with_pkce_for_a_user_with_email(env: Env) -> None:
    verifier, challenge = _pkce()
    query = await env.code_for(code_challenge=challenge, code_challenge_method="S256")
    assert query["state"] == "st-123"
    assert query["session_state"]
    status, body = await env.redeem(query["code"], verifier)
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    assert "ext_expires_in" in body
    assert body["access_token"]
    assert "openid" in body["scope"].split()

    token = await env.verify(body["id_token"])
    assert token.header == {"typ": "JWT", "alg": "RS256", "kid": env.emu.active_kid}
    claims = token.claims
    assert claims["tid"] == TENANT_ID
    assert claims["oid"] == "aaaaaaaa-0000-4000-8000-000000000001"
    assert claims["nonce"] == "n-456"
    assert claims["ver"] == "2.0"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["email"] == "alice@contoso.test"
    assert claims["xms_edov"] is True
    assert (claims["name"], claims["given_name"], claims["family_name"]) == (
        "Alice Example",
        "Alice",
        "Example",
    )
    assert claims["preferred_username"] == "alice@contoso.test"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", claims["sid"]
    )
    assert claims["sub"] != claims["oid"]
    assert len(claims["sub"]) == 43
    base64.b64decode(claims["login_hint"][2:], validate=True)  # opaque, base64
    for opaque in ("aio", "rh", "uti"):
        assert claims[opaque]


async def test_code_flow_for_users_without_email_or_unverified(env: Env) -> None:
    verifier, challenge = _pkce()
    query = await env.code_for("bob", code_challenge=challenge, code_challenge_method="S256")
    _, body = await env.redeem(query["code"], verifier)
    claims = (await env.verify(body["id_token"])).claims
    assert "email" not in claims
    assert "xms_edov" not in claims
    assert "family_name" not in claims
    assert claims["given_name"] == "Bob"
    assert claims["preferred_username"] == "bob@contoso.test"  # derived from the first domain

    query = await env.code_for("erin")  # no PKCE, no nonce parameter this time
    _, body = await env.redeem(query["code"])
    claims = (await env.verify(body["id_token"])).claims
    assert claims["email"] == "erin@elsewhere.test"
    assert claims["xms_edov"] is False
    assert "given_name" not in claims


async def test_sub_is_pairwise_per_app_and_plain_pkce_works(env: Env) -> None:
    verifier = secrets.token_urlsafe(50)
    query = await env.code_for(code_challenge=verifier, code_challenge_method="plain", nonce="x")
    _, body = await env.redeem(query["code"], verifier)
    sub_a = (await env.verify(body["id_token"])).claims["sub"]
    env.emu.tenants[0].apps.append(
        EmulatedApp(OTHER_CLIENT_ID, {SECRET: None}, ["http://other.test/cb"])
    )
    resp = await env.authorize(client_id=OTHER_CLIENT_ID, redirect_uri="http://other.test/cb")
    code = dict(parse_qsl(urlsplit(resp.headers["Location"]).query))["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://other.test/cb",
            "client_id": OTHER_CLIENT_ID, "client_secret": SECRET}  # fmt: skip
    _, body = await env.token(form)
    keys = KeySet.import_key_set(await env.jwks())  # type: ignore[arg-type]
    claims_b = jwt.decode(body["id_token"], keys, algorithms=["RS256"]).claims
    assert claims_b["aud"] == OTHER_CLIENT_ID
    assert claims_b["sub"] != sub_a


async def test_form_post_response_mode(env: Env) -> None:
    resp = await env.authorize(response_mode="form_post")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    form = _parse_form(await resp.text())
    assert form.action == REDIRECT
    assert set(form.fields) == {"code", "state", "session_state"}
    assert form.fields["state"] == "st-123"
    status, body = await env.redeem(form.fields["code"])
    assert status == 200
    assert "id_token" in body


async def test_account_picker_posts_back_with_every_parameter(env: Env) -> None:
    resp = await env.authorize(None, response_mode="form_post")
    assert resp.status == 200
    page = await resp.text()
    assert "http" not in page.split("<form")[0].replace("http-equiv", "")  # no outside assets
    assert "no email" in page
    assert "AADSTS50105" in page
    assert "AADSTS65004" in page
    form = _parse_form(page)
    assert form.buttons == ["alice", "bob", "erin", "carol", "dave"]
    assert form.fields == env.auth_params(response_mode="form_post")
    async with env.http.post(
        f"{env.origin}{form.action}", data={**form.fields, "user": "bob"}
    ) as posted:
        assert posted.status == 200
        code = _parse_form(await posted.text()).fields["code"]
    _, body = await env.redeem(code)
    assert (await env.verify(body["id_token"])).claims["name"] == "Bob"


# ---- token endpoint errors ----------------------------------------------------------------


async def test_code_reuse_is_54005(env: Env) -> None:
    query = await env.code_for()
    assert (await env.redeem(query["code"]))[0] == 200
    status, body = await env.redeem(query["code"])
    assert status == 400
    _assert_entra_error(body, "invalid_grant", 54005)


async def test_expired_code_is_70008(make_env: EnvFactory) -> None:
    env = await make_env(code_lifetime=0.01)
    query = await env.code_for()
    await asyncio.sleep(0.05)
    status, body = await env.redeem(query["code"])
    assert status == 400
    _assert_entra_error(body, "invalid_grant", 70008)


async def test_pkce_mismatch_or_missing_verifier_is_501481(env: Env) -> None:
    verifier, challenge = _pkce()
    for sent in ("wrong-" + verifier, None):
        query = await env.code_for(code_challenge=challenge, code_challenge_method="S256")
        status, body = await env.redeem(query["code"], sent)
        assert status == 400
        _assert_entra_error(body, "invalid_grant", 501481)


async def test_code_is_bound_to_tenant_and_redirect_uri(env: Env) -> None:
    query = await env.code_for()
    form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
            "client_id": OTHER_CLIENT_ID, "client_secret": SECRET}  # fmt: skip
    status, body = await env.token(form, tenant=OTHER_TENANT_ID)
    assert status == 400
    _assert_entra_error(body, "invalid_grant", 700005)

    query = await env.code_for()
    status, body = await env.redeem(query["code"], redirect_uri=REDIRECT + "/other")
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "reply address" in body["error_description"]


async def test_basic_and_post_client_auth(env: Env) -> None:
    query = await env.code_for()
    form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT}
    status, body = await env.token(form, basic=(CLIENT_ID, SECRET))
    assert status == 200, body
    query = await env.code_for()
    status, body = await env.redeem(query["code"])  # client_secret_post
    assert status == 200, body
    # RFC 6749 §2.3: two methods at once is refused.
    form = {"grant_type": "client_credentials", "client_secret": SECRET,
            "scope": "https://graph.microsoft.com/.default"}  # fmt: skip
    status, body = await env.token(form, basic=(CLIENT_ID, SECRET))
    assert (status, body["error"]) == (400, "invalid_request")


@pytest.mark.parametrize("use_basic", [False, True])
async def test_wrong_expired_and_unknown_client_credentials(env: Env, use_basic: bool) -> None:
    async def attempt(client_id: str, secret: str) -> tuple[int, dict[str, Any]]:
        query = await env.code_for()
        form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT}
        if use_basic:
            return await env.token(form, basic=(client_id, secret))
        return await env.token({**form, "client_id": client_id, "client_secret": secret})

    status, body = await attempt(CLIENT_ID, SECRET_ID)
    assert status == 401
    _assert_entra_error(body, "invalid_client", 7000215)
    assert "the client secret value, not the client secret ID" in body["error_description"]
    status, body = await attempt(CLIENT_ID, EXPIRED_SECRET)
    assert status == 401
    _assert_entra_error(body, "invalid_client", 7000222)
    status, body = await attempt("00000000-0000-0000-0000-000000000000", SECRET)
    assert status == 400
    _assert_entra_error(body, "unauthorized_client", 700016)


async def test_client_credentials(env: Env) -> None:
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET,
            "scope": "https://graph.microsoft.com/.default"}  # fmt: skip
    status, body = await env.token(form)
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["access_token"]
    assert "id_token" not in body
    status, body = await env.token(form, tenant="contoso.test")  # a domain path works too
    assert status == 200

    status, body = await env.token({**form, "client_secret": SECRET_ID})
    assert status == 401
    _assert_entra_error(body, "invalid_client", 7000215)
    status, body = await env.token({**form, "scope": "openid"})
    assert (status, body["error"]) == (400, "invalid_scope")
    status, body = await env.token({**form, "grant_type": "password"})
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    status, body = await env.token({**form, "client_id": CLIENT_ID}, tenant="common")
    assert (status, body["error_codes"]) == (400, [50194])


# ---- authorize errors ---------------------------------------------------------------------


def _redirect_error(resp: aiohttp.ClientResponse) -> dict[str, str]:
    assert resp.status == 302
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return dict(parse_qsl(urlsplit(location).query))


async def test_unassigned_user_is_redirected_with_50105(env: Env) -> None:
    query = _redirect_error(await env.authorize("carol"))
    assert query["error"] == "access_denied"
    description = query["error_description"]
    assert description.startswith("AADSTS50105: ")
    assert re.search(r"\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\n"
                     r"Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$", description)  # fmt: skip
    assert query["error_uri"].endswith("/error?code=50105")
    assert query["state"] == "st-123"
    assert "code" not in query

    env.emu.unassigned_response = "page"
    resp = await env.authorize("carol")
    assert resp.status == 400
    assert "Location" not in resp.headers
    assert "AADSTS50105" in await resp.text()


async def test_declined_consent_and_cancel_are_65004(env: Env) -> None:
    query = _redirect_error(await env.authorize("dave"))
    assert query["error"] == "access_denied"
    assert query["error_description"].startswith("AADSTS65004: ")
    query = _redirect_error(await env.authorize(None, x_emulator_action="cancel"))
    assert (query["error"], query["error_subcode"]) == ("access_denied", "cancel")


async def test_untrusted_client_or_redirect_uri_gets_a_page_not_a_redirect(env: Env) -> None:
    resp = await env.authorize(redirect_uri=REDIRECT.upper())  # exact, case-sensitive
    assert resp.status == 400
    assert "Location" not in resp.headers
    assert resp.content_type == "text/html"
    assert "AADSTS50011" in await resp.text()
    resp = await env.authorize(client_id="00000000-0000-0000-0000-000000000000")
    assert resp.status == 400
    assert "Location" not in resp.headers
    assert "AADSTS700016" in await resp.text()


async def test_bad_requests_are_redirected_errors(env: Env) -> None:
    query = _redirect_error(await env.authorize(response_type="code id_token"))
    assert query["error"] == "unsupported_response_type"
    assert query["error_description"].startswith("AADSTS700054: ")
    query = _redirect_error(await env.authorize(scope="profile email"))
    assert query["error"] == "invalid_request"
    assert query["error_description"].startswith("AADSTS900144: ")
    query = _redirect_error(
        await env.authorize(code_challenge="x" * 43, code_challenge_method="MD5")
    )
    assert query["error"] == "invalid_request"


async def test_prompt_none_needs_an_emulator_session(env: Env) -> None:
    query = _redirect_error(await env.authorize(None, prompt="none"))
    assert query["error"] == "login_required"
    assert query["error_description"].startswith("AADSTS50058: ")

    first = await env.code_for("alice")  # sets the emulator's session cookie
    silent = await env.code_for(prompt="none")  # x_emulator_user is ignored: the session wins
    assert silent["session_state"] == first["session_state"]
    _, body = await env.redeem(silent["code"])
    _, body_first = await env.redeem(first["code"])
    claims = (await env.verify(body["id_token"])).claims
    assert claims["sid"] == (await env.verify(body_first["id_token"])).claims["sid"]
    assert claims["email"] == "alice@contoso.test"


# ---- keys, hooks, availability ------------------------------------------------------------


async def test_rotate_keys(env: Env) -> None:
    old = env.emu.kids
    new_kid = env.emu.rotate_keys()
    assert new_kid not in old
    kids = [k["kid"] for k in (await env.jwks())["keys"]]
    assert kids == [*old, new_kid]
    _, body = await env.redeem((await env.code_for())["code"])
    assert (await env.verify(body["id_token"])).header["kid"] == new_kid

    newest = env.emu.rotate_keys(drop_old=True)
    assert [k["kid"] for k in (await env.jwks())["keys"]] == [newest]
    _, body = await env.redeem((await env.code_for())["code"])
    assert (await env.verify(body["id_token"])).header["kid"] == newest


async def test_hooks_mutate_the_id_token_and_the_token_response(env: Env) -> None:
    def hook(header: dict[str, Any], claims: dict[str, Any]) -> None:
        header["kid"] = "unknown-kid"
        claims["aud"] = "someone-else"
        del claims["nonce"]

    env.emu.id_token_hook = hook
    _, body = await env.redeem((await env.code_for())["code"])
    header_b64, payload_b64, _ = body["id_token"].split(".")
    assert _b64json(header_b64)["kid"] == "unknown-kid"
    claims = _b64json(payload_b64)
    assert claims["aud"] == "someone-else"
    assert "nonce" not in claims

    env.emu.id_token_hook = lambda h, c: h.update(alg="none")
    _, body = await env.redeem((await env.code_for())["code"])
    assert body["id_token"].endswith(".")  # unsigned

    env.emu.id_token_hook = None
    env.emu.token_response_hook = lambda b: {k: v for k, v in b.items() if k != "id_token"}
    status, body = await env.redeem((await env.code_for())["code"])
    assert status == 200
    assert "id_token" not in body
    assert body["access_token"]


async def test_outage_answers_503_everywhere_and_requests_are_recorded(env: Env) -> None:
    env.emu.available = False
    async with env.http.get(env.url("/v2.0/.well-known/openid-configuration")) as resp:
        assert resp.status == 503
        assert (await resp.json())["error"] == "temporarily_unavailable"
    assert (await env.authorize()).status == 503
    status, _ = await env.token({"grant_type": "client_credentials"})
    assert status == 503
    env.emu.available = True
    await env.jwks()
    assert env.emu.requests == [
        ("GET", f"/{TENANT_ID}/v2.0/.well-known/openid-configuration"),
        ("GET", f"/{TENANT_ID}/oauth2/v2.0/authorize"),
        ("POST", f"/{TENANT_ID}/oauth2/v2.0/token"),
        ("GET", f"/{TENANT_ID}/discovery/v2.0/keys"),
    ]


# ---- logout -------------------------------------------------------------------------------


async def test_logout_page_frames_frontchannel_and_redirects(env: Env) -> None:
    _, body = await env.redeem((await env.code_for())["code"])
    sid = (await env.verify(body["id_token"])).claims["sid"]
    params = {"client_id": CLIENT_ID, "post_logout_redirect_uri": SIGNED_OUT}
    async with env.http.get(env.url("/oauth2/v2.0/logout"), params=params) as resp:
        assert resp.status == 200
        page = await resp.text()
    frame = f'<iframe src="{FRONTCHANNEL}?sid={sid}"'
    assert frame in page
    assert f'<meta http-equiv="refresh" content="1;url={SIGNED_OUT}">' in page
    assert f'href="{SIGNED_OUT}"' in page
    assert env.emu.frontchannel_calls == [f"{FRONTCHANNEL}?sid={sid}"]
    assert env.emu.frontchannel_results == []  # not server-side by default

    # The emulator session is over: silent sign-in fails, a second logout frames nothing.
    assert _redirect_error(await env.authorize(None, prompt="none"))["error"] == "login_required"
    async with env.http.post(env.url("/oauth2/v2.0/logout"), data=params) as resp:
        assert resp.status == 200
        assert "<iframe" not in await resp.text()


async def test_unregistered_post_logout_redirect_uri_is_refused(env: Env) -> None:
    for params in (
        {"client_id": CLIENT_ID, "post_logout_redirect_uri": REDIRECT},
        {"post_logout_redirect_uri": "https://evil.test/"},
    ):
        async with env.http.get(env.url("/oauth2/v2.0/logout"), params=params) as resp:
            assert resp.status == 400
            page = await resp.text()
            assert "AADSTS50011" in page
            assert "refresh" not in page
    params = {"post_logout_redirect_uri": SIGNED_OUT}  # no client_id: any app's URI
    async with env.http.get(env.url("/oauth2/v2.0/logout"), params=params) as resp:
        assert resp.status == 200


async def test_server_side_frontchannel_by_logout_hint(
    make_env: EnvFactory, aiohttp_server: AiohttpServer
) -> None:
    received: list[str] = []

    async def frontchannel(request: web.Request) -> web.Response:
        received.append(request.query_string)
        return web.Response(text="ok")

    rp = web.Application()
    rp.router.add_get("/.sso/frontchannel-logout", frontchannel)
    server = await aiohttp_server(rp)
    env = await make_env(frontchannel_server_side=True)
    logout_url = str(server.make_url("/.sso/frontchannel-logout"))
    env.emu.tenants[0].apps[0].logout_url = logout_url

    _, body = await env.redeem((await env.code_for())["code"])
    claims = (await env.verify(body["id_token"])).claims
    env.http.cookie_jar.clear()  # a browser-less caller: only logout_hint identifies the user
    params = {"client_id": CLIENT_ID, "post_logout_redirect_uri": SIGNED_OUT,
              "logout_hint": claims["login_hint"]}  # fmt: skip
    async with env.http.get(env.url("/oauth2/v2.0/logout"), params=params) as resp:
        assert resp.status == 200
    assert received == [f"sid={claims['sid']}"]
    assert env.emu.frontchannel_results == [(f"{logout_url}?sid={claims['sid']}", 200)]
