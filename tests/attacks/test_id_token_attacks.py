"""A hostile IdP against the real sign-in: each row forges what the token endpoint returns.

The rows are the OpenID Foundation RP certification cases for the code flow
(rp-id_token-issuer-mismatch, -aud, -sub, -iat, -bad-sig-rs256, -sig-none, -kid-absent...,
rp-nonce-invalid), the FAPI 2.0 client checks (RS256/PS256 pinning, iat/nbf/exp windows),
and the JOSE attacks of RFC 8725 (alg confusion, embedded keys, crit). Every row drives
the whole flow: /.sso/login -> the emulator -> /.sso/callback, and then checks the
contract's answer (502 page), that no session exists, that the desk saw nothing, and
that neither page nor logs show the code, the client secret or the token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.attacks.hostile_idp import (
    MISSING,
    OTHER_TENANT_ID,
    HostileIdP,
    b64url,
    flip_signature_byte,
    jws_json_serialization,
    rsa_public_jwk,
    self_signed_certificate,
)
from tests.attacks.support import (
    AttackWorld,
    assert_no_leak,
    assert_refused,
    attempt_sign_in,
    capture_everything,
    log_text,
    open_attack_world,
    secrets_of,
)
from tests.world import CLIENT_ID, TENANT_ID

OTHER_CLIENT = "99999999-8888-4777-8666-555555555555"

Rewrite = Callable[[HostileIdP, str], Any]


@dataclass(frozen=True)
class Case:
    id: str
    rewrite: Rewrite


def claims(edit: Callable[[dict[str, Any]], object]) -> Rewrite:
    """Edit the claims of the real token and sign it again with the published key."""
    return lambda idp, raw: idp.resign(raw, claims=edit)


def header(edit: Callable[[dict[str, Any]], object], key: Any = "published") -> Rewrite:
    return lambda idp, raw: idp.resign(raw, header=edit, key=key)


def drop(name: str) -> Rewrite:
    return claims(lambda c: c.pop(name))


def origin(c: dict[str, Any]) -> str:
    return str(c["iss"])[: -len(f"/{c['tid']}/v2.0")]


def times(*, iat: float = 0, nbf: float = 0, exp: float = 3600) -> Callable[[dict[str, Any]], None]:
    def edit(c: dict[str, Any]) -> None:
        now = int(time.time())
        c.update(iat=now + int(iat), nbf=now + int(nbf), exp=now + int(exp))

    return edit


def alg_none(spelling: str) -> Rewrite:
    return lambda idp, raw: idp.resign(raw, header=lambda h: h.update(alg=spelling), key=None)


def hmac_with(public: Callable[[HostileIdP], bytes], alg: str = "HS256") -> Rewrite:
    """Algorithm confusion: HMAC keyed with the RSA public key (RFC 8725 §2.1)."""
    return lambda idp, raw: idp.resign(raw, header=lambda h: h.update(alg=alg), key=public(idp))


def attacker_signed(
    extra: Callable[[HostileIdP], dict[str, Any]], *, kid: str = "active"
) -> Rewrite:
    """Signed with the attacker's own RSA key, offering it in the JOSE header."""

    def rewrite(idp: HostileIdP, raw: str) -> str:
        chosen = idp.active_kid if kid == "active" else idp.attacker_kid
        return idp.resign(
            raw, header=lambda h: h.update(kid=chosen, **extra(idp)), key=idp.attacker_rsa
        )

    return rewrite


def claims_changed_after_signing(idp: HostileIdP, raw: str) -> str:
    head, _, signature = raw.split(".")
    forged = idp.resign(raw, claims=lambda c: c.update(oid="6d5a4e1c-0000-4000-8000-0000000ba11e"))
    return f"{head}.{forged.split('.')[1]}.{signature}"


def duplicate_iss_member(idp: HostileIdP, raw: str) -> str:
    """Two ``iss`` members: parsers disagree on which one wins (RFC 7515 §5.2)."""
    head, payload, _ = raw.split(".")
    claims_json = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    body = '{"iss":"https://evil.example/' + TENANT_ID + '/v2.0",' + claims_json[1:]
    signing_input = f"{head}.{b64url(body.encode())}".encode()
    signature = idp.active_key.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64url(signature)}"


