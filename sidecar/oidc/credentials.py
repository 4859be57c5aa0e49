"""How a tenant's app proves itself at Entra's token endpoint: one interface, three kinds.

A token request (code redemption, check-entra's client-credentials request) asks its
``ClientCredential`` for the form fields that authenticate it. The three kinds of the
contract ("Client credentials"):

- ``ClientSecrets``: ``client_secret_post`` (RFC 6749 §2.3.1; Learn [CODE]).
- ``ClientCertificates``: ``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9), a client
  assertion in Microsoft's format (Learn "Microsoft identity platform application
  authentication certificate credentials"): PS256, header ``typ: JWT`` and ``x5t#S256``.
- ``FederatedToken``: workload identity federation (Learn "Workload identity
  federation"): a token another issuer (the Kubernetes cluster) signed, read from a file
  at each request because kubelet rotates it, sent as the client assertion.

Secrets and certificates may be lists, newest first: the provider tries the next entry
when Entra refuses one with ``invalid_client`` (rotation). Framework-free, no logging:
nothing here ever puts a secret, a key or an assertion into a message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from authlib.oauth2.rfc7523 import private_key_jwt_sign
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

from sidecar.fingerprints import FINGERPRINT_HEX_DIGITS, fingerprint

from .errors import OidcError

__all__ = [
    "ASSERTION_LIFETIME",
    "ASSERTION_TYPE",
    "EXPIRY_WARNING_DAYS",
    "CertificateError",
    "ClientCertificate",
    "ClientCertificates",
    "ClientCredential",
    "ClientSecrets",
    "FederatedToken",
    "FederatedTokenUnreadable",
    "TokenClaims",
    "load_certificate",
    "peek_token_claims",
    "read_token",
]

#: RFC 7523 §2.2: the client assertion type of a JWT used for client authentication.
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Learn (certificate credentials): ``exp`` 5-10 minutes after ``nbf``; the contract caps
#: it at 10. A short life limits what a leaked assertion is worth (RFC 7523 §3 item 4).
ASSERTION_LIFETIME = 600
#: A certificate that expires within this many days is warned about (contract).
EXPIRY_WARNING_DAYS = 30
#: An RSA key shorter than this is refused: Entra requires 2048 bits for certificates.
MIN_RSA_BITS = 2048

CredentialKind = Literal["secret", "certificate", "federated"]


class ClientCredential(ABC):
    """One or more credentials of one kind, newest first."""

    kind: CredentialKind

    @property
    @abstractmethod
    def count(self) -> int:
        """How many entries there are to try (1 for a federated token)."""

    @abstractmethod
    async def authentication(
        self, index: int, *, client_id: str, token_endpoint: str
    ) -> dict[str, str]:
        """The form fields that authenticate a token request with entry ``index``."""

    @abstractmethod
    def label(self, index: int) -> str:
        """How an operator recognises entry ``index`` (never its secret part)."""

    @abstractmethod
    def only(self, index: int) -> ClientCredential:
        """Entry ``index`` alone (check-entra asks Entra about each one separately)."""

    @abstractmethod
    def fingerprint(self, index: int) -> str:
        """A short, one-way name of entry ``index`` for the rotation metric (never the
        secret itself): it says which one Entra accepted."""


class ClientSecrets(ClientCredential):
    kind: CredentialKind = "secret"

    def __init__(self, secrets: Sequence[str]) -> None:
        if isinstance(secrets, str):
            raise TypeError("client_secrets must be a sequence of secrets, not one string")
        self._secrets = tuple(secrets)
        if not self._secrets or not all(self._secrets):
            raise ValueError("client_secrets needs at least one non-empty secret")

    @property
    def count(self) -> int:
        return len(self._secrets)

    async def authentication(
        self, index: int, *, client_id: str, token_endpoint: str
    ) -> dict[str, str]:
        # client_secret_post (Learn [CODE]); the form never reaches a log.
        return {"client_secret": self._secrets[index]}

    def label(self, index: int) -> str:
        return f"secret {index + 1} of {self.count}"

    def only(self, index: int) -> ClientSecrets:
        return ClientSecrets([self._secrets[index]])

    def fingerprint(self, index: int) -> str:
        return fingerprint(self._secrets[index])


class CertificateError(ValueError):
    """A certificate or key the config names cannot be used; the message names why."""


@dataclass(frozen=True)
class ClientCertificate:
    """A certificate registered on the app and its private key."""

    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey

    @property
    def sha256_thumbprint(self) -> str:
        """Upper-case hex, as the portal's Certificates list shows it."""
        return self.certificate.fingerprint(hashes.SHA256()).hex().upper()

    @property
    def sha1_thumbprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303

    @property
    def x5t_s256(self) -> str:
        """RFC 7515 §4.1.8: base64url of the SHA-256 digest of the DER certificate."""
        return _b64url(self.certificate.fingerprint(hashes.SHA256()))

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    def days_left(self, now: float) -> float:
        return (self.not_after.timestamp() - now) / 86400


