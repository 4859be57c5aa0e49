"""Client assertions at the development Entra emulator's token endpoint.

Development only. What Entra checks before it lets a client in with
``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``
(RFC 7523 §3; Learn "certificate credentials" and "workload identity federation"), and
the AADSTS answers it gives (Learn [ERR]):

- a certificate assertion (``iss`` = ``sub`` = the client ID): the certificate named by
  ``x5t#S256`` (or the older ``x5t``) must be uploaded to the app (else 700027, "key was
  not found") and unexpired (700027, "key used is expired"); the RS256/PS256 signature
  must verify against it (700027); ``aud`` must be the tenant's token endpoint; the
  assertion must be within ``nbf``..``exp`` (700024).
- a federated token (any other issuer): a federated credential of the app must match its
  issuer (700211), subject (700213) and audience (700212) exactly, or 70021 when the app
  has none; its signature must verify against the issuer's published keys (found through
  the issuer's OpenID discovery, as Entra does for a Kubernetes cluster), and it must be
  within its validity (700024).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from sidecar.dev import entra_errors as err
from sidecar.dev.entra_model import EmulatedApp, EmulatedTenant, form_str, origin_of
from sidecar.dev.entra_signing import b64url

if TYPE_CHECKING:
    from sidecar.dev.entra import EntraEmulator

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The audience Entra proposes for a new federated credential (Learn, workload identity).
DEFAULT_FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
# Clock skew Entra tolerates on a client assertion's nbf.
_SKEW = 300
_SIGNING_ALGS = ("RS256", "PS256")


@dataclass
class FederatedCredential:
    """A federated identity credential on the app (Certificates & secrets → Federated
    credentials): the external issuer, the subject and the audience it trusts."""

    issuer: str
    subject: str
    audiences: list[str] = field(default_factory=lambda: [DEFAULT_FEDERATED_AUDIENCE])
    name: str = "kubernetes"


@dataclass
class _Jwt:
    header: dict[str, Any]
    claims: dict[str, Any]
    raw: str


async def assertion_auth(
    emu: EntraEmulator, request: web.Request, form: Mapping[str, object], tenant: EmulatedTenant
) -> EmulatedApp:
    """The app the assertion authenticates, or an EntraError as Entra would answer."""
    if form_str(form, "client_secret") is not None or "Authorization" in request.headers:
        # RFC 6749 §2.3: one client authentication method per request.
        raise err.EntraError(400, "invalid_request", 9002313, err.MSG_MALFORMED)
    if form_str(form, "client_assertion_type") != ASSERTION_TYPE:
        message = "The client_assertion_type is not supported."
        raise err.EntraError(400, "invalid_request", 9002313, message)
    raw = form_str(form, "client_assertion") or ""
    token = _parse(raw)
    client_id = form_str(form, "client_id") or _str(token.claims.get("sub"))
    if not client_id:
        raise err.EntraError(400, "invalid_request", 900144, err.missing("client_id"))
    app = tenant.app(client_id)
    if app is None:
        raise err.EntraError(400, "unauthorized_client", 700016, err.msg_700016(client_id, tenant))
    now = emu.clock()
    if _str(token.claims.get("iss")).lower() == app.client_id.lower():
        _check_certificate_assertion(request, tenant, app, token, now)
    else:
        await _check_federated_token(emu, app, token, now)
    return app


def _parse(raw: str) -> _Jwt:
    parts = raw.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not a compact JWS")
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("not JSON objects")
    except (ValueError, binascii.Error):
        raise err.EntraError(401, "invalid_client", 50027, _MSG_50027) from None
    return _Jwt(header, claims, raw)


def _check_certificate_assertion(
    request: web.Request, tenant: EmulatedTenant, app: EmulatedApp, token: _Jwt, now: float
) -> None:
    if _str(token.claims.get("sub")).lower() != app.client_id.lower():
        message = "The client assertion's sub claim must be the client ID, as its iss is."
        raise err.EntraError(401, "invalid_client", 50027, message)
    alg = token.header.get("alg")
    if alg not in _SIGNING_ALGS:
        message = f"Invalid JWT token. '{alg}' is not a supported signature algorithm."
        raise err.EntraError(401, "invalid_client", 5002738, message)
    by_sha256 = _str(token.header.get("x5t#S256"))
    by_sha1 = _str(token.header.get("x5t"))
    presented = by_sha256 or by_sha1
    certificate = next(
        (
            c
            for c in app.certificates
            if (by_sha256 and by_sha256 == _thumbprint(c, hashes.SHA256()))
            or (not by_sha256 and by_sha1 and by_sha1 == _thumbprint(c, hashes.SHA1()))
        ),
        None,
    )
    if certificate is None:
        raise err.EntraError(401, "invalid_client", 700027, _msg_700027_not_found(presented, app))
    if certificate.not_valid_after_utc.timestamp() <= now:
        raise err.EntraError(
            401, "invalid_client", 700027, _msg_700027_expired(presented, certificate)
        )
    key = RSAKey.import_key(certificate.public_key())  # type: ignore[arg-type]
    try:
        jws.deserialize_compact(token.raw, key, algorithms=list(_SIGNING_ALGS))
    except (JoseError, ValueError):
        message = (
            "Client assertion contains an invalid signature. [Reason - The provided signature "
            f"value did not match the expected signature value., Thumbprint of key used by "
            f"client: '{presented}']"
        )
        raise err.EntraError(401, "invalid_client", 700027, message) from None
    # RFC 7523 §3 item 3: the audience is the token endpoint (either tenant form of it).
    accepted = {
        f"{origin_of(request)}/{ref}/oauth2/v2.0/token"
        for ref in (tenant.tenant_id, *tenant.domains)
    }
    audience = token.claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if not any(isinstance(a, str) and a in accepted for a in audiences):
        message = (
            f"The audience claim value is invalid '{audience}'. The audience must be the token "
            "endpoint of the tenant."
        )
        raise err.EntraError(401, "invalid_client", 700023, message)
    if not _str(token.claims.get("jti")):
        message = "The client assertion has no jti claim."
        raise err.EntraError(401, "invalid_client", 50027, message)
    _check_times(token, now)


async def _check_federated_token(
    emu: EntraEmulator, app: EmulatedApp, token: _Jwt, now: float
) -> None:
    issuer = _str(token.claims.get("iss"))
    subject = _str(token.claims.get("sub"))
    audience = token.claims.get("aud")
    audiences = [a for a in (audience if isinstance(audience, list) else [audience]) if a]
    shown = ", ".join(str(a) for a in audiences)
    credentials = app.federated_credentials
    if not credentials:
        # [obs: Azure/azure-workload-identity #616] 70021 comes as HTTP 400 invalid_request.
        message = (
            "No matching federated identity record found for presented assertion. Assertion "
            f"Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{shown}'. "
            f"{_FEDERATION_DOCS}"
        )
        raise err.EntraError(400, "invalid_request", 70021, message)
    with_issuer = [c for c in credentials if c.issuer == issuer]
    if not with_issuer:
        raise _no_match(700211, "issuer", issuer)
    with_subject = [c for c in with_issuer if c.subject == subject]
    if not with_subject:
        raise _no_match(700213, "subject", subject)
    if not any(a in c.audiences for c in with_subject for a in audiences):
        raise _no_match(700212, "audience", shown)
    keys = await _issuer_keys(emu, issuer)
    try:
        jws.deserialize_compact(token.raw, keys, algorithms=["RS256", "PS256", "ES256"])
    except (JoseError, ValueError):
        raise err.EntraError(401, "invalid_client", 50027, _MSG_50027) from None
    _check_times(token, now)


_FEDERATION_DOCS = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"


def _no_match(code: int, part: str, value: str) -> err.EntraError:
    # [obs: Azure/azure-workload-identity #1200, microsoft/Agents #202] the per-part
    # refusals come as HTTP 401 invalid_client.
    message = (
        f"No matching federated identity record found for presented assertion {part} "
        f"'{value}'. Check your federated identity credential Subject, Audience and Issuer "
        f"against the presented assertion. {_FEDERATION_DOCS}"
    )
    return err.EntraError(401, "invalid_client", code, message)


async def _issuer_keys(emu: EntraEmulator, issuer: str) -> KeySet:
    """The issuer's signing keys, found through its OpenID discovery document, as Entra
    finds a Kubernetes cluster's service-account token keys."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            discovery = issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with http.get(discovery) as response:
                response.raise_for_status()
                document = await response.json(content_type=None)
            async with http.get(document["jwks_uri"]) as response:
                response.raise_for_status()
                jwks = await response.json(content_type=None)
        return KeySet.import_key_set(jwks)
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError, JoseError):
        message = (
            f"Unable to retrieve the signing keys of the issuer '{issuer}' of the presented "
            "assertion: its OpenID discovery document must be public."
        )
        raise err.EntraError(401, "invalid_client", 50027, message) from None


