"""``ticketlog-sso check-entra``: check each SSO tenant's details live against Entra.

What support does when a customer sends their application (client) ID, credential and
tenant primary domain (seed: "Pass details to TicketLog"):

1. discovery: the tenant resolves under the configured authority (cloud);
2. a client-credentials token request (RFC 6749 §4.4) proves the client ID and the
   credential: a secret, a certificate (client assertion) or a federated token.

Every failure is explained in words an Entra admin acts on, keyed by the AADSTS code: the
table of ``sidecar.oidc.aadsts``, which sign-in's log lines use too. The AADSTS number is
used here for admin-facing text only, never for control flow (Learn [ERR] "Policy").

SECURITY: no line ever carries a client secret, a private key or a token (of a federated
token only its issuer, subject and audience are shown). Messages are built from our own wording, the
OAuth ``error`` value, the AADSTS number and the correlation ID; Entra's free-text
``error_description`` (which can quote request parameters) is never printed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO
from urllib.parse import urlsplit

import aiohttp

from sidecar.commands.exit_codes import EXIT_FAILED, EXIT_INVALID, EXIT_OK
from sidecar.config.model import Config, SsoConfig, normalize_host
from sidecar.oidc.aadsts import FEDERATED_MISMATCH, explain_aadsts
from sidecar.oidc.credentials import (
    ClientCertificates,
    ClientCredential,
    FederatedToken,
    FederatedTokenUnreadable,
    peek_token_claims,
)
from sidecar.oidc.discovery import is_custom_domain
from sidecar.oidc.errors import InvalidDiscovery, OidcError, ProviderRejected, ProviderUnavailable
from sidecar.oidc.provider import EntraProvider
from sidecar.runtime import client_credential, make_idp_session

__all__ = ["check_entra", "graph_default_scope"]

_Say = Callable[[str], None]

_GRAPH_GLOBAL = "https://graph.microsoft.com/.default"
# entra-reference §1 "National clouds": each cloud has its own Graph. A client-credentials
# request for another cloud's resource would fail for a reason that says nothing about the
# client ID or secret.
_GRAPH_BY_LOGIN_HOST = {
    "login.microsoftonline.us": "https://graph.microsoft.us/.default",
    "login.partner.microsoftonline.cn": "https://microsoftgraph.chinacloudapi.cn/.default",
    "login.chinacloudapi.cn": "https://microsoftgraph.chinacloudapi.cn/.default",
}


def graph_default_scope(authority: str) -> str:
    """The app-only scope of the authority's cloud (the global Graph for anything else)."""
    host = (urlsplit(authority).hostname or "").lower()
    return _GRAPH_BY_LOGIN_HOST.get(host, _GRAPH_GLOBAL)


async def check_entra(config: Config, *, host: str | None, out: TextIO) -> int:
    """Check every SSO tenant (or only ``host``); 0 all good, 1 a tenant failed, 2 unknown host."""
    tenants = config.tenants
    if host is not None:
        wanted = normalize_host(host)
        tenants = tuple(t for t in config.tenants if t.host == wanted)
        if not tenants:
            known = ", ".join(t.host for t in config.tenants)
            print(f"{host}: not a tenant host in this config (tenants: {known})", file=out)
            return EXIT_INVALID

    checked = failed = 0
    async with make_idp_session() as http:
        for tenant in tenants:
            if tenant.sso is None:
                print(f"{tenant.host}: no sso block, nothing to check", file=out)
                continue
            checked += 1
            if not await _check_tenant(tenant.host, tenant.sso, http, out):
                failed += 1
    if checked > 1:
        if failed:
            print(f"{failed} of {checked} SSO tenants failed", file=out)
        else:
            print(f"all {checked} SSO tenants OK", file=out)
    return EXIT_FAILED if failed else EXIT_OK


