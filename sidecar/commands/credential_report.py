"""What `check-config` says about each SSO tenant's client credential.

For a certificate: the thumbprints the customer's Entra admin compares with the app's
Certificates list, and the expiry, with a warning 30 days ahead (contract: Client
credentials). For a federated token file: the issuer, subject and audience the token in
it states, which the app's federated credential must match. Never a secret, a key or a
token.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sidecar.config.model import SsoConfig
from sidecar.oidc.credentials import (
    EXPIRY_WARNING_DAYS,
    FederatedTokenUnreadable,
    peek_token_claims,
    read_token,
)

__all__ = ["credential_lines"]


def credential_lines(sso: SsoConfig, *, now: float) -> tuple[list[str], list[str]]:
    """(lines describing the credential, warnings) for one SSO tenant."""
    if sso.client_certificate:
        return _certificates(sso, now)
    if sso.federated_token_file is not None:
        return _federated(sso.federated_token_file)
    count = len(sso.client_secret)
    rotation = f" ({count}, newest first)" if count > 1 else ""
    return [f"Credential: client secret{rotation}; a certificate is recommended instead"], []


def _certificates(sso: SsoConfig, now: float) -> tuple[list[str], list[str]]:
    certificates = sso.certificates
    total = len(certificates)
    lines = ["Credential: client certificate (upload each to the app: Certificates & secrets)"]
    warnings = []
    for number, certificate in enumerate(certificates, start=1):
        days = certificate.days_left(now)
        lines.append(
            f"  certificate {number} of {total}: SHA-256 thumbprint "
            f"{certificate.sha256_thumbprint}, SHA-1 thumbprint {certificate.sha1_thumbprint}, "
            f"expires {_day(certificate.not_after)} (in {int(days)} days)"
        )
        if days < EXPIRY_WARNING_DAYS:
            warnings.append(
                f"certificate {number} of {total} (SHA-1 thumbprint "
                f"{certificate.sha1_thumbprint}) expires in {int(days)} days, on "
                f"{_day(certificate.not_after)}: make a new one, upload it to the app and put "
                "it first in client_certificate"
            )
        if certificate.not_before.timestamp() > now:
            warnings.append(
                f"certificate {number} of {total} is not valid before "
                f"{_day(certificate.not_before)}: Entra refuses assertions it signs until then"
            )
    return lines, warnings


def _federated(path: str) -> tuple[list[str], list[str]]:
    lines = [f"Credential: federated token file {path} (read at each token request)"]
    try:
        claims = peek_token_claims(read_token(path))
    except FederatedTokenUnreadable as exc:
        # Not an error: on a workstation the pod's projected token is not there.
        return lines, [f"the federated token file cannot be read here: {exc.reason}"]
    if claims is None:
        return lines, [f"{path} does not hold a JWT (a projected service-account token)"]
    lines.append(
        "  the app's federated credential must match: issuer "
        f"{claims.iss or '(none)'}, subject {claims.sub or '(none)'}, audience "
        f"{', '.join(claims.aud) or '(none)'}"
    )
    return lines, []


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