def _check_times(token: _Jwt, now: float) -> None:
    nbf = _seconds(token.claims.get("nbf", token.claims.get("iat")))
    exp = _seconds(token.claims.get("exp"))
    if nbf is None or exp is None or not nbf - _SKEW <= now < exp:
        message = (
            f"Client assertion is not within its valid time range. Current time: "
            f"{_iso(now)}, assertion valid from {_iso(nbf)}, expiry time of assertion "
            f"{_iso(exp)}. Review the documentation at "
            "https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
        )
        raise err.EntraError(401, "invalid_client", 700024, message)


_MSG_50027 = "JWT token is invalid or malformed."


def _msg_700027_not_found(presented: str, app: EmulatedApp) -> str:
    return (
        "The certificate with identifier used to sign the client assertion is not registered "
        f"on application. [Reason - The key was not found., Thumbprint of key used by client: "
        f"'{presented}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph "
        f"to see configured keys for app Id '{app.client_id}'. Review the documentation at "
        "https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding "
        "service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view="
        "graph-rest-1.0&tabs=http to build a query request URL, such as "
        f"'https://graph.microsoft.com/beta/applications/{app.client_id}']"
    )


def _msg_700027_expired(presented: str, certificate: x509.Certificate) -> str:
    return (
        "Client assertion contains an invalid signature. [Reason - The key used is expired., "
        f"Thumbprint of key used by client: '{presented}', Found key 'Start="
        f"{_iso(certificate.not_valid_before_utc.timestamp())}, End="
        f"{_iso(certificate.not_valid_after_utc.timestamp())}']"
    )


def _thumbprint(certificate: x509.Certificate, algorithm: hashes.HashAlgorithm) -> str:
    return b64url(certificate.fingerprint(algorithm))


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _seconds(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _iso(value: float | None) -> str:
    if value is None:
        return "(none)"
    return datetime.fromtimestamp(value, UTC).strftime("%m/%d/%Y %H:%M:%S")