def load_certificate(
    certificate_pem: str, private_key_pem: str, *, now: float
) -> ClientCertificate:
    """Parse a PEM certificate and its unencrypted PEM private key and check they can sign
    client assertions Entra accepts; CertificateError says what is wrong (never quoting
    either PEM)."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError:
        raise CertificateError(
            "certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----)"
        ) from None
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except TypeError:
        raise CertificateError(
            "private key is encrypted: give it unencrypted (openssl pkey -in KEY -out KEY.plain)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(
            "private key is not a PEM private key (-----BEGIN PRIVATE KEY-----)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        # Learn (certificate credentials): the assertion is signed RS256 or PS256.
        raise CertificateError("private key must be an RSA key (Entra signs assertions with RSA)")
    if key.key_size < MIN_RSA_BITS:
        raise CertificateError(f"RSA key has {key.key_size} bits; Entra needs at least 2048")
    if certificate.public_key() != key.public_key():
        raise CertificateError("private key does not match the certificate")
    loaded = ClientCertificate(certificate, key)
    if loaded.not_after.timestamp() <= now:
        raise CertificateError(
            f"certificate expired on {_day(loaded.not_after)} (SHA-1 thumbprint "
            f"{loaded.sha1_thumbprint}): make a new one, upload it to the app, list it first"
        )
    return loaded


class ClientCertificates(ClientCredential):
    kind: CredentialKind = "certificate"

    def __init__(
        self, certificates: Sequence[ClientCertificate], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._certificates = tuple(certificates)
        if not self._certificates:
            raise ValueError("client certificates: at least one is needed")
        self._clock = clock
        # Imported once: the joserfc key is what authlib signs with.
        self._jwks = tuple(RSAKey.import_key(c.private_key) for c in self._certificates)

    @property
    def count(self) -> int:
        return len(self._certificates)

    @property
    def certificates(self) -> tuple[ClientCertificate, ...]:
        return self._certificates

    @property
    def newest(self) -> ClientCertificate:
        return self._certificates[0]

    async def authentication(
        self, index: int, *, client_id: str, token_endpoint: str
    ) -> dict[str, str]:
        return {
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(index, client_id, token_endpoint),
        }

    def assertion(self, index: int, client_id: str, token_endpoint: str) -> str:
        """A fresh client assertion (RFC 7523 §3) signed with certificate ``index``."""
        certificate = self._certificates[index]
        now = int(self._clock())
        # RFC 7523 §3 (via authlib): iss = sub = client id, aud = the token endpoint.
        # Learn (certificate credentials): PS256 with x5t#S256 is Microsoft's current
        # format; jti a GUID, unique per assertion (replay detection, RFC 7523 §3 item 7).
        assertion: str = private_key_jwt_sign(
            self._jwks[index],
            client_id=client_id,
            token_endpoint=token_endpoint,
            alg="PS256",
            header={"typ": "JWT", "x5t#S256": certificate.x5t_s256},
            claims={"jti": str(uuid.uuid4()), "nbf": now},
            issued_at=now,
            expires_at=now + ASSERTION_LIFETIME,
        )
        return assertion

    def label(self, index: int) -> str:
        certificate = self._certificates[index]
        return (
            f"certificate {index + 1} of {self.count} "
            f"(SHA-1 thumbprint {certificate.sha1_thumbprint})"
        )

    def only(self, index: int) -> ClientCertificates:
        return ClientCertificates([self._certificates[index]], clock=self._clock)

    def fingerprint(self, index: int) -> str:
        # The start of the SHA-256 thumbprint the portal lists for the certificate.
        return self._certificates[index].sha256_thumbprint[:FINGERPRINT_HEX_DIGITS].lower()


class FederatedTokenUnreadable(OidcError):
    """The federated token file cannot be read (not yet projected, wrong path)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot read the federated token file {path}: {reason}")
        self.path = path
        self.reason = reason


