"""The certificate client assertion and the federated token file, checked from outside:
the JWT is taken apart by hand and its signature verified with the certificate's public
key (cryptography), not with the library that made it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sidecar.dev.certificates import self_signed
from sidecar.oidc.credentials import (
    ASSERTION_TYPE,
    CertificateError,
    ClientCertificates,
    FederatedToken,
    FederatedTokenUnreadable,
    load_certificate,
    peek_token_claims,
)
from tests.helpers import FakeClock

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
TOKEN_ENDPOINT = (
    "https://login.microsoftonline.com/6d5a4e1c-3b2a-4c1d-9e8f-7a6b5c4d3e2f/oauth2/v2.0/token"
)


def b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    header, payload, signature = token.split(".")
    return (
        json.loads(b64decode(header)),
        json.loads(b64decode(payload)),
        f"{header}.{payload}".encode(),
        b64decode(signature),
    )


def loaded(days: float = 365, now: float | None = None) -> Any:
    made = self_signed(days=days)
    when = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    return made, load_certificate(made.certificate_pem, made.private_key_pem, now=when)


async def test_assertion_has_microsofts_header_claims_and_lifetime() -> None:
    made, certificate = loaded()
    clock = FakeClock(1_800_000_000.0)
    credential = ClientCertificates([certificate], clock=clock)
    form = await credential.authentication(0, client_id=CLIENT_ID, token_endpoint=TOKEN_ENDPOINT)
    assert form["client_assertion_type"] == ASSERTION_TYPE
    assert set(form) == {"client_assertion_type", "client_assertion"}
    header, claims, signed, signature = split(form["client_assertion"])

    der = made.certificate.public_bytes(serialization.Encoding.DER)
    expected_x5t = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert header == {"alg": "PS256", "typ": "JWT", "x5t#S256": expected_x5t}

    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == TOKEN_ENDPOINT
    assert claims["iat"] == claims["nbf"] == 1_800_000_000
    assert 0 < claims["exp"] - claims["nbf"] <= 600
    assert uuid.UUID(claims["jti"])  # a GUID, as Entra documents it
    assert set(claims) == {"iss", "sub", "aud", "iat", "nbf", "exp", "jti"}

    # The signature verifies with the certificate's public key, PS256 = RSASSA-PSS SHA-256.
    public = made.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
    public.verify(signature, signed, pss, hashes.SHA256())
    with pytest.raises(InvalidSignature):
        public.verify(signature, signed + b"x", pss, hashes.SHA256())


async def test_every_assertion_is_fresh() -> None:
    _, certificate = loaded()
    clock = FakeClock()
    credential = ClientCertificates([certificate], clock=clock)
    first = await credential.authentication(0, client_id=CLIENT_ID, token_endpoint=TOKEN_ENDPOINT)
    clock.advance(30)
    second = await credential.authentication(0, client_id=CLIENT_ID, token_endpoint=TOKEN_ENDPOINT)
    one, two = split(first["client_assertion"])[1], split(second["client_assertion"])[1]
    assert one["jti"] != two["jti"]
    assert two["iat"] == one["iat"] + 30


async def test_rotation_list_signs_with_the_entry_asked_for() -> None:
    new_made, new = loaded()
    old_made, old = loaded()
    credential = ClientCertificates([new, old])
    assert credential.count == 2
    assert credential.newest is new
    for index, made in enumerate((new_made, old_made)):
        form = await credential.authentication(
            index, client_id=CLIENT_ID, token_endpoint=TOKEN_ENDPOINT
        )
        header, _, signed, signature = split(form["client_assertion"])
        der = made.certificate.public_bytes(serialization.Encoding.DER)
        assert b64decode(header["x5t#S256"]) == hashlib.sha256(der).digest()
        public = made.certificate.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        public.verify(signature, signed, pss, hashes.SHA256())
    assert "certificate 2 of 2 (SHA-1 thumbprint " in credential.label(1)
    assert credential.only(1).count == 1


def test_thumbprints_are_the_portals() -> None:
    made, certificate = loaded()
    der = made.certificate.public_bytes(serialization.Encoding.DER)
    assert certificate.sha256_thumbprint == hashlib.sha256(der).hexdigest().upper()
    assert certificate.sha1_thumbprint == hashlib.sha1(der).hexdigest().upper()


def test_key_of_another_certificate_is_refused() -> None:
    one, other = self_signed(), self_signed()
    with pytest.raises(CertificateError, match="private key does not match the certificate"):
        load_certificate(
            one.certificate_pem, other.private_key_pem, now=dt.datetime.now().timestamp()
        )


def test_expired_certificate_is_refused() -> None:
    made = self_signed(days=10)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=11)).timestamp()
    with pytest.raises(CertificateError, match=r"certificate expired on \d{4}-\d\d-\d\d"):
        load_certificate(made.certificate_pem, made.private_key_pem, now=later)


@pytest.mark.parametrize(
    ("certificate", "key", "message"),
    [
        ("not a certificate", None, "certificate is not a PEM certificate"),
        (
            None,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "not a PEM private key",
        ),
        (None, "encrypted", "private key is encrypted"),
        (None, "ec", "must be an RSA key"),
    ],
)
def test_unusable_files_are_named_never_quoted(
    certificate: str | None, key: str | None, message: str
) -> None:
    made = self_signed()
    key_pem = made.private_key_pem
    if key == "encrypted":
        private = serialization.load_pem_private_key(key_pem.encode(), None)
        key_pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        ).decode()
    elif key == "ec":
        key_pem = (
            ec.generate_private_key(ec.SECP256R1())
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
        )
    elif key is not None:
        key_pem = key
    with pytest.raises(CertificateError) as caught:
        load_certificate(certificate or made.certificate_pem, key_pem, now=0)
    assert message in str(caught.value)
    for pem in (key_pem, made.certificate_pem):
        assert pem.splitlines()[1] not in str(caught.value)


async def test_federated_token_file_is_read_at_every_request(tmp_path: Path) -> None:
    path = tmp_path / "azure-identity-token"
    path.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvbmUifQ.c2ln\n")
    credential = FederatedToken(str(path))
    first = await credential.authentication(0, client_id=CLIENT_ID, token_endpoint=TOKEN_ENDPOINT)
    assert first == {
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvbmUifQ.c2ln",
    }
    # kubelet replaces the file (a new inode behind the same name, as its atomic writer does).
    replacement = tmp_path / "new"
    replacement.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0d28ifQ.c2ln")
    replacement.replace(path)
    second = await credential.authentication(0, client_id=CLIENT_ID, token_endpoint=TOKEN_ENDPOINT)
    assert second["client_assertion"] == "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0d28ifQ.c2ln"


async def test_missing_or_empty_token_file_is_explained(tmp_path: Path) -> None:
    credential = FederatedToken(str(tmp_path / "absent"))
    with pytest.raises(FederatedTokenUnreadable, match="No such file or directory"):
        await credential.read()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(FederatedTokenUnreadable, match="the file is empty"):
        await FederatedToken(str(tmp_path / "empty")).read()


def test_peek_reads_iss_sub_aud_without_a_key() -> None:
    payload = {
        "iss": "https://oidc.example/abc",
        "sub": "system:serviceaccount:a:b",
        "aud": ["api://AzureADTokenExchange"],
        "exp": 5,
    }
    segment = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    claims = peek_token_claims(f"eyJhbGciOiJSUzI1NiJ9.{segment}.c2ln")
    assert claims is not None
    assert (claims.iss, claims.sub, claims.aud, claims.exp) == (
        "https://oidc.example/abc",
        "system:serviceaccount:a:b",
        ("api://AzureADTokenExchange",),
        5,
    )
    assert peek_token_claims("not-a-jwt") is None