def other_tenant_issuer(c: dict[str, Any]) -> None:
    c.update(iss=f"{origin(c)}/{OTHER_TENANT_ID}/v2.0", tid=OTHER_TENANT_ID)


CASES = [
    # -- issuer (rp-id_token-issuer-mismatch; entra-reference §3 steps 2-3) --
    Case("iss-invalid", claims(lambda c: c.update(iss=f"https://evil.example/{c['tid']}/v2.0"))),
    Case("iss-real-entra-not-our-authority", claims(lambda c: c.update(iss=f"https://login.microsoftonline.com/{c['tid']}/v2.0"))),
    Case("iss-missing", drop("iss")),
    Case("iss-prefix-of-real", claims(lambda c: c.update(iss=c["iss"].removesuffix("/v2.0")))),
    Case("iss-prefix-of-real-with-slash", claims(lambda c: c.update(iss=c["iss"].removesuffix("v2.0")))),
    Case("iss-real-with-trailing-slash", claims(lambda c: c.update(iss=c["iss"] + "/"))),
    Case("iss-real-as-prefix", claims(lambda c: c.update(iss=c["iss"] + ".evil"))),
    Case("iss-tid-upper-case", claims(lambda c: c.update(iss=c["iss"].replace(c["tid"], c["tid"].upper())))),
    Case("iss-tenantid-template", claims(lambda c: c.update(iss=f"{origin(c)}/{{tenantid}}/v2.0"))),
    Case("iss-v1-sts", claims(lambda c: c.update(iss=f"https://sts.windows.net/{c['tid']}/"))),
    Case("iss-array", claims(lambda c: c.update(iss=[c["iss"]]))),
    # -- audience (rp-id_token-aud; OIDC Core §3.1.3.7 steps 3-5) --
    Case("aud-invalid", claims(lambda c: c.update(aud=OTHER_CLIENT))),
    Case("aud-missing", drop("aud")),
    Case("aud-empty-array", claims(lambda c: c.update(aud=[]))),
    Case("aud-array-untrusted-extra-no-azp", claims(lambda c: c.update(aud=[CLIENT_ID, OTHER_CLIENT]))),
    Case("aud-array-azp-other-client", claims(lambda c: c.update(aud=[CLIENT_ID, OTHER_CLIENT], azp=OTHER_CLIENT))),
    Case("aud-wrong-with-azp-client-id", claims(lambda c: c.update(aud=OTHER_CLIENT, azp=CLIENT_ID))),
    Case("aud-number", claims(lambda c: c.update(aud=12345))),
    # -- subject and tenant (rp-id_token-sub; the user key {oid}.{tid}) --
    Case("sub-missing", drop("sub")),
    Case("sub-empty", claims(lambda c: c.update(sub=""))),
    Case("oid-missing", drop("oid")),
    Case("tid-missing", drop("tid")),
    Case("tid-wrong", claims(lambda c: c.update(tid=OTHER_TENANT_ID))),
    Case("tid-not-a-guid", claims(lambda c: c.update(tid="contoso.test"))),
    Case("other-tenant-issuer-and-tid", claims(other_tenant_issuer)),
    Case("other-tenant-token-issued-by-entra", lambda idp, raw: idp.other_tenant_token(raw)),
    # -- time (rp-id_token-iat; FAPI 2.0: iat/nbf/exp windows; contract: 5 min leeway) --
    Case("iat-missing", drop("iat")),
    Case("exp-missing", drop("exp")),
    Case("iat-in-the-future", claims(times(iat=900, nbf=0))),
    Case("iat-very-old", claims(times(iat=-7200, nbf=-7200, exp=600))),
    Case("exp-past-the-leeway", claims(times(iat=-1800, nbf=-1800, exp=-900))),
    Case("nbf-in-the-future", claims(times(iat=0, nbf=900))),
    Case("exp-a-string", claims(lambda c: c.update(exp=str(c["exp"])))),
    # -- nonce (rp-nonce-invalid; OIDC Core §3.1.3.7 step 11) --
    Case("nonce-invalid", claims(lambda c: c.update(nonce=secrets.token_urlsafe(32)))),
    Case("nonce-missing", drop("nonce")),
    Case("nonce-empty", claims(lambda c: c.update(nonce=""))),
    Case("nonce-other-case", claims(lambda c: c.update(nonce=c["nonce"].swapcase()))),
    Case("nonce-truncated", claims(lambda c: c.update(nonce=c["nonce"][:-1]))),
    # -- algorithms (rp-id_token-sig-none, RFC 8725 §3.1; RS256 pinned) --
    Case("alg-none", alg_none("none")),
    Case("alg-None", alg_none("None")),
    Case("alg-NONE", alg_none("NONE")),
    Case("alg-none-with-real-signature", header(lambda h: h.update(alg="none"))),
    Case("hs256-keyed-with-public-pem", hmac_with(lambda idp: idp.public_pem())),
    Case("hs256-keyed-with-public-pem-no-newline", hmac_with(lambda idp: idp.public_pem().rstrip(b"\n"))),
    Case("hs256-keyed-with-public-der", hmac_with(lambda idp: idp.public_der())),
    Case("hs256-keyed-with-public-jwk", hmac_with(lambda idp: idp.public_jwk_json())),
    Case("hs512-keyed-with-public-pem", hmac_with(lambda idp: idp.public_pem(), "HS512")),
    Case("es256-where-rs256-is-pinned", lambda idp, raw: idp.resign(raw, header=lambda h: h.update(alg="ES256"), key=idp.attacker_ec)),
    Case("rs384-with-the-real-key", header(lambda h: h.update(alg="RS384"))),
    Case("ps256-with-the-real-key", header(lambda h: h.update(alg="PS256"))),
    Case("alg-missing", header(lambda h: h.pop("alg"))),
    # -- signature and keys (rp-id_token-bad-sig-rs256, rp-id_token-kid-absent...) --
    Case("bad-signature-flipped-byte", lambda idp, raw: flip_signature_byte(raw)),
    Case("signature-empty", lambda idp, raw: raw.rsplit(".", 1)[0] + "."),
    Case("claims-changed-after-signing", claims_changed_after_signing),
    Case("kid-not-in-jwks", header(lambda h: h.update(kid="kid-" + secrets.token_urlsafe(16)))),
    Case("unpublished-key-under-published-kid", lambda idp, raw: idp.resign(raw, key=idp.attacker_rsa)),
    Case("attacker-key-in-jwk-header", attacker_signed(lambda idp: {"jwk": rsa_public_jwk(idp.attacker_rsa, idp.active_kid)})),
    Case("attacker-key-in-jwk-header-own-kid", attacker_signed(lambda idp: {"jwk": rsa_public_jwk(idp.attacker_rsa, idp.attacker_kid)}, kid="attacker")),
    Case("attacker-keys-at-jku", attacker_signed(lambda idp: {"jku": f"{idp.last_origin}/attacker/keys"}, kid="attacker")),
    Case("attacker-certificate-in-x5c", attacker_signed(lambda idp: {"x5c": [base64.b64encode(self_signed_certificate(idp.attacker_rsa)).decode()]})),
    Case("unknown-crit-header", header(lambda h: h.update(crit=["urn:example:evil"], **{"urn:example:evil": True}))),
    # -- serialisation and shape --
    Case("jws-json-serialisation-flattened", lambda idp, raw: jws_json_serialization(raw, flattened=True)),
    Case("jws-json-serialisation-general", lambda idp, raw: jws_json_serialization(raw, flattened=False)),
    Case("jwe-shaped-five-parts", lambda idp, raw: raw + ".AAAA.BBBB"),
    Case("duplicate-iss-member", duplicate_iss_member),
    Case("oversized-token", claims(lambda c: c.update(pad="x" * (17 * 1024)))),
    Case("token-response-without-id-token", lambda idp, raw: MISSING),
    Case("id-token-empty-string", lambda idp, raw: ""),
    Case("id-token-a-json-object", lambda idp, raw: {"token": raw}),
    Case("id-token-a-number", lambda idp, raw: 12345),
]  # fmt: skip