#: The variable the Azure workload identity webhook sets (Learn "Workload identity
#: federation", Azure Kubernetes Service).
FEDERATED_TOKEN_ENV = "AZURE_FEDERATED_TOKEN_FILE"  # noqa: S105 (a variable name)
# A projected service-account token is about 1 KiB; anything far larger is not one.
_MAX_TOKEN_BYTES = 64 * 1024


class FederatedToken(ClientCredential):
    kind: CredentialKind = "federated"

    def __init__(self, path: str) -> None:
        if not path:
            raise ValueError("federated token file: no path")
        self.path = path

    @property
    def count(self) -> int:
        return 1

    async def read(self) -> str:
        """The token as the file holds it now: kubelet rewrites it before it expires, so
        it is read for every token request, never cached."""
        return await asyncio.to_thread(read_token, self.path)

    async def authentication(
        self, index: int, *, client_id: str, token_endpoint: str
    ) -> dict[str, str]:
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": await self.read()}

    def label(self, index: int) -> str:
        return f"federated token file {self.path}"

    def only(self, index: int) -> FederatedToken:
        return self

    def fingerprint(self, index: int) -> str:
        return "federated"  # nothing secret to tell apart: the token changes by itself


def read_token(path: str) -> str:
    """The token the file holds (FederatedTokenUnreadable when there is none)."""
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(_MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise FederatedTokenUnreadable(path, exc.strerror or type(exc).__name__) from None
    if len(raw) > _MAX_TOKEN_BYTES:
        raise FederatedTokenUnreadable(path, "larger than a service-account token can be")
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise FederatedTokenUnreadable(path, "not a JWT") from None
    if not token:
        raise FederatedTokenUnreadable(path, "the file is empty")
    return token


@dataclass(frozen=True)
class TokenClaims:
    """What an admin compares with a federated credential: never the token itself."""

    iss: str | None
    sub: str | None
    aud: tuple[str, ...]
    exp: int | None


def peek_token_claims(token: str) -> TokenClaims | None:
    """The issuer, subject, audience and expiry a JWT states, without verifying it: for
    explaining a refusal to an admin only, never for a decision."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload: Any = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(payload, dict):
        return None
    aud = payload.get("aud")
    if isinstance(aud, str):
        audiences: tuple[str, ...] = (aud,)
    elif isinstance(aud, list):
        audiences = tuple(a for a in aud if isinstance(a, str))
    else:
        audiences = ()
    exp = payload.get("exp")
    return TokenClaims(
        iss=_text(payload.get("iss")),
        sub=_text(payload.get("sub")),
        aud=tuple(_text(a) or "" for a in audiences),
        exp=int(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None,
    )


def _text(value: object) -> str | None:
    # Printed to an admin's terminal: printable ASCII only, bounded.
    if not isinstance(value, str):
        return None
    return "".join(c if " " <= c <= "~" else "?" for c in value[:300])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
