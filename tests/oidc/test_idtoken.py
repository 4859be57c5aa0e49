"""ID-token validation table: OIDC Core §3.1.3.7, entra-reference §3, RFC 8725."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jws
from joserfc.jws import JWSRegistry

from sidecar.oidc.errors import InvalidIdToken
from sidecar.oidc.idtoken import (
    MAX_TOKEN_BYTES,
    CompactToken,
    Expectations,
    IdTokenClaims,
    parse_compact,
    verify_id_token,
)
from sidecar.oidc.jwks import SigningKey

from ._tokens import (
    AUTHORITY,
    CLIENT_ID,
    DROP,
    EXPECTED,
    ISSUER,
    NONCE,
    NOW,
    OID,
    OTHER_TENANT_ID,
    TENANT_ID,
    b64,
    es256,
    good_claims,
    hs256,
    mint,
    public_jwk,
    rsa_key,
    self_signed_cert_b64,
    signing_key,
)

KEY_A = rsa_key("kid-a")
KEY_B = rsa_key("kid-b")
ATTACKER = rsa_key("kid-evil")
KEYSET = {"kid-a": signing_key(KEY_A), "kid-b": signing_key(KEY_B)}


def validate(
    raw: object,
    *,
    keys: Mapping[str, SigningKey] = KEYSET,
    nonce: str = NONCE,
    now: float = NOW,
    expected: Expectations = EXPECTED,
) -> IdTokenClaims:
    """What EntraProvider.validate_id_token does, minus the network."""
    token = parse_compact(raw)
    key = keys.get(token.kid)
    if key is None:
        raise InvalidIdToken("unknown kid")
    return verify_id_token(token, key, expected=expected, nonce=nonce, now=now)


def refused(raw: object, **kwargs: Any) -> str:
    with pytest.raises(InvalidIdToken) as info:
        validate(raw, **kwargs)
    # The reason is a fixed phrase: never the token or a claim value.
    assert NONCE not in str(info.value)
    assert OID not in str(info.value)
    return info.value.reason


def test_good_token() -> None:
    claims = validate(mint(good_claims(), KEY_A))
    assert claims.tid == TENANT_ID
    assert claims.oid == OID
    assert claims.user_key == f"{OID}.{TENANT_ID}"
    assert claims.email == "meganb@contoso.com"
    assert claims.email_domain_verified is True
    assert claims.given_name == "Megan"
    assert claims.family_name == "Bowen"
    assert claims.name == "Megan Bowen"
    assert claims.sid == "004b6ab5-8f1a-4b1e-9d3e-2a7c5e1f0b9d"
    assert claims.login_hint is not None
    assert claims.iat == int(NOW) - 10
    assert claims.exp == int(NOW) + 3600


def test_second_key_of_the_set_verifies() -> None:
    assert validate(mint(good_claims(), KEY_B)).oid == OID


def test_minimal_token_without_optional_claims() -> None:
    minimal = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "tid": TENANT_ID,
        "oid": OID,
        "sub": "s",
        "nonce": NONCE,
        "iat": int(NOW),
        "exp": int(NOW) + 60,
    }
    claims = validate(mint(minimal, KEY_A))
    assert claims.email is None
    assert claims.email_domain_verified is None
    assert claims.sid is None
    assert claims.name is None


# -- claims ------------------------------------------------------------------

OTHER_AUD = "99999999-8888-7777-6666-555555555555"

ACCEPTED = [
    pytest.param({"aud": [CLIENT_ID]}, id="aud list of one"),
    pytest.param({"aud": [CLIENT_ID, OTHER_AUD], "azp": CLIENT_ID}, id="aud list with azp"),
    pytest.param({"azp": CLIENT_ID}, id="azp equal to client"),
    pytest.param({"exp": int(NOW) - 299}, id="expired within leeway"),
    pytest.param({"exp": NOW + 60.5}, id="float exp"),
    pytest.param({"nbf": int(NOW) + 299}, id="nbf within leeway"),
    pytest.param({"nbf": DROP}, id="no nbf"),
    pytest.param({"iat": int(NOW) + 299}, id="iat ahead within leeway"),
    pytest.param({"iat": int(NOW) - 3600}, id="iat one hour old"),
    pytest.param({"ver": DROP}, id="no ver"),
    pytest.param({"unknown_claim": {"nested": [1, 2]}}, id="unknown claims ignored"),
]


@pytest.mark.parametrize("overrides", ACCEPTED)
def test_accepted_variants(overrides: dict[str, Any]) -> None:
    assert validate(mint(good_claims(**overrides), KEY_A)).oid == OID


REFUSED_CLAIMS = [
    # iss: exact match only (OIDC Core §3.1.3.7 step 2, Learn [AT])
    pytest.param({"iss": DROP}, "iss mismatch", id="iss missing"),
    pytest.param({"iss": ISSUER + "/"}, "iss mismatch", id="iss trailing slash"),
    pytest.param({"iss": ISSUER + "x"}, "iss mismatch", id="iss with suffix"),
    pytest.param({"iss": ISSUER[:-5]}, "iss mismatch", id="iss prefix of ours"),
    pytest.param({"iss": ISSUER.upper()}, "iss mismatch", id="iss other case"),
    pytest.param({"iss": f"https://sts.windows.net/{TENANT_ID}/"}, "iss mismatch", id="v1 iss"),
    pytest.param(
        {"iss": f"{AUTHORITY}/{OTHER_TENANT_ID}/v2.0", "tid": OTHER_TENANT_ID},
        "iss mismatch",
        id="other tenant",
    ),
    pytest.param({"iss": f"{AUTHORITY}/{{tenantid}}/v2.0"}, "iss mismatch", id="iss template"),
    pytest.param({"iss": ["x"]}, "iss mismatch", id="iss not a string"),
    # tid (entra-reference §3 step 3)
    pytest.param({"tid": DROP}, "tid missing or not a GUID", id="tid missing"),
    pytest.param({"tid": "contoso.com"}, "tid missing or not a GUID", id="tid not a GUID"),
    pytest.param({"tid": OTHER_TENANT_ID}, "tid mismatch", id="tid other tenant"),
    pytest.param({"tid": TENANT_ID.upper()}, "tid mismatch", id="tid other case"),
    # aud / azp (steps 3-5)
    pytest.param({"aud": DROP}, "aud missing or malformed", id="aud missing"),
    pytest.param({"aud": OTHER_AUD}, "aud mismatch", id="aud other client"),
    pytest.param({"aud": CLIENT_ID.upper()}, "aud mismatch", id="aud other case"),
    pytest.param({"aud": []}, "aud missing or malformed", id="aud empty list"),
    pytest.param({"aud": [OTHER_AUD]}, "aud mismatch", id="aud list without us"),
    pytest.param({"aud": [CLIENT_ID, 5]}, "aud missing or malformed", id="aud list bad item"),
    pytest.param({"aud": 1}, "aud missing or malformed", id="aud a number"),
    pytest.param({"aud": [CLIENT_ID, OTHER_AUD]}, "azp missing", id="multi aud without azp"),
    pytest.param(
        {"aud": [CLIENT_ID, OTHER_AUD], "azp": OTHER_AUD}, "azp mismatch", id="multi aud bad azp"
    ),
    pytest.param({"azp": OTHER_AUD}, "azp mismatch", id="azp other client"),
    pytest.param({"ver": "1.0"}, "ver mismatch", id="ver 1.0"),
    # exp / nbf / iat (steps 9-10; contract: 5 min leeway, iat <= 1 h old)
    pytest.param({"exp": DROP}, "exp missing", id="exp missing"),
    pytest.param({"exp": int(NOW) - 301}, "expired", id="expired"),
    pytest.param({"exp": True}, "exp not a number", id="exp bool"),
    pytest.param({"exp": str(int(NOW) + 60)}, "exp not a number", id="exp string"),
    pytest.param({"exp": 10**30}, "exp out of range", id="exp huge"),
    pytest.param({"nbf": int(NOW) + 301}, "not yet valid", id="nbf future"),
    pytest.param({"nbf": False}, "nbf not a number", id="nbf bool"),
    pytest.param({"iat": DROP}, "iat missing", id="iat missing"),
    pytest.param({"iat": int(NOW) + 301}, "iat in the future", id="iat future"),
    pytest.param({"iat": int(NOW) - 3600 - 301}, "iat too old", id="iat too old"),
    pytest.param({"iat": True}, "iat not a number", id="iat bool"),
    pytest.param({"iat": None}, "iat missing", id="iat null"),
    # nonce (step 11)
    pytest.param({"nonce": DROP}, "nonce missing", id="nonce missing"),
    pytest.param({"nonce": ""}, "nonce missing", id="nonce empty"),
    pytest.param({"nonce": NONCE + "x"}, "nonce mismatch", id="nonce other"),
    pytest.param({"nonce": 1}, "nonce missing", id="nonce a number"),
    # identity
    pytest.param({"oid": DROP}, "oid missing or not a GUID", id="oid missing"),
    pytest.param({"oid": ""}, "oid missing or not a GUID", id="oid empty"),
    pytest.param({"oid": "x.y"}, "oid missing or not a GUID", id="oid not a GUID"),
    pytest.param({"sub": DROP}, "sub missing", id="sub missing"),
    pytest.param({"sub": ""}, "sub missing", id="sub empty"),
    pytest.param({"sub": 42}, "sub missing", id="sub a number"),
    pytest.param({"email": 42}, "email not a string", id="email a number"),
    pytest.param({"name": ["a"]}, "name not a string", id="name a list"),
]


@pytest.mark.parametrize(("overrides", "reason"), REFUSED_CLAIMS)
def test_refused_claims(overrides: dict[str, Any], reason: str) -> None:
    assert refused(mint(good_claims(**overrides), KEY_A)) == reason


@pytest.mark.parametrize("claim", ["nonce", "iss", "oid", "tid", "aud", "sub", "email"])
def test_lone_surrogates_in_claims(claim: str) -> None:
    # json.loads turns a "\\ud800" escape into a lone surrogate: refused, never a crash later.
    overrides: dict[str, Any] = {claim: "x"}
    payload = json.dumps(good_claims(**overrides)).replace('"x"', '"\\ud800"')
    raw = mint(payload, KEY_A)
    reason = refused(raw)
    if claim in ("sub", "email"):
        assert reason == f"{claim} not valid Unicode"


def test_expected_nonce_empty_is_refused() -> None:
    assert refused(mint(good_claims(nonce=""), KEY_A), nonce="") == "nonce missing"
    assert refused(mint(good_claims(), KEY_A), nonce="") == "nonce mismatch"


def test_iss_must_be_authority_tid_v2() -> None:
    # Expectations inconsistent with the authority (only reachable through a
    # programming error, but the check stands on its own).
    odd = Expectations(
        authority="https://login.microsoftonline.us",
        issuer=ISSUER,
        tenant_id=TENANT_ID,
        client_id=CLIENT_ID,
    )
    assert refused(mint(good_claims(), KEY_A), expected=odd) == "iss does not match tid"


def test_custom_leeway_and_iat_age() -> None:
    strict = Expectations(
        authority=AUTHORITY,
        issuer=ISSUER,
        tenant_id=TENANT_ID,
        client_id=CLIENT_ID,
        leeway=0,
        max_iat_age=60,
    )
    assert refused(mint(good_claims(exp=int(NOW) - 1), KEY_A), expected=strict) == "expired"
    assert refused(mint(good_claims(iat=int(NOW) - 61), KEY_A), expected=strict) == "iat too old"


@pytest.mark.parametrize(
    ("edov", "expected"),
    [(True, True), (False, False), ("1", True), ("true", True), ("0", False), (1, False)],
)
def test_xms_edov(edov: object, expected: bool) -> None:
    assert validate(mint(good_claims(xms_edov=edov), KEY_A)).email_domain_verified is expected


def test_xms_edov_ignored_without_email() -> None:
    claims = validate(mint(good_claims(email=DROP, xms_edov=True), KEY_A))
    assert claims.email is None
    assert claims.email_domain_verified is None


def test_key_issuer_must_match_token_issuer() -> None:
    # Learn [AT] "Validate the signing key issuer".
    token = mint(good_claims(), KEY_A)
    template = signing_key(KEY_A, issuer=f"{AUTHORITY}/{{tenantid}}/v2.0")
    concrete = signing_key(KEY_A, issuer=ISSUER)
    foreign = signing_key(KEY_A, issuer=f"{AUTHORITY}/{OTHER_TENANT_ID}/v2.0")
    assert validate(token, keys={"kid-a": template}).oid == OID
    assert validate(token, keys={"kid-a": concrete}).oid == OID
    assert refused(token, keys={"kid-a": foreign}) == "key issuer mismatch"


def test_duplicate_claim_names_refused() -> None:
    payload = json.dumps(good_claims())[:-1] + f', "aud": "{OTHER_AUD}", "aud": "{CLIENT_ID}"}}'
    assert refused(mint(payload, KEY_A)) == "payload not JSON"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("[]", id="array"),
        pytest.param('"x"', id="string"),
        pytest.param("not json", id="garbage"),
        pytest.param(b"\xff\xfe", id="not utf-8"),
        pytest.param('{"exp": NaN}', id="NaN"),
        pytest.param("[" * 50_00 + "]" * 50_00, id="deep nesting"),
    ],
)
def test_payload_not_a_json_object(payload: str | bytes) -> None:
    raw = mint(payload, KEY_A)
    if len(raw) > MAX_TOKEN_BYTES:
        assert refused(raw) == "too large"
    else:
        assert refused(raw) in ("payload not JSON", "payload not a JSON object")


# -- signature ----------------------------------------------------------------


def test_tampered_payload_refused() -> None:
    header, _, sig = mint(good_claims(), KEY_A).split(".")
    forged = b64(json.dumps(good_claims(oid="11111111-1111-1111-1111-111111111111")).encode())
    assert refused(f"{header}.{forged}.{sig}") == "bad signature"


def test_signed_by_other_key_with_known_kid() -> None:
    assert refused(mint(good_claims(), ATTACKER, kid="kid-a")) == "bad signature"


def test_signature_of_key_b_under_kid_a() -> None:
    assert refused(mint(good_claims(), KEY_B, kid="kid-a")) == "bad signature"


def test_unknown_kid() -> None:
    assert refused(mint(good_claims(), ATTACKER)) == "unknown kid"


def test_verify_refuses_key_for_another_kid() -> None:
    token = parse_compact(mint(good_claims(), KEY_A))
    with pytest.raises(InvalidIdToken, match="unknown kid"):
        verify_id_token(token, KEYSET["kid-b"], expected=EXPECTED, nonce=NONCE, now=NOW)


# -- header: alg --------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", [b"", b"\x00" * 32], ids=["empty sig", "junk sig"])
def test_alg_none_refused(alg: str, signature: bytes) -> None:
    raw = mint(good_claims(), None, alg=alg, kid="kid-a", signature=signature)
    assert refused(raw) in ("alg not allowed", "not a compact JWS")


def test_unsigned_token_with_two_parts_refused() -> None:
    raw = mint(good_claims(), None, alg="none", kid="kid-a", signature=b"")
    assert refused(raw.rstrip(".")) == "not a compact JWS"


def _public_forms(key: Any) -> dict[str, bytes]:
    public = key.public_key
    return {
        "PEM SPKI": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "PEM PKCS1": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        ),
        "DER SPKI": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "JWK": json.dumps(public_jwk(key)).encode(),
        "JWK sorted": json.dumps(public_jwk(key), sort_keys=True, separators=(",", ":")).encode(),
    }


@pytest.mark.parametrize("form", list(_public_forms(KEY_A)))
def test_hs256_keyed_with_the_rsa_public_key_refused(form: str) -> None:
    # RFC 8725 §2.1: an HMAC over the token keyed with the (public) RSA key.
    secret = _public_forms(KEY_A)[form]
    raw = hs256(secret, good_claims(), kid="kid-a")
    assert refused(raw) == "alg not allowed"


@pytest.mark.parametrize("form", list(_public_forms(KEY_A)))
def test_hs256_refused_even_past_the_header_gate(form: str) -> None:
    # Defence in depth: a CompactToken built by hand (skipping parse_compact)
    # still cannot be verified as HS256 with the JWKS key.
    raw = hs256(_public_forms(KEY_A)[form], good_claims(), kid="kid-a")
    token = CompactToken(raw=raw, header={"alg": "HS256", "kid": "kid-a"}, kid="kid-a")
    with pytest.raises(InvalidIdToken):
        verify_id_token(token, KEYSET["kid-a"], expected=EXPECTED, nonce=NONCE, now=NOW)


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "rs256", "RS256 ", "HS512", "A128KW"])
def test_other_algs_refused(alg: str) -> None:
    raw = mint(good_claims(), KEY_A, alg=alg)
    assert refused(raw) == "alg not allowed"


def test_es256_refused() -> None:
    assert refused(es256(good_claims(), "kid-a")) == "alg not allowed"


@pytest.mark.parametrize("alg", [DROP, None, ["RS256"], 256])
def test_alg_missing_or_not_a_string(alg: Any) -> None:
    raw = mint(good_claims(), KEY_A, alg=alg, signature=b"x" * 256)
    assert refused(raw) == "alg not allowed"


# -- header: keys offered in the token ----------------------------------------


def test_embedded_jwk_is_never_used() -> None:
    # Attacker signs with their own key and offers it in "jwk" (CVE-2018-0114 class).
    raw = mint(good_claims(), ATTACKER, jwk=public_jwk(ATTACKER))
    assert refused(raw) == "unknown kid"
    raw = mint(good_claims(), ATTACKER, kid="kid-a", jwk=public_jwk(ATTACKER, kid="kid-a"))
    assert refused(raw) == "bad signature"


def test_embedded_jwk_without_kid() -> None:
    raw = mint(good_claims(), ATTACKER, kid=DROP, jwk=public_jwk(ATTACKER))
    assert refused(raw) == "missing kid"


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"jku": "https://evil.example/keys"}, id="jku"),
        pytest.param({"x5u": "https://evil.example/cert.pem"}, id="x5u"),
        pytest.param({"x5c": [self_signed_cert_b64(ATTACKER)]}, id="x5c"),
    ],
)
def test_key_urls_and_certificates_are_never_used(extra: dict[str, Any]) -> None:
    raw = mint(good_claims(), ATTACKER, kid="kid-a", **extra)
    assert refused(raw) == "bad signature"
    raw = mint(good_claims(), ATTACKER, **extra)
    assert refused(raw) == "unknown kid"


def test_ignored_header_does_not_break_a_genuine_token() -> None:
    # The headers are ignored, not fatal: the JWKS key still decides.
    raw = mint(good_claims(), KEY_A, x5c=[self_signed_cert_b64(ATTACKER)], x5t="abc")
    assert validate(raw).oid == OID


@pytest.mark.parametrize("kid", [DROP, "", None, 5, ["kid-a"], "k" * 257])
def test_kid_missing_or_bad(kid: Any) -> None:
    assert refused(mint(good_claims(), KEY_A, kid=kid)) in ("missing kid", "bad kid")


# -- header: other ------------------------------------------------------------


@pytest.mark.parametrize("crit", [["exp"], [], ["b64"], "x"])
def test_crit_refused(crit: Any) -> None:
    assert refused(mint(good_claims(), KEY_A, crit=crit, exp=1)) == "crit header"


def test_b64_refused() -> None:
    assert refused(mint(good_claims(), KEY_A, b64=False)) == "b64 header"


def test_jwe_header_refused() -> None:
    assert refused(mint(good_claims(), KEY_A, enc="A256GCM")) == "not a JWS"


def test_typ_not_a_string_refused() -> None:
    assert refused(mint(good_claims(), KEY_A, typ=1)) == "bad typ"


def test_duplicate_header_names_refused() -> None:
    header = '{"alg":"none","kid":"kid-a","alg":"RS256"}'
    assert refused(mint(good_claims(), KEY_A, header=header)) == "header not JSON"


@pytest.mark.parametrize(
    "header",
    [pytest.param("[]", id="array"), pytest.param("nope", id="garbage")],
)
def test_header_not_a_json_object(header: str) -> None:
    raw = mint(good_claims(), KEY_A, header=header)
    assert refused(raw) in ("header not JSON", "header not a JSON object")


# -- serialisation and size ---------------------------------------------------


def test_json_serialisation_refused() -> None:
    registry = JWSRegistry(algorithms=["RS256"])
    payload = json.dumps(good_claims())
    flattened = jws.serialize_json(
        {"protected": {"alg": "RS256", "kid": "kid-a"}}, payload, KEY_A, registry=registry
    )
    general = jws.serialize_json(
        [{"protected": {"alg": "RS256", "kid": "kid-a"}}], payload, KEY_A, registry=registry
    )
    assert refused(json.dumps(flattened)) == "not a compact JWS"
    assert refused(json.dumps(general)) == "not a compact JWS"
    assert refused(flattened) == "not a string"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param("a.b", id="two parts"),
        pytest.param("a.b.c.d.e", id="five parts (JWE)"),
        pytest.param("a..c", id="empty payload"),
        pytest.param(".b.c", id="empty header"),
        pytest.param("a=.b.c", id="padding"),
        pytest.param("a+/.b.c", id="standard base64"),
        pytest.param(" a.b.c", id="whitespace"),
        pytest.param("ä.b.c", id="non-ascii"),
    ],
)
def test_not_compact(raw: str) -> None:
    assert refused(raw) == "not a compact JWS"


def test_compact_with_surrounding_whitespace_refused() -> None:
    assert refused(mint(good_claims(), KEY_A) + "\n") == "not a compact JWS"


def test_single_char_segment_is_not_base64() -> None:
    assert refused("a.b.c") == "header not base64url"


def test_oversized_refused_before_parsing() -> None:
    raw = mint(good_claims(padding="x" * MAX_TOKEN_BYTES), KEY_A)
    assert refused(raw) == "too large"
    assert refused("." * (MAX_TOKEN_BYTES + 1)) == "too large"


def test_just_under_the_cap_is_accepted() -> None:
    base = len(mint(good_claims(padding=""), KEY_A))
    pad = (MAX_TOKEN_BYTES - base) * 3 // 4 - 4
    raw = mint(good_claims(padding="x" * pad), KEY_A)
    assert len(raw) <= MAX_TOKEN_BYTES
    assert validate(raw).oid == OID


@pytest.mark.parametrize("raw", [None, b"a.b.c", 5])
def test_not_a_string(raw: object) -> None:
    assert refused(raw) == "not a string"