async def _check_tenant(
    host: str, sso: SsoConfig, http: aiohttp.ClientSession, out: TextIO
) -> bool:
    def say(text: str) -> None:
        print(f"{host}: {text}", file=out)

    try:
        credential = client_credential(sso)
        provider = _provider(sso, credential, http)
    except ValueError as exc:
        # The config model validates these already; a provider refusing them is still a
        # failure of this tenant, not a crash of the whole check.
        say(f"FAILED: cannot check: {exc}")
        return False
    try:
        return await _check_provider(provider, sso, http, say)
    finally:
        await provider.aclose()


def _provider(
    sso: SsoConfig, credential: ClientCredential, http: aiohttp.ClientSession
) -> EntraProvider:
    return EntraProvider(
        authority=sso.authority,
        tenant=sso.tenant,
        client_id=sso.client_id,
        credential=credential,
        http=http,
    )


# What the check proves, and how the credential is named in its lines, per kind.
_PROVES = {
    "secret": "client ID and secret",
    "certificate": "client ID and certificate",
    "federated": "client ID and federated token",
}
_PLURAL = {"secret": "client secrets", "certificate": "client certificates"}
_SETTING = {"secret": "client_secret", "certificate": "client_certificate"}


async def _check_provider(
    provider: EntraProvider,
    sso: SsoConfig,
    http: aiohttp.ClientSession,
    say: _Say,
) -> bool:
    credential = provider.credential
    proves = _PROVES[credential.kind]
    # (a) discovery: the tenant resolves.
    try:
        metadata = await provider.metadata()
    except OidcError as exc:
        say(f"FAILED: {await _explain(exc, provider)}")
        say(f"{proves} not checked (the tenant must resolve first)")
        return False
    say(f"tenant {provider.tenant} resolves (tenant ID {metadata.tenant_id})")
    if not is_custom_domain(provider.tenant):
        say(
            f"note: tenant is given as {_tenant_form(provider.tenant)}; the customer's custom "
            "primary domain is better (it lets Entra skip home-realm discovery at sign-in)"
        )

    # (b) client credentials: the client ID and one of the credentials.
    scope = graph_default_scope(provider.authority)
    total = credential.count
    try:
        index = await provider.check_client_credentials(scope)
    except FederatedTokenUnreadable as exc:
        say(
            f"FAILED: {exc}: check federated_token_file (or $AZURE_FEDERATED_TOKEN_FILE) and "
            "the projected service-account token volume of the pod"
        )
        return False
    except OidcError as exc:
        if isinstance(exc, ProviderRejected) and exc.error == "invalid_client" and total > 1:
            # The provider tried every entry and raised the last refusal: find out why each
            # one was refused, so the admin knows which to replace.
            say(f"FAILED: none of the {total} {_PLURAL[credential.kind]} is accepted")
            for number in range(1, total):
                reason = await _diagnose(sso, credential.only(number - 1), http, provider)
                say(f"  {credential.label(number - 1)}: {reason}")
            say(f"  {credential.label(total - 1)}: {await _explain(exc, provider)}")
        else:
            say(f"FAILED: {await _explain(exc, provider)}")
        return False

    say(f"{proves} accepted ({credential.label(index)})")
    if index > 0:
        # Newest first: the newer entries were refused and sign-in depends on an older one.
        for number in range(1, index + 1):
            reason = await _diagnose(sso, credential.only(number - 1), http, provider)
            say(f"warning: {credential.label(number - 1)} (newer) refused: {reason}")
        noun = credential.kind
        say(
            f"warning: sign-in works only with {noun} {index + 1} of {total}; fix or remove the "
            f"refused newer {noun}(s) in {_SETTING[noun]} before the working one expires"
        )
    elif total > 1:
        older = "2" if total == 2 else f"2 to {total}"
        noun = credential.kind
        say(
            f"note: the newest {noun} works; once every replica runs with it, {noun} {older} "
            f"of the list can be removed from {_SETTING[noun]} and deleted in Entra"
        )
    return True


