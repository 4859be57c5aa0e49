"""Signing keys and JWS compact serialisation for the development Entra emulator.

Development only: nothing in production code imports this module.

The ID token is signed here by hand (with ``cryptography``) rather than through a JOSE
library on purpose: hostile tests mutate the JOSE header through ``id_token_hook`` (``alg:
none``, ``HS256``, a foreign ``kid``...) and a library would refuse to produce such tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_b64url(value: int) -> str:
    # RFC 7518 §6.3.1: n and e are unsigned big-endian, minimal length.
    return b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


@dataclass(frozen=True)
class SigningKey:
    """One RSA signing key of the emulated tenant key set."""

    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # entra-reference §4: real Entra kids are the 27-character base64url SHA-1 thumbprint
        # (equal to x5t); a thumbprint of the public key gives the same shape.
        kid = b64url(hashlib.sha1(der, usedforsecurity=False).digest())
        return cls(kid=kid, private_key=private_key)

    def public_jwk(self, issuer: str) -> dict[str, Any]:
        """The JWKS entry: entra-reference §4 (kty, use, kid, n, e, issuer)."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": _uint_b64url(numbers.n),
            "e": _uint_b64url(numbers.e),
            "issuer": issuer,
        }

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


_RSA_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


def _json_segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def sign_jwt(header: dict[str, Any], claims: dict[str, Any], key: SigningKey) -> str:
    """Compact JWS of ``claims`` under ``header``, signed as ``header["alg"]`` says.

    Besides the RS256 that Entra uses (entra-reference §3), hostile tests may ask for:
    ``none`` (empty signature), RS384/RS512, PS256/384/512, and HS256/384/512, which is keyed
    with the PEM of the *public* key: the classic algorithm-confusion forgery a relying
    party must refuse.
    """
    alg = str(header.get("alg", ""))
    signing_input = f"{_json_segment(header)}.{_json_segment(claims)}".encode("ascii")
    bits = alg[2:]
    if alg == "none":
        signature = b""
    elif alg[:2] == "RS" and bits in _RSA_HASHES:
        signature = key.private_key.sign(signing_input, padding.PKCS1v15(), _RSA_HASHES[bits]())
    elif alg[:2] == "PS" and bits in _RSA_HASHES:
        digest = _RSA_HASHES[bits]()
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        signature = key.private_key.sign(signing_input, pss, digest)
    elif alg[:2] == "HS" and bits in _RSA_HASHES:
        signature = hmac.new(key.public_pem(), signing_input, f"sha{bits}").digest()
    else:
        raise ValueError(f"entra emulator cannot sign with alg {alg!r}")
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"
