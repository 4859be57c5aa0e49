"""Whatever arrives as an ID token, validation answers InvalidIdToken or valid claims."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.oidc.errors import InvalidIdToken
from sidecar.oidc.idtoken import IdTokenClaims

from ._tokens import ISSUER, NOW, OID, TENANT_ID, b64, good_claims, mint, rsa_key
from .test_idtoken import validate

KEY_A = rsa_key("kid-a")

# database=None: no .hypothesis/ directory in the work tree.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
claim_names = st.sampled_from(
    [
        "iss",
        "aud",
        "azp",
        "tid",
        "oid",
        "sub",
        "nonce",
        "iat",
        "nbf",
        "exp",
        "ver",
        "email",
        "xms_edov",
        "sid",
        "name",
        "login_hint",
    ]
) | st.text(max_size=8)
header_names = st.sampled_from(
    ["alg", "kid", "typ", "crit", "b64", "jwk", "jku", "x5c", "x5u", "x5t", "cty", "enc", "zip"]
) | st.text(max_size=8)


def outcome(raw: object) -> IdTokenClaims | None:
    try:
        return validate(raw, now=NOW)
    except InvalidIdToken:
        return None


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text(raw: str) -> None:
    assert outcome(raw) is None


@FUZZ
@given(
    st.lists(
        st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=60),
        min_size=3,
        max_size=3,
    )
)
def test_arbitrary_base64url_segments(parts: list[str]) -> None:
    assert outcome(".".join(parts)) is None


@FUZZ
@given(
    header=st.dictionaries(header_names, json_values, max_size=4), payload=st.binary(max_size=80)
)
def test_arbitrary_header_and_payload(header: dict[str, Any], payload: bytes) -> None:
    raw = f"{b64(json.dumps(header).encode())}.{b64(payload)}.{b64(b'sig' * 20)}"
    assert outcome(raw) is None


@FUZZ
@given(
    claims=st.dictionaries(claim_names, json_values, max_size=5),
    extra_header=st.dictionaries(header_names, json_values, max_size=3),
)
def test_genuinely_signed_arbitrary_claims(
    claims: dict[str, Any], extra_header: dict[str, Any]
) -> None:
    # Signed by the real key, so the claim checks themselves are exercised.
    header = {"alg": "RS256", "kid": "kid-a", **extra_header}
    result = outcome(mint(good_claims(**claims), KEY_A, header=header))
    if result is not None:
        # Only tokens that still satisfy every rule get through.
        assert header["alg"] == "RS256"
        assert header["kid"] == "kid-a"
        assert "crit" not in header
        assert result.tid == TENANT_ID
        assert claims.get("iss", ISSUER) == ISSUER
        assert result.oid == claims.get("oid", OID)
