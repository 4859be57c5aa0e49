"""``/{tenant}/oauth2/v2.0/token`` and the ID token of the development Entra emulator.

Development only. entra-reference §3 (request, response, ID token) and §5 (error codes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aiohttp import web

from sidecar.dev import entra_errors as err
from sidecar.dev.entra_assertions import assertion_auth
from sidecar.dev.entra_model import (
    ACCESS_TOKEN_LIFETIME,
    ID_TOKEN_LIFETIME,
    MULTI_TENANT_SEGMENTS,
    NO_STORE,
    AccessTokenRecord,
    CodeGrant,
    EmulatedApp,
    EmulatedTenant,
    EmulatedUser,
    encode_hint,
    form_str,
    issuer_for,
    origin_of,
    pairwise_sub,
)
from sidecar.dev.entra_signing import b64url, sign_jwt

if TYPE_CHECKING:
    from sidecar.dev.entra import EntraEmulator

_GRAPH_USER_READ = "https://graph.microsoft.com/User.Read"
_GRANTS = ("authorization_code", "client_credentials")


async def token(emu: EntraEmulator, request: web.Request) -> web.Response:
    segment = request.match_info["tenant"]
    tenant = emu.tenant(segment)
    if tenant is None:
        if segment.lower() in MULTI_TENANT_SEGMENTS:
            # §1: a single-tenant app must use its tenant's endpoint.
            raise err.EntraError(400, "invalid_request", 50194, err.MSG_50194)
        raise err.EntraError(400, "invalid_tenant", *err.unknown_tenant(segment))
    form = await request.post()  # §3: form-encoded body; query parameters do not count
    grant_type = form_str(form, "grant_type")
    if not grant_type:
        raise err.EntraError(400, "invalid_request", 900144, err.missing("grant_type"))
    if grant_type not in _GRANTS:
        message = f"The app requested an unsupported grant type '{grant_type}'."
        raise err.EntraError(400, "unsupported_grant_type", 70003, message)
    if form_str(form, "client_assertion") is not None or form_str(form, "client_assertion_type"):
        # A certificate's client assertion or a federated token (RFC 7523 §2.2).
        app = await assertion_auth(emu, request, form, tenant)
    else:
        app = client_auth(emu, request, form, tenant)
    if grant_type == "client_credentials":
        body = client_credentials(emu, form, tenant, app)
    else:
        body = authorization_code(emu, request, form, tenant, app)
    if emu.token_response_hook is not None:
        body = emu.token_response_hook(body)
    return web.json_response(body, headers=NO_STORE)


def client_auth(
    emu: EntraEmulator, request: web.Request, form: Mapping[str, object], tenant: EmulatedTenant
) -> EmulatedApp:
    """client_secret_post or client_secret_basic (§3: "the Basic auth pattern... per RFC 6749
    is also supported")."""
    client_id = form_str(form, "client_id")
    secret = form_str(form, "client_secret")
    authorization = request.headers.get("Authorization", "")
    if authorization[:6].lower() == "basic ":
        if secret is not None:
            # RFC 6749 §2.3: a client must not use more than one authentication method.
            raise err.EntraError(400, "invalid_request", 9002313, err.MSG_MALFORMED)
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            basic_id, basic_secret = decoded.split(":", 1)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise err.EntraError(401, "invalid_client", 9002313, err.MSG_MALFORMED) from None
        # RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
        basic_id, secret = unquote_plus(basic_id), unquote_plus(basic_secret)
        if client_id is not None and client_id != basic_id:
            raise err.EntraError(400, "invalid_request", 9002313, err.MSG_MALFORMED)
        client_id = basic_id
    if not client_id:
        raise err.EntraError(400, "invalid_request", 900144, err.missing("client_id"))
    app = tenant.app(client_id)
    if app is None:
        # §5: 700016 surfaces as unauthorized_client at /token.
        raise err.EntraError(400, "unauthorized_client", 700016, err.msg_700016(client_id, tenant))
    if not secret:
        raise err.EntraError(401, "invalid_client", 7000218, err.MSG_7000218)
    if secret not in app.secrets:
        # §5 [obs]: invalid_client comes back as HTTP 401.
        raise err.EntraError(401, "invalid_client", 7000215, err.msg_7000215(app.client_id))
    expiry = app.secrets[secret]
    if expiry is not None and expiry <= emu.clock():
        # §7: an expired secret first shows up at runtime as 7000222.
        raise err.EntraError(401, "invalid_client", 7000222, err.msg_7000222(app.client_id))
    return app


def client_credentials(
    emu: EntraEmulator, form: Mapping[str, object], tenant: EmulatedTenant, app: EmulatedApp
) -> dict[str, Any]:
    """The app-only token `check-entra` requests to prove the client id and secret."""
    scope = form_str(form, "scope")
    if not scope:
        raise err.EntraError(400, "invalid_request", 900144, err.missing("scope"))
    if not scope.endswith("/.default") or len(scope.split()) != 1:
        message = (
            f"The provided value for scope {scope} is not valid. Client credential flows must "
            "have a scope value with /.default suffixed to the resource identifier (application "
            "ID URI)."
        )
        raise err.EntraError(400, "invalid_scope", 1002012, message)
    return {
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_LIFETIME,
        "ext_expires_in": ACCESS_TOKEN_LIFETIME,
        "access_token": new_access_token(emu, tenant, app, None),
    }


def authorization_code(
    emu: EntraEmulator,
    request: web.Request,
    form: Mapping[str, object],
    tenant: EmulatedTenant,
    app: EmulatedApp,
) -> dict[str, Any]:
    code = form_str(form, "code")
    if not code:
        raise err.EntraError(400, "invalid_request", 900144, err.missing("code"))
    grant = emu.codes.get(code)
    if grant is None:
        raise err.EntraError(400, "invalid_grant", 9002313, err.MSG_MALFORMED)
    if grant.tenant_id != tenant.tenant_id:
        # §3: a code must be redeemed at the tenant that issued it.
        raise err.EntraError(400, "invalid_grant", 700005, err.MSG_700005)
    if grant.redeemed:
        raise err.EntraError(400, "invalid_grant", 54005, err.MSG_54005)
    # Single use: any redemption attempt by an authenticated client consumes the code, so a
    # failed attempt (a wrong verifier, say) cannot be retried.
    grant.redeemed = True
    if grant.expires_at <= emu.clock():
        raise err.EntraError(400, "invalid_grant", 70008, err.MSG_70008)
    if grant.client_id != app.client_id:
        raise err.EntraError(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
    redirect_uri = form_str(form, "redirect_uri")
    if redirect_uri != grant.redirect_uri:
        # §3: redirect_uri must be identical to the one sent to /authorize.
        message = (
            f"The reply address '{redirect_uri or ''}' does not match the reply address "
            f"'{grant.redirect_uri}' provided when requesting Authorization code."
        )
        raise err.EntraError(400, "invalid_grant", 500112, message)
    if grant.code_challenge is not None:
        verifier = form_str(form, "code_verifier")
        if verifier is None or not _pkce_ok(grant, verifier):
            raise err.EntraError(400, "invalid_grant", 501481, err.MSG_501481)
    user = tenant.user(grant.user_key)
    if user is None:
        raise err.EntraError(400, "invalid_grant", 50034, "The user account does not exist.")
    scopes = grant.scope.split()
    if _GRAPH_USER_READ not in scopes:
        scopes.append(_GRAPH_USER_READ)  # [obs] the code flow's access token is Graph's
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": " ".join(scopes),
        "expires_in": ACCESS_TOKEN_LIFETIME,
        "ext_expires_in": ACCESS_TOKEN_LIFETIME,
        "access_token": new_access_token(emu, tenant, app, user.key),
    }
    if "openid" in grant.scope.split():  # §3: id_token only with openid
        body["id_token"] = id_token(emu, origin_of(request), tenant, app, user, grant)
    return body


def _pkce_ok(grant: CodeGrant, verifier: str) -> bool:
    if grant.code_challenge_method == "S256":
        computed = b64url(hashlib.sha256(verifier.encode("utf-8", "replace")).digest())
    else:
        computed = verifier
    return secrets.compare_digest(computed.encode(), (grant.code_challenge or "").encode())


def new_access_token(
    emu: EntraEmulator, tenant: EmulatedTenant, app: EmulatedApp, user_key: str | None
) -> str:
    # §3: the access token is Graph's and opaque to the RP; a random string is enough.
    now = emu.clock()
    emu.access_tokens = {t: r for t, r in emu.access_tokens.items() if r.expires_at > now}
    value = "emu." + secrets.token_urlsafe(48)
    emu.access_tokens[value] = AccessTokenRecord(
        tenant.tenant_id, app.client_id, user_key, now + ACCESS_TOKEN_LIFETIME
    )
    return value


def id_token(
    emu: EntraEmulator,
    origin: str,
    tenant: EmulatedTenant,
    app: EmulatedApp,
    user: EmulatedUser,
    grant: CodeGrant,
) -> str:
    """The v2.0 ID token of entra-reference §3, after ``emu.id_token_hook``."""
    now = int(emu.clock())
    tid = tenant.tenant_id
    upn = tenant.upn(user)
    claims: dict[str, Any] = {
        "aud": app.client_id,
        "iss": issuer_for(origin, tid),
        "iat": now,
        "nbf": now,
        "exp": now + ID_TOKEN_LIFETIME,
        "aio": b64url(secrets.token_bytes(96)),
        "login_hint": encode_hint(tid, user.oid, upn),
        "name": user.name,
    }
    if grant.nonce is not None:
        claims["nonce"] = grant.nonce
    claims["oid"] = user.oid
    claims["preferred_username"] = upn
    claims["rh"] = f"1.{b64url(secrets.token_bytes(48))}."
    claims["sid"] = grant.sid
    claims["sub"] = pairwise_sub(app.client_id, user.oid)
    claims["tid"] = tid
    claims["uti"] = b64url(secrets.token_bytes(16))
    claims["ver"] = "2.0"
    if user.given_name is not None:
        claims["given_name"] = user.given_name
    if user.family_name is not None:
        claims["family_name"] = user.family_name
    if user.email is not None:
        # §3: email may be absent; xms_edov is only emitted alongside it.
        claims["email"] = user.email
        claims["xms_edov"] = user.email_verified_domain
    if user.roles:
        # Learn (app roles): the values of the app roles assigned to the user; the claim
        # is left out when there are none.
        claims["roles"] = list(user.roles)
    # §3: v2 headers carry typ, alg and kid, never x5t.
    header: dict[str, Any] = {"typ": "JWT", "alg": "RS256", "kid": emu.active_kid}
    if emu.id_token_hook is not None:
        emu.id_token_hook(header, claims)
    # A hook may name another published key (sign with it) or an unknown kid (sign with the
    # active key, so the relying party meets a kid missing from its JWKS cache).
    keys = {k.kid: k for k in emu.signing_keys}
    key = keys.get(str(header.get("kid")), keys[emu.active_kid])
    return sign_jwt(header, claims, key)


async def userinfo(emu: EntraEmulator, request: web.Request) -> web.Response:
    """Stand-in for Graph's /oidc/userinfo (§1), so the demo needs no outside service."""
    authorization = request.headers.get("Authorization", "")
    record = None
    if authorization[:7].lower() == "bearer ":
        record = emu.access_tokens.get(authorization[7:].strip())
    if record is None or record.user_key is None or record.expires_at <= emu.clock():
        return web.json_response(
            {"error": {"code": "InvalidAuthenticationToken", "message": "Invalid token."}},
            status=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    tenant = emu.tenant(record.tenant_id)
    user = tenant.user(record.user_key) if tenant else None
    if user is None:
        return web.json_response({"error": {"code": "NotFound"}}, status=404)
    info: dict[str, Any] = {"sub": pairwise_sub(record.client_id, user.oid), "name": user.name}
    if user.given_name is not None:
        info["given_name"] = user.given_name
    if user.family_name is not None:
        info["family_name"] = user.family_name
    if user.email is not None:
        info["email"] = user.email
    return web.json_response(info)
