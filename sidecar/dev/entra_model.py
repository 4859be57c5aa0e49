"""Data model and small helpers of the development Entra emulator.

Development only. The public dataclasses are re-exported by ``sidecar.dev.entra``; the
``SignIn``/``CodeGrant``/``AccessTokenRecord`` records are the emulator's internal state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web
from cryptography import x509

from sidecar.dev.entra_signing import b64url

if TYPE_CHECKING:
    from sidecar.dev.entra_assertions import FederatedCredential

# entra-reference §1: the multi-tenant aliases publish the `{tenantid}` template issuer.
MULTI_TENANT_SEGMENTS = ("common", "organizations")
ID_TOKEN_LIFETIME = 3600  # entra-reference §3: default ID token lifetime 1 h
ACCESS_TOKEN_LIFETIME = 3599  # [obs] Entra answers expires_in 3599
NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


@dataclass
class EmulatedUser:
    key: str  # short handle, e.g. "alice"
    oid: str  # GUID
    name: str
    given_name: str | None
    family_name: str | None
    email: str | None  # None = the Email property is not set: no email claim at all
    email_verified_domain: bool = True  # becomes xms_edov (only emitted with an email)
    preferred_username: str = ""  # UPN-like; "" = derived as key@first-domain
    assigned: bool = True  # False -> AADSTS50105 on sign-in
    declines_consent: bool = False  # True -> access_denied AADSTS65004
    mfa_required: bool = False  # True -> prompt=none answers interaction_required 50076
    # App roles assigned to the user (directly or through a group): the ID token's `roles`
    # claim. None or empty: no claim at all, as Entra omits it.
    roles: list[str] | None = None


@dataclass
class EmulatedApp:
    client_id: str  # GUID
    secrets: dict[str, float | None]  # secret VALUE -> expiry unix time (None = never)
    redirect_uris: list[str]  # exact match required (else the AADSTS50011 page)
    logout_url: str | None = None  # front-channel logout URL
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    display_name: str = "TicketLog"
    # Certificates & secrets → Certificates: what client assertions are verified against.
    certificates: list[x509.Certificate] = field(default_factory=list)
    # Certificates & secrets → Federated credentials (entra_assertions.FederatedCredential).
    federated_credentials: list[FederatedCredential] = field(default_factory=list)


@dataclass
class EmulatedTenant:
    tenant_id: str  # GUID
    domains: list[str]  # e.g. ["contoso.test", "contoso.onmicrosoft.com"]
    apps: list[EmulatedApp]
    users: list[EmulatedUser]

    def app(self, client_id: str) -> EmulatedApp | None:
        return next((a for a in self.apps if a.client_id.lower() == client_id.lower()), None)

    def user(self, key: str) -> EmulatedUser | None:
        return next((u for u in self.users if u.key == key), None)

    def upn(self, user: EmulatedUser) -> str:
        """``preferred_username``: the configured one, else ``key@first-domain``."""
        if user.preferred_username:
            return user.preferred_username
        return f"{user.key}@{self.domains[0]}" if self.domains else user.key

    @property
    def label(self) -> str:
        return self.domains[0] if self.domains else self.tenant_id


@dataclass
class SignIn:
    """One Entra sign-in session of one browser in one tenant."""

    tenant_id: str
    user_key: str
    sid: str  # the ID token `sid` claim and the front-channel `?sid=` (entra-reference §6)
    session_state: str
    client_ids: list[str] = field(default_factory=list)  # apps signed in to, in order


@dataclass
class CodeGrant:
    """What an authorization code is bound to (entra-reference §3 and §5 checks)."""

    tenant_id: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str
    user_key: str
    sid: str
    expires_at: float
    redeemed: bool = False


@dataclass
class AccessTokenRecord:
    tenant_id: str
    client_id: str
    user_key: str | None  # None for client_credentials
    expires_at: float


def origin_of(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def issuer_for(origin: str, tenant_id: str) -> str:
    return f"{origin.rstrip('/')}/{tenant_id}/v2.0"


def template_issuer(origin: str) -> str:
    # entra-reference §1: the literal template of the common/organizations documents.
    return f"{origin.rstrip('/')}/{{tenantid}}/v2.0"


def append_query(url: str, params: list[tuple[str, str]]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def form_str(form: Mapping[str, object], name: str) -> str | None:
    """A text field of a parsed form (file parts are ignored)."""
    value = form.get(name)
    return value if isinstance(value, str) else None


async def request_params(request: web.Request) -> dict[str, str]:
    """Query parameters, overridden by form fields on POST (authorize and logout accept
    both, entra-reference §1). The first of a repeated query parameter wins."""
    params: dict[str, str] = {}
    for name, value in request.query.items():
        params.setdefault(name, value)
    if request.method == "POST":
        for name, field_value in (await request.post()).items():
            if isinstance(field_value, str):
                params[name] = field_value
    return params


def pairwise_sub(client_id: str, oid: str) -> str:
    # entra-reference §3: `sub` is pairwise, different per app for the same user.
    return b64url(hashlib.sha256(f"{client_id.lower()}{oid.lower()}".encode()).digest())[:43]


def encode_hint(tid: str, oid: str, upn: str) -> str:
    # entra-reference §3: login_hint is opaque base64. This one can be decoded again by the
    # emulator's logout (logout_hint, §6) and account picker (login_hint, §2).
    raw = json.dumps({"tid": tid, "oid": oid, "upn": upn}, separators=(",", ":"))
    return "O." + base64.b64encode(raw.encode()).decode("ascii")


def decode_hint(hint: str) -> tuple[str, str] | None:
    """(tid, oid) from a value made by ``encode_hint``; None for anything else."""
    if not hint.startswith("O."):
        return None
    try:
        data = json.loads(base64.b64decode(hint[2:], validate=True))
        return str(data["tid"]), str(data["oid"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