async def _diagnose(
    sso: SsoConfig, credential: ClientCredential, http: aiohttp.ClientSession, main: EntraProvider
) -> str:
    """Why Entra refuses this one credential (a client-credentials request with it alone)."""
    provider = _provider(sso, credential, http)
    try:
        await provider.check_client_credentials(graph_default_scope(provider.authority))
    except OidcError as exc:
        return await _explain(exc, main)
    finally:
        await provider.aclose()
    return "accepted when tried alone (a transient refusal): run the check again"


async def _explain(exc: OidcError, provider: EntraProvider) -> str:
    """One sentence an Entra admin can act on."""
    tenant = provider.tenant
    authority = provider.authority
    if isinstance(exc, ProviderUnavailable):
        if exc.detail.startswith("HTTP 5"):
            return (
                f"Entra at {authority} failed ({exc.endpoint} endpoint, {exc.detail}): "
                "an outage on Entra's side; try again later"
            )
        return (
            f"cannot reach Entra at {authority} ({exc.endpoint} endpoint: {exc.detail}): check "
            "this host's network, DNS and outbound proxy, and the tenant's sso.authority"
        )
    if isinstance(exc, InvalidDiscovery):
        return (
            f"the discovery document of tenant {tenant} at {authority} is not usable ({exc}): "
            "check sso.authority (it must be the Entra login host of the tenant's cloud)"
        )
    if not isinstance(exc, ProviderRejected):
        return str(exc)
    ref = _reference(exc)
    advice = explain_aadsts(
        exc.aadsts,
        exc.error,
        tenant=tenant,
        client_id=provider.client_id,
        authority=authority,
    )
    if advice is not None:
        return advice.sentence(ref) + await _particulars(exc, provider.credential)
    if exc.error == "invalid_client":
        return (
            f"client authentication refused{ref}: check the client secret Value under "
            "Certificates & secrets"
        )
    return f"Entra refused the {exc.endpoint} request: {exc.error}{ref}"


async def _particulars(exc: ProviderRejected, credential: ClientCredential) -> str:
    """What this host can add to the table's advice: the thumbprints of the certificates it
    signs with, or the claims of the federated token it sends, to compare with Entra's."""
    if exc.aadsts == 700027 and isinstance(credential, ClientCertificates):
        prints = ", ".join(c.sha1_thumbprint for c in credential.certificates)
        return f"; compare the thumbprints listed there with ours (SHA-1 {prints})"
    if exc.aadsts in FEDERATED_MISMATCH:
        return f": {await _federated_claims(credential)}"
    return ""


async def _federated_claims(credential: ClientCredential) -> str:
    """``issuer ..., subject ..., audience ...`` of the token the file holds now."""
    if not isinstance(credential, FederatedToken):
        return "(no federated token is configured for this tenant)"
    try:
        claims = peek_token_claims(await credential.read())
    except FederatedTokenUnreadable as exc:
        return f"(the token cannot be read now: {exc.reason})"
    if claims is None:
        return f"(the file {credential.path} does not hold a JWT)"
    audience = ", ".join(claims.aud) or "(none)"
    return (
        f"the token in {credential.path} has issuer (iss) {claims.iss or '(none)'}, "
        f"subject (sub) {claims.sub or '(none)'}, audience (aud) {audience}"
    )


def _reference(exc: ProviderRejected) -> str:
    """`` (AADSTS7000215, correlation ID ...)``: what Microsoft support asks for."""
    parts = []
    if exc.aadsts is not None:
        parts.append(f"AADSTS{exc.aadsts}")
    if exc.correlation_id:
        parts.append(f"correlation ID {exc.correlation_id}")
    return f" ({', '.join(parts)})" if parts else ""


def _tenant_form(tenant: str) -> str:
    return "the initial *.onmicrosoft domain" if "." in tenant else "a tenant ID (GUID)"
