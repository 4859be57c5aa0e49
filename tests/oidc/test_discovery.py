"""Discovery document parsing (entra-reference §1, OIDC Discovery §3)."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.oidc.discovery import (
    discovery_url,
    is_custom_domain,
    normalize_authority,
    parse_metadata,
    validate_tenant,
)
from sidecar.oidc.errors import InvalidDiscovery

from ._tokens import AUTHORITY, OTHER_TENANT_ID, TENANT_ID

T = TENANT_ID


def entra_document(
    authority: str = AUTHORITY, tenant_id: str = T, **overrides: Any
) -> dict[str, Any]:
    """The field set of a real tenant-specific document (entra-reference §1)."""
    doc: dict[str, Any] = {
        "token_endpoint": f"{authority}/{tenant_id}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{authority}/{tenant_id}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{authority}/{tenant_id}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{authority}/{tenant_id}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{authority}/{tenant_id}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{authority}/{tenant_id}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "email"],
        "kerberos_endpoint": f"{authority}/{tenant_id}/kerberos",
        "tenant_region_scope": "WW",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }
    for name, value in overrides.items():
        if value is None:
            doc.pop(name, None)
        else:
            doc[name] = value
    return doc


@pytest.mark.parametrize("tenant", [T, T.upper(), "contoso.com", "contoso.onmicrosoft.com"])
def test_real_document(tenant: str) -> None:
    meta = parse_metadata(entra_document(), authority=AUTHORITY, tenant=tenant)
    assert meta.issuer == f"{AUTHORITY}/{T}/v2.0"
    assert meta.tenant_id == T
    assert meta.token_endpoint.endswith("/oauth2/v2.0/token")
    assert meta.end_session_endpoint is not None
    assert meta.authorization_response_iss_parameter_supported is False
    assert meta.response_modes_supported == ("query", "fragment", "form_post")


def test_authority_trailing_slash_is_ignored() -> None:
    meta = parse_metadata(entra_document(), authority=AUTHORITY + "/", tenant=T)
    assert meta.tenant_id == T


def test_http_authority_allowed_for_test_idps() -> None:
    authority = "http://127.0.0.1:8123/entra"
    meta = parse_metadata(entra_document(authority), authority=authority, tenant="contoso.com")
    assert meta.issuer == f"{authority}/{T}/v2.0"
    assert meta.jwks_uri.startswith("http://127.0.0.1:8123/")


def test_national_cloud() -> None:
    authority = "https://login.microsoftonline.us"
    meta = parse_metadata(entra_document(authority), authority=authority, tenant=T)
    assert meta.issuer == f"{authority}/{T}/v2.0"


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param(f"{AUTHORITY}/{T}/v2.0/", id="trailing slash"),
        pytest.param(f"{AUTHORITY}/{T}/v2.0/extra", id="suffix path"),
        pytest.param(f"{AUTHORITY}/{T}", id="no v2.0"),
        pytest.param(f"{AUTHORITY}/{T}/v2.0x", id="v2.0x"),
        pytest.param(f"{AUTHORITY}/x/{T}/v2.0", id="extra segment"),
        pytest.param(f"{AUTHORITY}.evil.example/{T}/v2.0", id="host prefix"),
        pytest.param(f"{AUTHORITY}:8443/{T}/v2.0", id="other port"),
        pytest.param(f"https://login.microsoftonline.us/{T}/v2.0", id="other cloud"),
        pytest.param(f"https://sts.windows.net/{T}/", id="v1 issuer"),
        pytest.param(f"{AUTHORITY}/{{tenantid}}/v2.0", id="common template"),
        pytest.param(f"{AUTHORITY}/contoso.com/v2.0", id="domain issuer"),
        pytest.param(f"{AUTHORITY}/{T}x/v2.0", id="not a GUID"),
        pytest.param(f"http://login.microsoftonline.com/{T}/v2.0", id="http issuer"),
        pytest.param(f"{AUTHORITY}//v2.0", id="empty tenant"),
        pytest.param(f"{AUTHORITY}/v2.0", id="too short"),
    ],
)
def test_issuer_must_be_exact(issuer: str) -> None:
    with pytest.raises(InvalidDiscovery, match="issuer"):
        parse_metadata(entra_document(issuer=issuer), authority=AUTHORITY, tenant="contoso.com")


def test_issuer_missing_or_not_a_string() -> None:
    with pytest.raises(InvalidDiscovery, match="no issuer"):
        parse_metadata(entra_document(issuer=None), authority=AUTHORITY, tenant=T)
    with pytest.raises(InvalidDiscovery, match="no issuer"):
        parse_metadata(entra_document(issuer=["x"]), authority=AUTHORITY, tenant=T)


def test_wrong_guid_for_a_configured_guid() -> None:
    doc = entra_document(tenant_id=OTHER_TENANT_ID)
    with pytest.raises(InvalidDiscovery, match="differs from the configured tenant"):
        parse_metadata(doc, authority=AUTHORITY, tenant=T)
    # A configured domain resolves to whatever GUID its document names.
    assert (
        parse_metadata(doc, authority=AUTHORITY, tenant="contoso.com").tenant_id == OTHER_TENANT_ID
    )


@pytest.mark.parametrize("name", ["authorization_endpoint", "token_endpoint", "jwks_uri"])
@pytest.mark.parametrize(
    "value",
    [None, "", 5, "/relative/path", "ftp://login.microsoftonline.com/x", "https://", "https:///x"],
)
def test_required_endpoints(name: str, value: Any) -> None:
    doc = entra_document()
    if value is None:
        del doc[name]
    else:
        doc[name] = value
    with pytest.raises(InvalidDiscovery, match=name):
        parse_metadata(doc, authority=AUTHORITY, tenant=T)


def test_https_authority_refuses_http_endpoints() -> None:
    doc = entra_document(token_endpoint=f"http://login.microsoftonline.com/{T}/oauth2/v2.0/token")
    with pytest.raises(InvalidDiscovery, match="not https"):
        parse_metadata(doc, authority=AUTHORITY, tenant=T)


def test_endpoint_with_credentials_refused() -> None:
    doc = entra_document(jwks_uri="https://user:pw@login.microsoftonline.com/keys")
    with pytest.raises(InvalidDiscovery, match="credentials"):
        parse_metadata(doc, authority=AUTHORITY, tenant=T)


def test_end_session_optional_but_validated() -> None:
    meta = parse_metadata(entra_document(end_session_endpoint=None), authority=AUTHORITY, tenant=T)
    assert meta.end_session_endpoint is None
    with pytest.raises(InvalidDiscovery, match="end_session_endpoint"):
        parse_metadata(entra_document(end_session_endpoint="logout"), authority=AUTHORITY, tenant=T)


def test_optional_fields() -> None:
    doc = entra_document(
        response_modes_supported=None, authorization_response_iss_parameter_supported=True
    )
    meta = parse_metadata(doc, authority=AUTHORITY, tenant=T)
    assert meta.response_modes_supported == ("query", "fragment")
    assert meta.authorization_response_iss_parameter_supported is True
    with pytest.raises(InvalidDiscovery):
        parse_metadata(
            entra_document(authorization_response_iss_parameter_supported="true"),
            authority=AUTHORITY,
            tenant=T,
        )
    with pytest.raises(InvalidDiscovery):
        parse_metadata(
            entra_document(response_modes_supported="query"), authority=AUTHORITY, tenant=T
        )


@pytest.mark.parametrize("document", [[], "x", None, 5])
def test_not_an_object(document: Any) -> None:
    with pytest.raises(InvalidDiscovery, match="not a JSON object"):
        parse_metadata(document, authority=AUTHORITY, tenant=T)


def test_discovery_url() -> None:
    assert (
        discovery_url(AUTHORITY + "/", "contoso.com")
        == f"{AUTHORITY}/contoso.com/v2.0/.well-known/openid-configuration"
    )


@pytest.mark.parametrize(
    "authority",
    [
        "login.microsoftonline.com",
        "ftp://x",
        "https://",
        "https://x/?q=1",
        "https://x/#f",
        "https://u:p@x",
    ],
)
def test_bad_authority(authority: str) -> None:
    with pytest.raises(ValueError, match="authority"):
        normalize_authority(authority)


@pytest.mark.parametrize(
    "tenant",
    [
        "common",
        "Organizations",
        "consumers",
        "",
        "a/b",
        "contoso.com/../x",
        "contoso.com?x=1",
        "x y",
    ],
)
def test_bad_tenant(tenant: str) -> None:
    with pytest.raises(ValueError, match="tenant"):
        validate_tenant(tenant)


@pytest.mark.parametrize(
    ("tenant", "custom"),
    [
        ("contoso.com", True),
        ("desk.contoso.co.uk", True),
        ("contoso.onmicrosoft.com", False),
        ("Contoso.OnMicrosoft.com", False),
        ("contoso.onmicrosoft.us", False),
        ("contoso.partner.onmschina.cn", False),
        (T, False),
        (T.upper(), False),
    ],
)
def test_is_custom_domain(tenant: str, custom: bool) -> None:
    assert is_custom_domain(tenant) is custom
