"""Key material and hand-made tokens for the OIDC tests.

Tokens are assembled by hand (not through a JOSE library) so the tests can
produce every malformed or hostile shape the validator must refuse.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import hmac
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID
from joserfc.jwk import RSAKey

from sidecar.oidc.idtoken import Expectations
from sidecar.oidc.jwks import SigningKey

AUTHORITY = "https://login.microsoftonline.com"
TENANT_ID = "7f3c0b9e-3a7e-4c2b-9a55-0c1f8d2b6e11"
OTHER_TENANT_ID = "0b6e2f4a-1c3d-4e5f-8a9b-112233445566"
ISSUER = f"{AUTHORITY}/{TENANT_ID}/v2.0"
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
OID = "00000000-0000-0000-66f3-3332eca7ea81"
NONCE = "n-0S6_WzA2Mj"
NOW = 1_750_000_000.0

EXPECTED = Expectations(
    authority=AUTHORITY, issuer=ISSUER, tenant_id=TENANT_ID, client_id=CLIENT_ID
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@functools.cache
def rsa_key(kid: str) -> RSAKey:
    """A 2048-bit private RSA key, cached per kid (generation is the slow part)."""
    return RSAKey.generate_key(2048, parameters={"kid": kid})


def public_jwk(key: RSAKey, **extra: Any) -> dict[str, Any]:
    jwk = dict(key.as_dict(private=False))
    jwk.setdefault("use", "sig")
    jwk.update(extra)
    return jwk


def signing_key(key: RSAKey, issuer: str | None = None) -> SigningKey:
    public = RSAKey.import_key(key.as_dict(private=False))
    assert key.kid is not None
    return SigningKey(kid=key.kid, key=public, issuer=issuer)


def good_claims(now: float = NOW, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "ver": "2.0",
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "tid": TENANT_ID,
        "oid": OID,
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "nonce": NONCE,
        "iat": int(now) - 10,
        "nbf": int(now) - 10,
        "exp": int(now) + 3600,
        "sid": "004b6ab5-8f1a-4b1e-9d3e-2a7c5e1f0b9d",
        "name": "Megan Bowen",
        "given_name": "Megan",
        "family_name": "Bowen",
        "preferred_username": "meganb@contoso.com",
        "email": "meganb@contoso.com",
        "xms_edov": True,
        "login_hint": "O.CiRkZjZhOTdkYi1hYzNkLTQ3Y2YtOTk3Zi0zY2YyZTY4Mzk1MGQ",
    }
    for name, value in overrides.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


#: Pass as a claim or header value to remove that member.
DROP: Any = _Drop()


def sign_rsa(key: RSAKey, alg: str, data: bytes) -> bytes:
    digest = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512()}
    private = key.private_key
    assert private is not None
    if alg == "PS256":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return private.sign(data, pss, hashes.SHA256())
    return private.sign(data, padding.PKCS1v15(), digest.get(alg, hashes.SHA256()))


def mint(
    claims: dict[str, Any] | str | bytes,
    key: RSAKey | None,
    *,
    header: dict[str, Any] | str | None = None,
    signature: bytes | None = None,
    **header_overrides: Any,
) -> str:
    """Compact JWS over ``claims``; RS* signed with ``key`` unless ``signature`` is given."""
    if isinstance(header, str):
        header_json = header.encode()
        alg = "RS256"
    else:
        hdr: dict[str, Any] = (
            header
            if header is not None
            else {"typ": "JWT", "alg": "RS256", "kid": key.kid if key is not None else "k"}
        )
        hdr = dict(hdr)
        for name, value in header_overrides.items():
            if value is DROP:
                hdr.pop(name, None)
            else:
                hdr[name] = value
        header_json = json.dumps(hdr).encode()
        declared = hdr.get("alg")
        alg = declared if isinstance(declared, str) else "RS256"
    if isinstance(claims, dict):
        payload = json.dumps(claims).encode()
    elif isinstance(claims, str):
        payload = claims.encode()
    else:
        payload = claims
    signing_input = f"{b64(header_json)}.{b64(payload)}".encode()
    if signature is None:
        assert key is not None
        signature = sign_rsa(key, alg if alg.startswith(("RS", "PS")) else "RS256", signing_input)
    return f"{signing_input.decode()}.{b64(signature)}"


def hs256(secret: bytes, claims: dict[str, Any], **header: Any) -> str:
    """The RFC 8725 §2.1 key-confusion token: HMAC keyed with public key bytes."""
    hdr = {"typ": "JWT", "alg": "HS256", **header}
    signing_input = f"{b64(json.dumps(hdr).encode())}.{b64(json.dumps(claims).encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def es256(claims: dict[str, Any], kid: str) -> str:
    private = ec.generate_private_key(ec.SECP256R1())
    hdr = {"typ": "JWT", "alg": "ES256", "kid": kid}
    signing_input = f"{b64(json.dumps(hdr).encode())}.{b64(json.dumps(claims).encode())}"
    der = private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def self_signed_cert_b64(key: RSAKey) -> str:
    """A standard-base64 DER certificate for ``key``, as an x5c header would carry."""
    private = key.private_key
    assert private is not None
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
