"""Self-signed client certificates for development: what a customer makes with
``openssl req -x509`` before uploading the public part to the app registration.

Development only (the demo and the tests).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class DevCertificate:
    certificate: x509.Certificate
    certificate_pem: str
    private_key_pem: str


def self_signed(
    common_name: str = "TicketLog SSO",
    *,
    days: float = 365,
    starts: dt.datetime | None = None,
    key: rsa.RSAPrivateKey | None = None,
) -> DevCertificate:
    """An RSA 2048 certificate valid from ``starts`` (default: now) for ``days``."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = starts or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return DevCertificate(
        certificate=certificate,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )
