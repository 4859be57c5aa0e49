"""What an AADSTS code means and what the customer's Entra admin does about it.

One table for every front end: the sign-in routes write the explanation into their
log lines (``hint``), ``check-entra`` prints it, so an operator reads the same words
for the same code wherever it turned up.

Learn [ERR] "Policy": the numbers are for admins only. Nothing here decides what the
sidecar does; the callers branch on the OAuth ``error`` and only explain with this.
The texts are our own words (never Entra's ``error_description``, which can quote
request parameters), filled in with the tenant, the client ID and the authority the
config gives, nothing a secret.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FEDERATED_MISMATCH", "AadstsAdvice", "explain_aadsts"]


@dataclass(frozen=True, slots=True)
class AadstsAdvice:
    """``meaning``: what Entra refused; ``action``: what the customer's admin does."""

    meaning: str
    action: str

    def sentence(self, reference: str = "") -> str:
        """``meaning (reference): action``; ``reference`` names the code for support."""
        return f"{self.meaning}{reference}: {self.action}"


_FEDERATED_ACTION = (
    "under Certificates & secrets → Federated credentials of app {client_id}, the issuer, "
    "subject and audience must equal the token's exactly"
)
_SIGN_IN_AGAIN = "nothing to change in Entra: the user signs in again"

# entra-reference §5, §7 and Learn [ERR]; {tenant}, {client_id} and {authority} are the
# tenant's sso settings.
_TABLE: dict[int, AadstsAdvice] = {
    # The tenant and the app registration.
    90002: AadstsAdvice(
        "tenant {tenant} not found",
        "check the primary domain or tenant ID (and the cloud/authority, {authority})",
    ),
    90038: AadstsAdvice(
        "tenant {tenant} belongs to another national cloud",
        "set sso.authority to that cloud's login host (now {authority})",
    ),
    700016: AadstsAdvice(
        "application (client) ID {client_id} not found in tenant {tenant}",
        "check the client ID, and that the app is registered in this tenant",
    ),
    50011: AadstsAdvice(
        "the redirect URI is not registered on app {client_id}",
        "register the URIs `check-config` prints, exactly, under Authentication → Web",
    ),
    # Users and consent.
    50105: AadstsAdvice(
        "the user is not assigned to app {client_id}",
        "assign the user or a group under Enterprise applications → Users and groups",
    ),
    65001: AadstsAdvice(
        "nobody has consented to the permissions of app {client_id}",
        "grant admin consent under API permissions → Grant admin consent (openid, profile, email)",
    ),
    65004: AadstsAdvice(
        "the user declined to consent",
        "the user signs in again and accepts, or an admin grants consent under "
        "API permissions → Grant admin consent",
    ),
    90094: AadstsAdvice(
        "only an admin may consent to the permissions of app {client_id}",
        "an admin grants consent under API permissions → Grant admin consent, or approves "
        "the user's admin-consent request",
    ),
    # The client secret.
    7000215: AadstsAdvice(
        "invalid client secret",
        "you may have sent the secret's ID instead of its Value (Certificates & secrets → "
        "the Value column, shown only once)",
    ),
    7000222: AadstsAdvice(
        "the client secret has expired",
        "create a new secret and add it to client_secret (list form, newest first) before "
        "removing the old",
    ),
    # The client assertion: a certificate or a federated token (contract: Client credentials).
    700027: AadstsAdvice(
        "Entra does not know the certificate that signed the client assertion",
        "upload the certificate (the .crt/.pem, public part only) under Certificates & "
        "secrets → Certificates of app {client_id}; a certificate removed or expired in "
        "Entra gives this too",
    ),
    700024: AadstsAdvice(
        "the client assertion is outside its validity time",
        "check this host's clock (NTP); for a federated token, that the token file is being "
        "refreshed (kubelet rewrites it; a copied token expires)",
    ),
    70021: AadstsAdvice("no federated credential on the app matches this token", _FEDERATED_ACTION),
    700211: AadstsAdvice(
        "no federated credential on the app has this token's issuer", _FEDERATED_ACTION
    ),
    700212: AadstsAdvice(
        "no federated credential on the app has this token's audience", _FEDERATED_ACTION
    ),
    700213: AadstsAdvice(
        "no federated credential on the app has this token's subject", _FEDERATED_ACTION
    ),
    # The authorization code of one sign-in.
    54005: AadstsAdvice("the authorization code was already redeemed", _SIGN_IN_AGAIN),
    70008: AadstsAdvice("the authorization code has expired", _SIGN_IN_AGAIN),
}

FEDERATED_MISMATCH = frozenset({70021, 700211, 700212, 700213})
"""The refusals whose explanation the token's own issuer, subject and audience complete."""

# Entra answers these `error` values without a code in some flows; they mean the same.
_CODE_OF_ERROR = {"invalid_tenant": 90002, "unauthorized_client": 700016}


def explain_aadsts(
    code: int | None, error: str, *, tenant: str, client_id: str, authority: str
) -> AadstsAdvice | None:
    """The advice for an Entra refusal by its AADSTS ``code`` (else its OAuth ``error``),
    filled in with the tenant's settings; None for a refusal the table does not know."""
    advice = _TABLE.get(code) if code is not None else None
    if advice is None:
        fallback = _CODE_OF_ERROR.get(error)
        advice = _TABLE.get(fallback) if fallback is not None else None
    if advice is None:
        return None
    settings = {"tenant": tenant, "client_id": client_id, "authority": authority}
    return AadstsAdvice(advice.meaning.format(**settings), advice.action.format(**settings))
