"""Entra's tenant discovery document (OpenID Connect Discovery 1.0 §3, §4.3).

Parsing is pure: the provider fetches, this module decides whether the document
can be trusted. The rules are entra-reference §1 "Issuer": a tenant-specific
document names a concrete issuer ``{authority}/{tenant GUID}/v2.0`` which ID
tokens must match exactly, and a document fetched through a domain path still
advertises the GUID issuer, which is how a configured domain is resolved to the
GUID that ``tid`` is compared with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import InvalidDiscovery

__all__ = [
    "ProviderMetadata",
    "discovery_url",
    "is_custom_domain",
    "is_guid",
    "normalize_authority",
    "parse_metadata",
    "validate_tenant",
]

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# A DNS name as Entra accepts for a tenant path segment: labels of letters,
# digits and hyphens. Nothing that could change the URL's path or query.
_DOMAIN = re.compile(
    r"(?=.{1,253}\Z)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
# Initial (Microsoft-owned) tenant domains per cloud (entra-reference §1
# "National clouds"): home-realm discovery already knows them, so they are not
# "custom" and get no domain_hint.
_INITIAL_DOMAIN_SUFFIXES = (".onmicrosoft.com", ".onmicrosoft.us", ".partner.onmschina.cn")
# Multi-tenant aliases: their documents carry the "{tenantid}" issuer template
# and Entra refuses them for single-tenant apps (AADSTS50194, entra-reference §1).
_MULTI_TENANT_ALIASES = frozenset({"common", "organizations", "consumers"})


def is_guid(value: str) -> bool:
    return _GUID.fullmatch(value) is not None


def is_custom_domain(tenant: str) -> bool:
    """A verified custom domain (e.g. contoso.com), as opposed to a GUID or initial domain."""
    lowered = tenant.lower()
    return not is_guid(tenant) and not lowered.endswith(_INITIAL_DOMAIN_SUFFIXES)


def validate_tenant(tenant: str) -> str:
    """Return the tenant as a path segment, or raise ValueError for an unusable one."""
    if tenant.lower() in _MULTI_TENANT_ALIASES:
        raise ValueError(
            f"tenant {tenant!r} is a multi-tenant alias; use the tenant's domain or ID"
        )
    if is_guid(tenant) or _DOMAIN.fullmatch(tenant):
        return tenant
    raise ValueError(f"tenant {tenant!r} is neither a tenant ID (GUID) nor a domain name")


def normalize_authority(authority: str) -> str:
    """``https://login.microsoftonline.com/`` -> ``https://login.microsoftonline.com``.

    Raises ValueError unless it is an absolute http(s) URL without query or fragment.
    """
    stripped = authority.rstrip("/")
    parts = urlsplit(stripped)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"authority {authority!r} is not an absolute http(s) URL")
    if parts.query or parts.fragment or "?" in stripped or "#" in stripped:
        raise ValueError(f"authority {authority!r} must not carry a query or fragment")
    if parts.username is not None or parts.password is not None:
        raise ValueError("authority must not carry credentials")
    return stripped


def discovery_url(authority: str, tenant: str) -> str:
    # Learn [OIDC] "Find your app's OpenID configuration document URI".
    base = normalize_authority(authority)
    return f"{base}/{validate_tenant(tenant)}/v2.0/.well-known/openid-configuration"


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    #: The tenant GUID exactly as written in ``issuer`` (what ``tid`` must equal).
    tenant_id: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    #: RFC 9207 §3: when true, the callback must carry ``iss`` equal to ``issuer``.
    authorization_response_iss_parameter_supported: bool
    response_modes_supported: tuple[str, ...]


def parse_metadata(document: object, *, authority: str, tenant: str) -> ProviderMetadata:
    """Validate a discovery document fetched for ``tenant`` under ``authority``."""
    if not isinstance(document, Mapping):
        raise InvalidDiscovery("discovery document is not a JSON object")
    base = normalize_authority(authority)

    issuer = document.get("issuer")
    if not isinstance(issuer, str):
        raise InvalidDiscovery("discovery document has no issuer")
    # SECURITY: exact form {authority}/{GUID}/v2.0, nothing before or after
    # (entra-reference §1, Learn [AT] "Validate the issuer"). A prefix or
    # "startswith" test would accept an issuer under another path of the same
    # host, and the "{tenantid}" template of /common would let any tenant in.
    prefix = base + "/"
    suffix = "/v2.0"
    guid = issuer[len(prefix) : -len(suffix)] if len(issuer) > len(prefix) + len(suffix) else ""
    if not (issuer.startswith(prefix) and issuer.endswith(suffix) and is_guid(guid)):
        raise InvalidDiscovery(
            f"issuer {_short(issuer)!r} is not of the form {base}/<tenant GUID>/v2.0"
        )
    if is_guid(tenant) and guid.lower() != tenant.lower():
        raise InvalidDiscovery(f"issuer tenant {guid} differs from the configured tenant {tenant}")

    # SECURITY: with an https authority every endpoint must be https too, so the
    # token request carrying the client secret cannot be downgraded to cleartext.
    require_https = base.startswith("https:")
    endpoints = {
        name: _endpoint(document, name, require_https=require_https)
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
    }
    end_session = (
        _endpoint(document, "end_session_endpoint", require_https=require_https)
        if document.get("end_session_endpoint") is not None
        else None
    )

    iss_param = document.get("authorization_response_iss_parameter_supported", False)
    if not isinstance(iss_param, bool):
        raise InvalidDiscovery("authorization_response_iss_parameter_supported is not a boolean")

    # OIDC Discovery §3: absent means ["query", "fragment"].
    modes = document.get("response_modes_supported", ["query", "fragment"])
    if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
        raise InvalidDiscovery("response_modes_supported is not a list of strings")

    return ProviderMetadata(
        issuer=issuer,
        tenant_id=guid,
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        jwks_uri=endpoints["jwks_uri"],
        end_session_endpoint=end_session,
        authorization_response_iss_parameter_supported=iss_param,
        response_modes_supported=tuple(modes),
    )


def _endpoint(document: Mapping[str, object], name: str, *, require_https: bool) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidDiscovery(f"discovery document has no {name}")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise InvalidDiscovery(f"{name} {_short(value)!r} is not an absolute http(s) URL")
    if require_https and parts.scheme != "https":
        raise InvalidDiscovery(f"{name} {_short(value)!r} is not https")
    if parts.fragment or parts.username is not None or parts.password is not None:
        raise InvalidDiscovery(f"{name} {_short(value)!r} carries a fragment or credentials")
    return value


def _short(value: str) -> str:
    return value if len(value) <= 200 else value[:200] + "..."