@pytest.fixture
async def aw() -> AsyncIterator[AttackWorld]:
    async with open_attack_world() as world:
        yield world


def test_case_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_forged_id_token_is_refused(
    aw: AttackWorld, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    aw.idp.id_token_rewrite = case.rewrite
    browser = aw.browser("alice")
    attempt = await attempt_sign_in(browser, rd="/tickets/1")
    assert aw.idp.issued_id_tokens, "the emulator never answered the token request"
    await assert_refused(aw, browser, attempt.reply, caplog, status=502, attempt=attempt)
    # Keys offered by the token (jku) are never fetched.
    assert ("GET", "/attacker/keys") not in aw.idp.requests


async def test_the_genuine_token_is_accepted(aw: AttackWorld) -> None:
    """The control row: with no forgery the same steps sign in (so the rows above fail for
    the forgery, not for the harness)."""
    aw.idp.id_token_rewrite = lambda idp, raw: idp.resign(raw)  # re-signed, unchanged
    browser = aw.browser("alice")
    attempt = await attempt_sign_in(browser)
    assert attempt.reply.status == 303, attempt.reply.text[:500]
    assert "tlsso" in browser.cookies


async def test_real_sign_in_at_another_tenant_replayed_through_our_callback(
    aw: AttackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """Mix-up / cross-tenant replay: the attacker signs in for real at their own tenant
    (same multi-tenant client id, our redirect URI, the victim's nonce learnt from the
    authorization request) and the hostile IdP hands that token to our callback."""
    capture_everything(caplog)
    victim = aw.browser("alice")
    login = await victim.get("/.sso/login?rd=/")
    authorize = login.headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    # The attacker's own sign-in at Fabrikam, through the emulator's real endpoints.
    attacker = aw.browser("alice")
    at_entra = await attacker.get(
        f"{aw.world.emulator_url}/{OTHER_TENANT_ID}/oauth2/v2.0/authorize?"
        + urlencode(
            {
                "client_id": CLIENT_ID,
                "response_type": "code",
                "redirect_uri": query["redirect_uri"],
                "scope": "openid profile email",
                "state": "attacker",
                "nonce": query["nonce"],
                "x_emulator_user": "alice",
            }
        )
    )
    code = parse_qs(urlsplit(at_entra.headers["Location"]).query)["code"][0]
    async with aw.world.http.post(
        f"{aw.world.emulator_url}/{OTHER_TENANT_ID}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": CLIENT_ID,
            "client_secret": "dev~emulator-secret-value",
            "code": code,
            "redirect_uri": query["redirect_uri"],
        },
    ) as response:
        assert response.status == 200
        foreign = (await response.json())["id_token"]
    aw.idp.id_token_rewrite = lambda idp, raw: foreign
    at_ours = await victim.get(authorize + "&x_emulator_user=alice")
    callback = at_ours.headers["Location"]
    reply = await victim.get(callback)
    await assert_refused(aw, victim, reply, caplog, status=502)
    assert_no_leak([reply.text, log_text(caplog)], [code, foreign])


# ---- hostile discovery and JWKS -----------------------------------------------------------


def _issuer_elsewhere(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "issuer": f"https://login.microsoftonline.com/{TENANT_ID}/v2.0"}


def _issuer_other_tenant(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "issuer": doc["issuer"].replace(TENANT_ID, OTHER_TENANT_ID)}


def _issuer_template(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "issuer": doc["issuer"].replace(TENANT_ID, "{tenantid}")}


def _issuer_trailing_slash(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "issuer": doc["issuer"] + "/"}


def _issuer_missing(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "issuer"}


def _configured_by_guid(document: dict[str, Any]) -> None:
    document["tenants"][0]["sso"]["tenant"] = TENANT_ID


@pytest.mark.parametrize(
    ("patch", "edit"),
    [
        (_issuer_elsewhere, None),
        (_issuer_template, None),
        (_issuer_trailing_slash, None),
        (_issuer_missing, None),
        # Configured by domain, the discovery document is what maps the domain to its GUID
        # (entra-reference §1), so only a GUID-configured tenant can tell another tenant's
        # issuer from its own.
        (_issuer_other_tenant, _configured_by_guid),
    ],
    ids=["elsewhere", "template", "trailing-slash", "missing", "other-tenant-guid-config"],
)
async def test_discovery_whose_issuer_does_not_match_is_refused(
    patch: Callable[[dict[str, Any]], dict[str, Any]],
    edit: Callable[[dict[str, Any]], None] | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture_everything(caplog)
    async with open_attack_world(edit=edit) as aw:
        aw.idp.discovery_patch = patch
        browser = aw.browser("alice")
        reply = await browser.get("/.sso/login?rd=/")
        # contract: /.sso/login for a tenant whose discovery cannot be had is a 502 page.
        assert "Location" not in reply.headers
        await assert_refused(aw, browser, reply, caplog, status=502)
        assert not any(p.endswith("/authorize") for _, p in aw.idp.requests)


def _drop_active_key(idp: HostileIdP) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda doc: {**doc, "keys": [k for k in doc["keys"] if k["kid"] != idp.active_kid]}


async def test_signing_key_missing_from_the_jwks_is_refused(
    aw: AttackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    aw.idp.jwks_patch = _drop_active_key(aw.idp)
    browser = aw.browser("alice")
    attempt = await attempt_sign_in(browser)
    await assert_refused(aw, browser, attempt.reply, caplog, status=502, attempt=attempt)


def _unparseable_entries(idp: HostileIdP) -> list[Any]:
    short = rsa_public_jwk(idp.attacker_rsa, "x")
    return [
        {"kty": "RSA", "use": "sig", "kid": "broken-n", "n": "!!not base64!!", "e": "AQAB"},
        {"kty": "RSA", "use": "sig", "kid": idp.active_kid, "n": "", "e": ""},
        {"kty": "RSA", "kid": "no-exponent", "n": short["n"]},
        {"kty": "EC", "use": "sig", "kid": "ec", "crv": "P-256", "x": "AAAA", "y": "BBBB"},
        {"kty": "oct", "kid": "hmac", "k": b64url(b"attacker-chosen-secret")},
        {"kty": "RSA", "use": "sig", "kid": "small", "n": b64url((2**511 + 1).to_bytes(64, "big")), "e": "AQAB"},
        {"kid": 42},
        "not an object",
        None,
        [],
    ]  # fmt: skip


async def test_jwks_with_unparseable_extra_keys_still_signs_in(
    aw: AttackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    junk = _unparseable_entries(aw.idp)
    aw.idp.jwks_patch = lambda doc: {**doc, "keys": [*junk, *doc["keys"]]}
    landing = await aw.world.sign_up(aw.browser("alice"), rd="/echo")
    assert landing.status == 200, landing.text[:300]
    assert any(r.identity_headers for r in aw.desk.requests)
    assert_no_leak([log_text(caplog)], secrets_of(None, aw.idp))


@pytest.mark.parametrize("drop_old", [True, False], ids=["emergency", "regular"])
async def test_key_rotation_keeps_sign_in_working(aw: AttackWorld, drop_old: bool) -> None:
    await aw.world.sign_up(aw.browser("alice"), rd="/echo")
    # A new key starts signing; in an emergency the old ones leave the JWKS at once
    # (entra-reference §4). One roll-over per minute: the unknown-kid refetch budget.
    new_kid = aw.idp.rotate_keys(drop_old=drop_old)
    landing = await aw.browser("alice").open("/after-rotation")
    assert landing.status == 200, landing.text[:300]
    assert json.loads(landing.text)["path"] == "/after-rotation"
    assert aw.idp.active_kid == new_kid


def _jwks_fetches(idp: HostileIdP) -> int:
    return sum(1 for _, path in idp.requests if path.endswith("/discovery/v2.0/keys"))


async def test_flood_of_unknown_kids_fetches_the_jwks_at_most_once(
    aw: AttackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    await aw.world.sign_up(aw.browser("alice"), rd="/echo")  # the keys are cached now
    before = _jwks_fetches(aw.idp)
    aw.idp.id_token_hook = lambda header, claims: header.update(kid=secrets.token_urlsafe(20))

    async def one() -> int:
        browser = aw.browser("alice")
        attempt = await attempt_sign_in(browser)
        assert "tlsso" not in browser.cookies
        return attempt.reply.status

    statuses = await asyncio.gather(*(one() for _ in range(50)))
    assert statuses == [502] * 50
    assert _jwks_fetches(aw.idp) - before <= 1
    # The flood locked nobody out: the genuine token still signs in.
    aw.idp.id_token_hook = None
    landing = await aw.browser("alice").open("/after-flood")
    assert landing.status == 200, landing.text[:300]
