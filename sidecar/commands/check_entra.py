"""``ticketlog-sso check-entra``: check each SSO tenant's details live against Entra.

What support does when a customer sends their application (client) ID, secret value and
tenant primary domain (seed: "Pass details to TicketLog"):

1. discovery: the tenant resolves under the configured authority (cloud);
2. a client-credentials token request (RFC 6749 §4.4) proves the client ID and the secret.

Every failure is explained in words an Entra admin acts on, keyed by the AADSTS code
(entra-reference §5, §7). The AADSTS number is used here for admin-facing text only, never
for control flow of the sidecar (Learn [ERR] "Policy").

SECURITY: no line ever carries a client secret. Messages are built from our own wording, the
OAuth ``error`` value, the AADSTS number and the correlation ID; Entra's free-text
``error_description`` (which can quote request parameters) is never printed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TextIO
from urllib.parse import urlsplit

import aiohttp

from sidecar.config.model import Config, SsoConfig, normalize_host
from sidecar.oidc.discovery import is_custom_domain
from sidecar.oidc.errors import InvalidDiscovery, OidcError, ProviderRejected, ProviderUnavailable
from sidecar.oidc.provider import EntraProvider
from sidecar.runtime import make_idp_session

__all__ = ["check_entra", "graph_default_scope"]

_Say = Callable[[str], None]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2

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

    secrets = [s.get_secret_value() for s in sso.client_secret]
    try:
        provider = _provider(sso, secrets, http)
    except ValueError as exc:
        # The config model validates these already; a provider refusing them is still a
        # failure of this tenant, not a crash of the whole check.
        say(f"FAILED: cannot check: {exc}")
        return False
    try:
        return await _check_provider(provider, sso, secrets, http, say)
    finally:
        await provider.aclose()


def _provider(sso: SsoConfig, secrets: Sequence[str], http: aiohttp.ClientSession) -> EntraProvider:
    return EntraProvider(
        authority=sso.authority,
        tenant=sso.tenant,
        client_id=sso.client_id,
        client_secrets=secrets,
        http=http,
    )


async def _check_provider(
    provider: EntraProvider,
    sso: SsoConfig,
    secrets: Sequence[str],
    http: aiohttp.ClientSession,
    say: _Say,
) -> bool:
    # (a) discovery: the tenant resolves.
    try:
        metadata = await provider.metadata()
    except OidcError as exc:
        say(f"FAILED: {_explain(exc, provider)}")
        say("client ID and secret not checked (the tenant must resolve first)")
        return False
    say(f"tenant {provider.tenant} resolves (tenant ID {metadata.tenant_id})")
    if not is_custom_domain(provider.tenant):
        say(
            f"note: tenant is given as {_tenant_form(provider.tenant)}; the customer's custom "
            "primary domain is better (it lets Entra skip home-realm discovery at sign-in)"
        )

    # (b) client credentials: the client ID and one of the secrets.
    scope = graph_default_scope(provider.authority)
    total = len(secrets)
    try:
        index = await provider.check_client_credentials(scope)
    except OidcError as exc:
        if isinstance(exc, ProviderRejected) and exc.error == "invalid_client" and total > 1:
            # The provider tried every secret and raised the last refusal: find out why each
            # one was refused, so the admin knows which to replace.
            say(f"FAILED: none of the {total} client secrets is accepted")
            for number in range(1, total):
                reason = await _diagnose_secret(sso, secrets[number - 1], http, provider)
                say(f"  secret {number} of {total}: {reason}")
            say(f"  secret {total} of {total}: {_explain(exc, provider)}")
        else:
            say(f"FAILED: {_explain(exc, provider)}")
        return False

    say(f"client ID and secret accepted (secret {index + 1} of {total})")
    if index > 0:
        # Newest first: the newer entries were refused and sign-in depends on an older one.
        for number in range(1, index + 1):
            reason = await _diagnose_secret(sso, secrets[number - 1], http, provider)
            say(f"warning: secret {number} of {total} (newer) refused: {reason}")
        say(
            f"warning: sign-in works only with secret {index + 1} of {total}; fix or remove the "
            "refused newer secret(s) in client_secret before the working one expires"
        )
    elif total > 1:
        older = "2" if total == 2 else f"2 to {total}"
        say(
            f"note: the newest secret works; once every replica runs with it, secret {older} "
            "of the list can be removed from client_secret and deleted in Entra"
        )
    return True


async def _diagnose_secret(
    sso: SsoConfig, secret: str, http: aiohttp.ClientSession, main: EntraProvider
) -> str:
    """Why Entra refuses this one secret (a client-credentials request with it alone)."""
    provider = _provider(sso, [secret], http)
    try:
        await provider.check_client_credentials(graph_default_scope(provider.authority))
    except OidcError as exc:
        return _explain(exc, main)
    finally:
        await provider.aclose()
    return "accepted when tried alone (a transient refusal): run the check again"


def _explain(exc: OidcError, provider: EntraProvider) -> str:
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
    code = exc.aadsts
    ref = _reference(exc)
    if code == 90002 or exc.error == "invalid_tenant":
        return (
            f"tenant {tenant} not found{ref}: check the primary domain or tenant ID "
            f"(and the cloud/authority, {authority})"
        )
    if code == 90038:
        return (
            f"tenant {tenant} belongs to another national cloud{ref}: set sso.authority to "
            f"that cloud's login host (now {authority})"
        )
    if code == 700016 or exc.error == "unauthorized_client":
        return (
            f"application (client) ID {provider.client_id} not found in tenant {tenant}{ref}: "
            "check the client ID, and that the app is registered in this tenant"
        )
    if code == 7000215:
        return (
            f"invalid client secret{ref}: you may have sent the secret's ID instead of its "
            "Value (Certificates & secrets → the Value column, shown only once)"
        )
    if code == 7000222:
        return (
            f"the client secret has expired{ref}: create a new secret and add it to "
            "client_secret (list form, newest first) before removing the old"
        )
    if exc.error == "invalid_client":
        return (
            f"client authentication refused{ref}: check the client secret Value under "
            "Certificates & secrets"
        )
    return f"Entra refused the {exc.endpoint} request: {exc.error}{ref}"


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
