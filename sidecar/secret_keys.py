"""Keys derived from `session.secret_keys`, so every replica given the same keys agrees.

Each configured key is random text (contract: taken literally, never decoded).
HKDF (RFC 5869) derives a separate key per purpose, so one purpose's key can
never be replayed as another's. The first configured key signs and encrypts;
all of them verify and decrypt (rotation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.jwk import ECKey

# P-256 group order: a derived scalar must fall in [1, n-1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _derive(secret: str, purpose: str, length: int = 32) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=b"ticketlog-sso/v1",
        info=purpose.encode(),
    ).derive(secret.encode())


def _signing_key(secret: str) -> ECKey:
    scalar = int.from_bytes(_derive(secret, "identity-assertion/es256", 48)) % (_P256_ORDER - 1) + 1
    private = ec.derive_private_key(scalar, ec.SECP256R1())
    key = ECKey.import_key(private)
    key.ensure_kid()
    return key


@dataclass(frozen=True)
class SecretBox:
    """Authenticated encryption (Fernet) under every configured key: newest encrypts."""

    fernet: MultiFernet

    def seal(self, plaintext: bytes) -> str:
        return self.fernet.encrypt(plaintext).decode()

    def open(self, token: str, max_age: float) -> bytes | None:
        """The plaintext, or None when the token is forged, tampered with or too old."""
        try:
            return self.fernet.decrypt(token.encode(), ttl=int(max_age))
        except (InvalidToken, ValueError, TypeError):
            return None


class DerivedKeys:
    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("at least one secret key is needed")
        self._macs = [_derive(s, "session-cookie/hmac") for s in secrets]
        self._csrf_keys = [_derive(s, "csrf/hmac") for s in secrets]
        self.code_hash_key = _derive(secrets[0], "signup-code/hmac")
        self.login_box = SecretBox(
            MultiFernet(
                [
                    Fernet(base64.urlsafe_b64encode(_derive(s, "login-transaction/fernet")))
                    for s in secrets
                ]
            )
        )
        self.signing_keys = [_signing_key(s) for s in secrets]

    @property
    def active_signing_key(self) -> ECKey:
        return self.signing_keys[0]

    def public_jwks(self) -> dict[str, list[dict[str, object]]]:
        keys: list[dict[str, object]] = []
        for key in self.signing_keys:
            public: dict[str, object] = dict(key.as_dict(private=False))
            public.update({"use": "sig", "alg": "ES256"})
            keys.append(public)
        return {"keys": keys}

    # Session cookies: an opaque random id plus a MAC, so a forged or garbage cookie is
    # refused before any store lookup (cheap rejection, and no store probing).
    def sign_cookie(self, session_id: str) -> str:
        mac = hmac.new(self._macs[0], session_id.encode(), hashlib.sha256).digest()
        return f"{session_id}.{base64.urlsafe_b64encode(mac[:18]).decode()}"

    def verify_cookie(self, value: str) -> str | None:
        session_id, sep, mac_text = value.rpartition(".")
        # A garbage cookie is no session, never an error (compare_digest refuses non-ASCII).
        if not sep or not session_id or len(value) > 256 or not value.isascii():
            return None
        for key in self._macs:
            mac = hmac.new(key, session_id.encode(), hashlib.sha256).digest()
            expected = base64.urlsafe_b64encode(mac[:18]).decode()
            if hmac.compare_digest(expected, mac_text):
                return session_id
        return None

    def csrf_token(self, bound_to: str) -> str:
        """A CSRF token bound to the session (OWASP: synchronizer token, HMAC-based)."""
        mac = hmac.new(self._csrf_keys[0], bound_to.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def csrf_valid(self, bound_to: str, token: str) -> bool:
        if not token.isascii():
            return False
        for key in self._csrf_keys:
            mac = hmac.new(key, bound_to.encode(), hashlib.sha256).digest()
            if hmac.compare_digest(base64.urlsafe_b64encode(mac).decode().rstrip("="), token):
                return True
        return False
