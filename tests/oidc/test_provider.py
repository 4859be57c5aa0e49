"""EntraProvider against a real HTTP stand-in for Entra (fake_entra.py)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from bench.procs import free_port
from sidecar.oidc import (
    EntraProvider,
    InvalidDiscovery,
    InvalidIdToken,
    ProviderRejected,
    ProviderUnavailable,
)
from tests.helpers import FakeClock

from ._tokens import CLIENT_ID, TENANT_ID, rsa_key
from .fake_entra import FakeEntra

REDIRECT_URI = "https://desk.contoso.com/.sso/callback"

MakeProvider = Callable[..., EntraProvider]


@pytest.fixture
async def make_provider(
    entra: FakeEntra, http: aiohttp.ClientSession, clock: FakeClock
) -> AsyncIterator[MakeProvider]:
    made: list[EntraProvider] = []

    def make(**kwargs: Any) -> EntraProvider:
        options: dict[str, Any] = {
            "authority": entra.authority,
            "tenant": "contoso.com",
            "client_id": CLIENT_ID,
            "client_secrets": ["current-secret"],
            "http": http,
            "clock": clock,
            "http_timeout": 2,
        }
        options.update(kwargs)
        provider = EntraProvider(**options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def query(url: str) -> dict[str, str]:
    parsed = parse_qs(urlsplit(url).query, keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in parsed.values()), "no repeated parameters"
    return {k: v[0] for k, v in parsed.items()}


async def sign_in(provider: EntraProvider, entra: FakeEntra, **claims: Any) -> tuple[str, str, str]:
    """Authorization request + simulated /authorize; returns (code, verifier, nonce)."""
    request = await provider.authorization_request(redirect_uri=REDIRECT_URI)
    code = entra.authorize(query(request.url), **claims)
    return code, request.code_verifier, request.nonce


# -- discovery -----------------------------------------------------------------


async def test_metadata_is_fetched_once_and_cached(
    make_provider: MakeProvider, entra: FakeEntra, clock: FakeClock
) -> None:
    provider = make_provider()
    results = await asyncio.gather(*(provider.metadata() for _ in range(10)))
    assert all(m == results[0] for m in results)
    meta = results[0]
    assert meta.issuer == f"{entra.authority}/{TENANT_ID}/v2.0"
    assert meta.tenant_id == TENANT_ID
    assert entra.counts["discovery"] == 1
    clock.advance(3599)
    await provider.metadata()
    assert entra.counts["discovery"] == 1


async def test_metadata_refreshed_hourly_and_last_good_kept(
    make_provider: MakeProvider, entra: FakeEntra, clock: FakeClock
) -> None:
    provider = make_provider()
    first = await provider.metadata()
    entra.mode = "503"
    clock.advance(3601)
    assert await provider.metadata() == first
    await asyncio.sleep(0.05)
    for _ in range(50):
        if entra.counts["discovery"] == 2:
            break
        await asyncio.sleep(0.01)
    assert entra.counts["discovery"] == 2
    # Retried after a minute, not on every call, and still serving the last good.
    assert await provider.metadata() == first
    assert entra.counts["discovery"] == 2
    entra.mode = "ok"
    clock.advance(61)
    await provider.metadata()
    await asyncio.sleep(0.05)
    assert entra.counts["discovery"] == 3


@pytest.mark.parametrize("mode", ["503", "html", "redirect"])
async def test_cold_start_with_entra_failing(
    make_provider: MakeProvider, entra: FakeEntra, mode: str
) -> None:
    entra.mode = mode
    provider = make_provider()
    with pytest.raises(ProviderUnavailable) as info:
        await provider.metadata()
    assert info.value.endpoint == "discovery"
    with pytest.raises(ProviderUnavailable):
        await provider.authorization_request(redirect_uri=REDIRECT_URI)


async def test_cold_start_timeout(make_provider: MakeProvider, entra: FakeEntra) -> None:
    entra.mode = "hang"
    provider = make_provider(http_timeout=0.2)
    with pytest.raises(ProviderUnavailable, match="Timeout"):
        await provider.metadata()


async def test_cold_start_unreachable(http: aiohttp.ClientSession) -> None:
    provider = EntraProvider(
        authority=f"http://127.0.0.1:{free_port()}",
        tenant=TENANT_ID,
        client_id=CLIENT_ID,
        client_secrets=["s"],
        http=http,
    )
    with pytest.raises(ProviderUnavailable) as info:
        await provider.metadata()
    assert info.value.endpoint == "discovery"
    await provider.aclose()


async def test_unknown_tenant_is_rejected_with_aadsts(make_provider: MakeProvider) -> None:
    provider = make_provider(tenant="fabrikam.com")
    with pytest.raises(ProviderRejected) as info:
        await provider.metadata()
    assert info.value.error == "invalid_tenant"
    assert info.value.aadsts == 90002
    assert info.value.status == 400
    assert info.value.correlation_id == "corr-90002"
    assert info.value.endpoint == "discovery"


async def test_configured_guid_must_match_discovery(
    make_provider: MakeProvider, entra: FakeEntra
) -> None:
    entra.domains = ("contoso.com", "0b6e2f4a-1c3d-4e5f-8a9b-112233445566")
    provider = make_provider(tenant="0b6e2f4a-1c3d-4e5f-8a9b-112233445566")
    with pytest.raises(InvalidDiscovery):
        await provider.metadata()


def test_constructor_refuses_bad_settings(http: aiohttp.ClientSession) -> None:
    base: dict[str, Any] = {
        "authority": "https://login.microsoftonline.com",
        "tenant": "contoso.com",
        "client_id": CLIENT_ID,
        "client_secrets": ["s"],
        "http": http,
    }
    bad_settings: list[dict[str, Any]] = [
        {"tenant": "common"},
        {"tenant": "a/b"},
        {"authority": "login.microsoftonline.com"},
        {"client_secrets": []},
        {"client_secrets": [""]},
        {"client_id": ""},
    ]
    for bad in bad_settings:
        with pytest.raises(ValueError, match=r"."):
            EntraProvider(**(base | bad))
    with pytest.raises(TypeError):
        EntraProvider(**(base | {"client_secrets": "one-string"}))


# -- authorization request ---------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "hint"),
    [
        ("contoso.com", "contoso.com"),
        ("contoso.onmicrosoft.com", None),
        (TENANT_ID, None),
    ],
)
async def test_authorization_request(
    make_provider: MakeProvider, entra: FakeEntra, tenant: str, hint: str | None
) -> None:
    provider = make_provider(tenant=tenant)
    request = await provider.authorization_request(redirect_uri=REDIRECT_URI)
    assert request.url.startswith(f"{entra.authority}/{TENANT_ID}/oauth2/v2.0/authorize?")
    params = query(request.url)
    assert params["client_id"] == CLIENT_ID
    assert params["response_type"] == "code"
    assert params["redirect_uri"] == REDIRECT_URI
    assert params["scope"] == "openid profile email"
    assert params["response_mode"] == "query"
    assert params["state"] == request.state
    assert params["nonce"] == request.nonce
    assert params["code_challenge_method"] == "S256"
    digest = hashlib.sha256(request.code_verifier.encode("ascii")).digest()
    assert params["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert params.get("domain_hint") == hint
    # >= 128 bits of entropy (43 base64url chars = 256 bits); RFC 7636 §4.1 length.
    assert len(request.state) >= 43
    assert len(request.nonce) >= 43
    assert 43 <= len(request.code_verifier) <= 128
    assert "prompt" not in params
    assert "login_hint" not in params


async def test_authorization_requests_are_fresh(make_provider: MakeProvider) -> None:
    provider = make_provider()
    requests = [await provider.authorization_request(redirect_uri=REDIRECT_URI) for _ in range(5)]
    for field in ("state", "nonce", "code_verifier"):
        assert len({getattr(r, field) for r in requests}) == 5
    assert len({r.state for r in requests} | {r.nonce for r in requests}) == 10


async def test_authorization_request_options(make_provider: MakeProvider) -> None:
    provider = make_provider()
    request = await provider.authorization_request(
        redirect_uri=REDIRECT_URI,
        response_mode="form_post",
        prompt="select_account",
        login_hint="O.abc",
    )
    params = query(request.url)
    assert params["response_mode"] == "form_post"
    assert params["prompt"] == "select_account"
    assert params["login_hint"] == "O.abc"
    with pytest.raises(ValueError, match="response_mode"):
        await provider.authorization_request(redirect_uri=REDIRECT_URI, response_mode="fragment")


async def test_response_iss_check(make_provider: MakeProvider) -> None:
    provider = make_provider()
    meta = await provider.metadata()
    assert provider.response_iss_valid(meta, None)
    assert provider.response_iss_valid(meta, meta.issuer)
    assert not provider.response_iss_valid(meta, meta.issuer + "/")
    strict = dataclasses.replace(meta, authorization_response_iss_parameter_supported=True)
    assert not provider.response_iss_valid(strict, None)
    assert provider.response_iss_valid(strict, meta.issuer)


# -- code exchange ----------------------------------------------------------------------


async def test_exchange_code(make_provider: MakeProvider, entra: FakeEntra) -> None:
    provider = make_provider()
    code, verifier, nonce = await sign_in(provider, entra)
    result = await provider.exchange_code(
        code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier, nonce=nonce
    )
    assert result.secret_index == 0
    claims = result.id_token_claims
    assert claims.tid == TENANT_ID
    assert claims.user_key == f"9f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b.{TENANT_ID}"
    assert claims.email == "megan@contoso.com"
    assert claims.email_domain_verified is True
    form = entra.token_forms[-1]
    assert form["grant_type"] == "authorization_code"
    assert form["client_id"] == CLIENT_ID
    assert form["client_secret"] == "current-secret"
    assert form["code_verifier"] == verifier
    assert form["redirect_uri"] == REDIRECT_URI
    assert (entra.counts["discovery"], entra.counts["jwks"], entra.counts["token"]) == (1, 1, 1)


async def test_fetches_are_reported_to_the_observer(
    make_provider: MakeProvider, entra: FakeEntra
) -> None:
    seen: list[tuple[str, str, str]] = []
    provider = make_provider(on_fetch=lambda *fetch: seen.append(fetch))
    code, verifier, nonce = await sign_in(provider, entra)
    await provider.exchange_code(
        code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier, nonce=nonce
    )
    assert seen == [("contoso.com", "discovery", "ok"), ("contoso.com", "jwks", "ok")]


async def test_failed_fetches_are_reported_to_the_observer(
    make_provider: MakeProvider, entra: FakeEntra
) -> None:
    seen: list[tuple[str, str, str]] = []
    entra.mode = "503"
    provider = make_provider(on_fetch=lambda *fetch: seen.append(fetch))
    with pytest.raises(ProviderUnavailable):
        await provider.metadata()
    assert seen == [("contoso.com", "discovery", "error")]
    entra.mode = "ok"
    other = make_provider(on_fetch=lambda *fetch: seen.append(fetch))
    await other.metadata()
    entra.mode = "503"
    with pytest.raises(ProviderUnavailable):
        await other.keys.get("any-kid")
    assert seen[1:] == [("contoso.com", "discovery", "ok"), ("contoso.com", "jwks", "error")]


async def test_the_runtimes_observer_counts_the_metric(make_provider: MakeProvider) -> None:
    from sidecar.metrics import REGISTRY, count_idp_fetch

    def count(result: str) -> float:
        labels = {"tenant": "contoso.com", "document": "discovery", "result": result}
        return REGISTRY.get_sample_value("ticketlog_sso_idp_fetches_total", labels) or 0.0

    before = count("ok")
    await make_provider(on_fetch=count_idp_fetch).metadata()
    assert count("ok") == before + 1
    await make_provider().metadata()  # a provider nobody watches counts nothing
    assert count("ok") == before + 1


async def test_secret_rotation_falls_through_invalid_client(
    make_provider: MakeProvider, entra: FakeEntra, caplog: pytest.LogCaptureFixture
) -> None:
    provider = make_provider(client_secrets=["new-not-yet-valid", "current-secret"])
    code, verifier, nonce = await sign_in(provider, entra)
    with caplog.at_level(logging.DEBUG, logger="sidecar.oidc"):
        result = await provider.exchange_code(
            code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier, nonce=nonce
        )
    assert result.secret_index == 1
    assert entra.counts["token"] == 2
    assert "AADSTS7000215" in caplog.text
    for secret in ("new-not-yet-valid", "current-secret", code, verifier, nonce):
        assert secret not in caplog.text
    assert await provider.check_client_credentials() == 1


async def test_all_secrets_refused(make_provider: MakeProvider, entra: FakeEntra) -> None:
    provider = make_provider(client_secrets=["expired-1", "expired-2"])
    code, verifier, nonce = await sign_in(provider, entra)
    with pytest.raises(ProviderRejected) as info:
        await provider.exchange_code(
            code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier, nonce=nonce
        )
    assert info.value.error == "invalid_client"
    assert info.value.aadsts == 7000215
    assert info.value.status == 401
    assert entra.counts["token"] == 2
    assert "expired-" not in str(info.value)
    assert code not in str(info.value)


@pytest.mark.parametrize(
    ("aadsts", "error"),
    [(54005, "invalid_grant"), (70008, "invalid_grant"), (65001, "invalid_grant")],
)
async def test_token_error_is_rejected_with_details(
    make_provider: MakeProvider, entra: FakeEntra, aadsts: int, error: str
) -> None:
    provider = make_provider(client_secrets=["current-secret", "older-secret"])
    code, verifier, nonce = await sign_in(provider, entra)
    entra.token_error = {
        "error": error,
        "error_description": f"AADSTS{aadsts}: The code has expired.\r\nTrace ID: t",
        "error_codes": [aadsts],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": "trace-x",
        "correlation_id": "corr-x",
        "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
    }
    with pytest.raises(ProviderRejected) as info:
        await provider.exchange_code(
            code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier, nonce=nonce
        )
    rejected = info.value
    assert rejected.error == error
    assert rejected.aadsts == aadsts
    assert rejected.error_codes == [aadsts]
    assert rejected.correlation_id == "corr-x"
    assert rejected.trace_id == "trace-x"
    assert rejected.status == 400
    assert rejected.endpoint == "token"
    assert rejected.description.startswith(f"AADSTS{aadsts}")
    assert "expired" not in str(rejected)  # the description stays out of the message
    assert entra.counts["token"] == 1  # not retried with the other secret


async def test_real_invalid_grant_paths(make_provider: MakeProvider, entra: FakeEntra) -> None:
    provider = make_provider()
    code, verifier, nonce = await sign_in(provider, entra)
    with pytest.raises(ProviderRejected) as info:
        await provider.exchange_code(
            code=code, redirect_uri=REDIRECT_URI, code_verifier="x" * 43, nonce=nonce
        )
    assert info.value.aadsts == 501481
    with pytest.raises(ProviderRejected) as info:
        await provider.exchange_code(
            code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier, nonce=nonce
        )
    assert info.value.aadsts == 54005  # redeemed (popped above)


async def test_missing_id_token(make_provider: MakeProvider, entra: FakeEntra) -> None:
    entra.omit_id_token = True
    provider = make_provider()
    code, verifier, nonce = await sign_in(provider, entra)
    with pytest.raises(InvalidIdToken) as info:
        await provider.exchange_code(
            code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier, nonce=nonce
        )
    assert info.value.reason == "no id_token"


@pytest.mark.parametrize("mode", ["503", "html", "redirect"])
async def test_token_endpoint_failing(
    make_provider: MakeProvider, entra: FakeEntra, mode: str
) -> None:
    provider = make_provider()
    code, verifier, nonce = await sign_in(provider, entra)
    await provider.keys.refresh()
    entra.mode = mode
    with pytest.raises(ProviderUnavailable) as info:
        await provider.exchange_code(
            code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier, nonce=nonce
        )
    assert info.value.endpoint == "token"
    # SECURITY: a redirect is never followed with the secret in the body.
    assert entra.counts["elsewhere"] == 0


async def test_token_error_without_oauth_json(
    make_provider: MakeProvider, entra: FakeEntra
) -> None:
    provider = make_provider()
    code, verifier, nonce = await sign_in(provider, entra)
    entra.token_error = {"message": "not an OAuth error"}
    with pytest.raises(ProviderUnavailable, match="HTTP 400"):
        await provider.exchange_code(
            code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier, nonce=nonce
        )


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"nonce": "someone-elses"}, "nonce mismatch"),
        ({"aud": "99999999-8888-7777-6666-555555555555"}, "aud mismatch"),
        ({"tid": "0b6e2f4a-1c3d-4e5f-8a9b-112233445566"}, "tid mismatch"),
        ({"iat": 1_750_000_000 - 7200, "exp": 1_750_000_000 + 600}, "iat too old"),
    ],
)
async def test_exchanged_token_is_validated(
    make_provider: MakeProvider, entra: FakeEntra, claims: dict[str, Any], reason: str
) -> None:
    provider = make_provider()
    code, verifier, nonce = await sign_in(provider, entra, **claims)
    with pytest.raises(InvalidIdToken) as info:
        await provider.exchange_code(
            code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier, nonce=nonce
        )
    assert info.value.reason == reason


async def test_key_rollover_and_unknown_kid_flood(
    make_provider: MakeProvider, entra: FakeEntra, clock: FakeClock
) -> None:
    provider = make_provider()
    good = entra.id_token("n1")
    assert (await provider.validate_id_token(good, nonce="n1")).tid == TENANT_ID
    assert entra.counts["jwks"] == 1

    # Entra rolls to a new key: the first token with it triggers one refetch.
    entra.keys = [rsa_key("entra-3"), *entra.keys]
    rolled = entra.id_token("n2")
    assert (await provider.validate_id_token(rolled, nonce="n2")).tid == TENANT_ID
    assert entra.counts["jwks"] == 2

    # Forged kids: one refetch per minute at most, however many arrive.
    attacker = rsa_key("attacker")
    clock.advance(60)
    forged = [entra.id_token(f"n{i}", signing_key=attacker) for i in range(30)]
    results = await asyncio.gather(
        *(provider.validate_id_token(t, nonce=f"n{i}") for i, t in enumerate(forged)),
        return_exceptions=True,
    )
    assert all(isinstance(r, InvalidIdToken) and r.reason == "unknown kid" for r in results)
    assert entra.counts["jwks"] == 3
    clock.advance(59)
    with pytest.raises(InvalidIdToken, match="unknown kid"):
        await provider.validate_id_token(forged[0], nonce="n0")
    assert entra.counts["jwks"] == 3
    assert entra.counts["discovery"] == 1


async def test_garbage_token_costs_no_request(
    make_provider: MakeProvider, entra: FakeEntra
) -> None:
    provider = make_provider()
    with pytest.raises(InvalidIdToken):
        await provider.validate_id_token("not.a.token", nonce="n")
    assert entra.counts["discovery"] == entra.counts["jwks"] == 0


# -- logout and checks -----------------------------------------------------------------


async def test_end_session_url(make_provider: MakeProvider, entra: FakeEntra) -> None:
    provider = make_provider()
    meta = await provider.metadata()
    url = provider.end_session_url(
        meta,
        post_logout_redirect_uri="https://desk.contoso.com/.sso/signed-out",
        logout_hint="O.x y",
    )
    assert url.startswith(f"{entra.authority}/{TENANT_ID}/oauth2/v2.0/logout?")
    assert query(url) == {
        "client_id": CLIENT_ID,
        "post_logout_redirect_uri": "https://desk.contoso.com/.sso/signed-out",
        "logout_hint": "O.x y",
    }
    url = provider.end_session_url(
        meta, post_logout_redirect_uri="https://desk.contoso.com/.sso/signed-out", logout_hint=None
    )
    assert "logout_hint" not in query(url)
    bare = dataclasses.replace(meta, end_session_endpoint=None)
    url = provider.end_session_url(bare, post_logout_redirect_uri="https://h/", logout_hint=None)
    assert url.startswith(f"{entra.authority}/{TENANT_ID}/oauth2/v2.0/logout?")


async def test_check_client_credentials(make_provider: MakeProvider, entra: FakeEntra) -> None:
    assert await make_provider().check_client_credentials() == 0
    form = entra.token_forms[-1]
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "https://graph.microsoft.com/.default"

    with pytest.raises(ProviderRejected) as info:
        await make_provider(client_secrets=["the-secret-id-not-value"]).check_client_credentials()
    assert info.value.error == "invalid_client"
    assert info.value.aadsts == 7000215

    with pytest.raises(ProviderRejected) as info:
        await make_provider(
            client_id="0f0f0f0f-0000-0000-0000-000000000000"
        ).check_client_credentials()
    assert info.value.error == "unauthorized_client"
    assert info.value.aadsts == 700016

    with pytest.raises(ProviderRejected) as info:
        await make_provider(tenant="fabrikam.com").check_client_credentials()
    assert info.value.aadsts == 90002
