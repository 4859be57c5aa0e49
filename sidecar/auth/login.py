"""`/.sso/login` and `/.sso/callback`: the Entra authorization-code flow with PKCE.

The login transaction (state, nonce, PKCE verifier, where to land) travels in
a short-lived cookie encrypted with `session.secret_keys`, one cookie per
attempt, so several tabs can sign in at once and the callback is accepted
only from the browser that started it (login CSRF, RFC 6749 §10.12). The
store remembers each used state for its lifetime, so a callback is accepted
once (replay, OAuth 2.0 Security BCP RFC 9700 §4.2.4).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import replace

from aiohttp import web
from multidict import MultiMapping

from sidecar import logs, metrics, routes, sign_in
from sidecar.auth.context import SSO
from sidecar.auth.login_transaction import LoginTransaction, open_transaction, seal_transaction
from sidecar.auth.redirects import safe_redirect_target
from sidecar.cookies import (
    LOGIN_COOKIE_PREFIX,
    clear_cookie,
    read_cookie,
    set_cookie,
)
from sidecar.oidc.aadsts import explain_aadsts
from sidecar.oidc.credentials import FederatedTokenUnreadable
from sidecar.oidc.errors import (
    InvalidDiscovery,
    InvalidIdToken,
    OidcError,
    ProviderRejected,
    ProviderUnavailable,
    aadsts_from_description,
)
from sidecar.oidc.provider import EntraProvider
from sidecar.pages import error_pages
from sidecar.pages.error_pages import PageError
from sidecar.request_scope import SCOPE, RequestScope
from sidecar.responses import error_response, redirect
from sidecar.store import StoreUnavailable
from sidecar.tenants import Tenant

LOGIN_TRANSACTION_TTL = 600.0  # ten minutes to finish signing in at Entra

# Entra `error` values that mean "Entra refused this user" (403) rather than
# "sign-in is broken" (502). Learn [ERR]: branch on `error`, not on AADSTS text.
_USER_REFUSED = frozenset(
    {"access_denied", "interaction_required", "consent_required", "login_required"}
)
_NOT_ASSIGNED = 50105
_CONSENT_DECLINED = 65004


def _provider(tenant: Tenant) -> EntraProvider:
    provider = tenant.sso
    assert provider is not None  # the own-routes step offers sign-in only with an sso block
    return provider


def _transaction_cookie(state: str) -> str:
    # The cookie name comes from the state, so each tab's attempt has its own cookie.
    return LOGIN_COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16]


def redirect_uri(ctx: RequestScope) -> str:
    return f"{ctx.public_origin}{routes.CALLBACK}"


def _failure(
    request: web.Request,
    ctx: RequestScope,
    page: PageError,
    *,
    result: str,
    rd: str = "/",
    message_args: Mapping[str, object] | None = None,
) -> web.Response:
    """The error page of a failed sign-in: its "Sign in again" keeps the user's `rd`."""
    metrics.SIGN_INS.labels(ctx.tenant.host, result).inc()
    return error_response(request, page, message_args=message_args, force_html=True, rd=rd)


def _bad_callback(
    request: web.Request, ctx: RequestScope, result: str, rd: str = "/"
) -> web.Response:
    return _failure(request, ctx, error_pages.INVALID_CALLBACK, result=result, rd=rd)


async def login(request: web.Request) -> web.StreamResponse:
    """Always starts a fresh sign-in (contract), remembering a safe `rd`."""
    ctx = request[SCOPE]
    sso = request.app[SSO]
    provider = _provider(ctx.tenant)
    rd = safe_redirect_target(request.query.get("rd"))
    if not await sso.store.ping():
        # The callback will need the store: say so now, before a trip to Entra.
        raise StoreUnavailable("store does not answer")
    try:
        auth = await provider.authorization_request(redirect_uri=redirect_uri(ctx))
    except OidcError as exc:
        logs.error(
            "entra_discovery_failed",
            request_id=ctx.request_id,
            tenant=ctx.tenant.host,
            reason=str(exc),
        )
        return _failure(
            request, ctx, error_pages.ENTRA_UNREACHABLE_AT_LOGIN, result="discovery_failed"
        )
    transaction = LoginTransaction(
        state=auth.state,
        nonce=auth.nonce,
        verifier=auth.code_verifier,
        rd=rd,
        redirect_uri=redirect_uri(ctx),
        host=ctx.tenant.host,
        created=time.time(),
    )
    response = redirect(auth.url)
    _forget_old_transactions(request, response, ctx)
    set_cookie(
        response,
        ctx,
        _transaction_cookie(auth.state),
        seal_transaction(sso.keys.login_box, transaction),
        LOGIN_TRANSACTION_TTL,
    )
    return response


# Sign-ins in progress a browser may hold at once (tabs). Each costs a ~500-byte cookie;
# unbounded, they would push the Cookie header past the server's header size limit.
MAX_OPEN_TRANSACTIONS = 3


def _forget_old_transactions(
    request: web.Request, response: web.StreamResponse, ctx: RequestScope
) -> None:
    """Clear this browser's older sign-in cookies, keeping the newest few."""
    sso = request.app[SSO]
    found: list[tuple[float, str]] = []
    # Our cookies as the strip step read them: by base name, as the scheme allows.
    for base, value in ctx.our_cookies.items():
        if not base.startswith(LOGIN_COOKIE_PREFIX):
            continue
        opened = open_transaction(sso.keys.login_box, value, LOGIN_TRANSACTION_TTL)
        created = opened.created if opened else -1.0
        found.append((created, base))
    found.sort(reverse=True)
    for _, base in found[MAX_OPEN_TRANSACTIONS - 1 :]:
        clear_cookie(response, ctx, base)


def _single_params(params: MultiMapping[object]) -> dict[str, str] | None:
    """The callback's parameters, or None when one is repeated (parameter pollution)."""
    out: dict[str, str] = {}
    for key in params:
        values = params.getall(key)
        if len(values) != 1:
            return None
        out[key] = str(values[0])
    return out


async def callback(request: web.Request) -> web.StreamResponse:
    ctx = request[SCOPE]
    sso = request.app[SSO]
    provider = _provider(ctx.tenant)
    host = ctx.tenant.host
    raw = await request.post() if request.method == "POST" else request.query
    params = _single_params(raw)
    if params is None:
        return _bad_callback(request, ctx, "repeated_parameter")
    state = params.get("state", "")
    if not state or len(state) > 512:
        return _bad_callback(request, ctx, "missing_state")
    cookie_base = _transaction_cookie(state)
    sealed = read_cookie(ctx, cookie_base)
    transaction = (
        open_transaction(sso.keys.login_box, sealed, LOGIN_TRANSACTION_TTL) if sealed else None
    )
    # SECURITY: the state must match the transaction this browser started (login CSRF:
    # a callback URL opened in another browser has no such cookie) ...
    if (
        transaction is None
        or transaction.host != host
        or not hmac.compare_digest(transaction.state, state)
    ):
        return await _finished_sign_in(request, ctx, state) or _bad_callback(
            request, ctx, "state_mismatch"
        )
    # ... and is accepted once, across replicas (replayed callback). The used state
    # remembers where that sign-in landed, for _finished_sign_in.
    landing = safe_redirect_target(transaction.rd).encode()
    if not await sso.store.create(_used_state_key(state), landing, LOGIN_TRANSACTION_TTL):
        return await _finished_sign_in(request, ctx, state) or _bad_callback(
            request, ctx, "state_replayed"
        )

    response = await _complete(request, ctx, provider, params, transaction)
    clear_cookie(response, ctx, cookie_base)
    return response


def _used_state_key(state: str) -> str:
    return "used-state:" + hashlib.sha256(state.encode()).hexdigest()


async def _finished_sign_in(
    request: web.Request, ctx: RequestScope, state: str
) -> web.StreamResponse | None:
    """The callback of a sign-in already finished, opened again by a user who is signed in
    (Back onto it, a reload, or Back to Entra's account picker and the same account once
    more): they land where that sign-in landed instead of on an error.

    SECURITY: the replay defence (RFC 9700 §4.2.4) still holds: nothing of the request
    is used but its state, so its code is never redeemed and no session is made or
    changed; the landing is a same-host path checked again by safe_redirect_target.
    A state never used, or a browser without a session, gets the error as before."""
    landing = await request.app[SSO].store.get(_used_state_key(state))
    if landing is None:
        return None
    signed_in = await sign_in.load(request)
    if signed_in.session is None:
        return None
    metrics.SIGN_INS.labels(ctx.tenant.host, "already_signed_in").inc()
    return redirect(safe_redirect_target(landing.decode("ascii", "replace")), 303)


async def _complete(
    request: web.Request,
    ctx: RequestScope,
    provider: EntraProvider,
    params: dict[str, str],
    transaction: LoginTransaction,
) -> web.StreamResponse:
    sso = request.app[SSO]
    host = ctx.tenant.host
    rd = safe_redirect_target(transaction.rd)
    if "error" in params:
        return _entra_refused(request, ctx, params, rd)
    code = params.get("code", "")
    if not code:
        return _bad_callback(request, ctx, "missing_code", rd)
    try:
        metadata = await provider.metadata()
        # SECURITY: RFC 9207 mix-up defence: a present `iss` must be the issuer; it is
        # required when discovery says Entra sends it.
        if not provider.response_iss_valid(metadata, params.get("iss")):
            return _failure(
                request, ctx, error_pages.CALLBACK_FROM_ANOTHER_ISSUER, result="iss_mismatch", rd=rd
            )
        result = await provider.exchange_code(
            code=code,
            redirect_uri=transaction.redirect_uri,
            code_verifier=transaction.verifier,
            nonce=transaction.nonce,
        )
    except ProviderRejected as exc:
        metrics.IDP_ERRORS.labels(host, *_error_labels(exc.error, exc.aadsts)).inc()
        logs.error(
            "entra_token_error",
            request_id=ctx.request_id,
            tenant=host,
            error=exc.error,
            aadsts=exc.aadsts,
            correlation_id=exc.correlation_id,
            hint=_admin_hint(provider, exc.aadsts, exc.error) or "see the AADSTS code",
        )
        misconfigured = exc.error in ("invalid_client", "unauthorized_client")
        page = (
            error_pages.SIGN_IN_MISCONFIGURED
            if misconfigured
            else error_pages.CODE_REDEMPTION_FAILED
        )
        return _failure(request, ctx, page, result="token_error", rd=rd)
    except FederatedTokenUnreadable as exc:
        # The pod's projected token is missing or empty: no request to Entra was made.
        logs.error(
            "federated_token_unreadable",
            request_id=ctx.request_id,
            tenant=host,
            path=exc.path,
            reason=exc.reason,
        )
        return _failure(
            request, ctx, error_pages.SIGN_IN_MISCONFIGURED, result="token_error", rd=rd
        )
    except (ProviderUnavailable, InvalidDiscovery) as exc:
        logs.error("entra_unavailable", request_id=ctx.request_id, tenant=host, reason=str(exc))
        return _failure(
            request, ctx, error_pages.ENTRA_UNREACHABLE, result="idp_unavailable", rd=rd
        )
    except InvalidIdToken as exc:
        # SECURITY: a token that fails any check (OIDC Core §3.1.3.7) creates no session.
        logs.error("id_token_rejected", request_id=ctx.request_id, tenant=host, reason=exc.reason)
        return _failure(
            request, ctx, error_pages.ID_TOKEN_REJECTED, result="invalid_id_token", rd=rd
        )
    metrics.record_client_secret(
        host, result.secret_index, provider.secret_fingerprint(result.secret_index)
    )
    claims = result.id_token_claims
    refused = await _refuse_without_role(request, ctx, claims.roles)
    if refused is not None:
        return refused
    await sign_in.start(request, claims)
    metrics.SIGN_INS.labels(host, "ok").inc()
    logs.event("signed_in", request_id=ctx.request_id, tenant=host, user=claims.user_key)
    account = await sso.accounts.get(host, claims.user_key)
    target = rd if account is not None else routes.signup_url(rd)
    response = redirect(target, 303)
    return response


async def _refuse_without_role(
    request: web.Request, ctx: RequestScope, roles: tuple[str, ...] | None
) -> web.Response | None:
    """With ``sso.allowed_roles`` set, a user whose ID token holds none of them gets a 403
    page and no session (contract: App roles); a session this browser still has ends
    too, so a user whose role was removed is out at the next sign-in."""
    sso_config = ctx.tenant.config.sso
    allowed = sso_config.allowed_roles if sso_config is not None else ()
    # SECURITY: exact, case-sensitive match of the role values (Entra's `value`); no
    # roles claim at all holds none of them (fail closed).
    if not allowed or set(roles or ()) & set(allowed):
        return None
    logs.warning(
        "sign_in_refused_role",
        request_id=ctx.request_id,
        tenant=ctx.tenant.host,
        roles=len(roles or ()),
    )
    response = _failure(
        request,
        ctx,
        error_pages.ROLE_REQUIRED,
        result="role_refused",
        message_args={"desk": ctx.tenant.config.display_name, "roles": ", ".join(allowed)},
    )
    await sign_in.end(request, "role_removed")
    return response


def _entra_refused(
    request: web.Request, ctx: RequestScope, params: dict[str, str], rd: str
) -> web.Response:
    error = params.get("error", "")[:64]
    description = params.get("error_description", "")
    aadsts = aadsts_from_description(description)
    correlation = _correlation_id(description)
    metrics.IDP_ERRORS.labels(ctx.tenant.host, *_error_labels(error, aadsts)).inc()
    logs.warning(
        "entra_refused_sign_in",
        request_id=ctx.request_id,
        tenant=ctx.tenant.host,
        error=error,
        aadsts=aadsts,
        correlation_id=correlation,
        hint=_admin_hint(_provider(ctx.tenant), aadsts, error),
    )
    page, message_args = _refusal_page(error, aadsts, correlation, ctx.tenant)
    if error not in _USER_REFUSED:
        # Entra failed rather than refused this user: the same words, as a failed sign-in.
        page = replace(page, status=502, error="idp_error")
    result = "entra_refused" if page.status == 403 else "entra_error"
    return _failure(request, ctx, page, result=result, rd=rd, message_args=message_args)


def _refusal_page(
    error: str, aadsts: int | None, correlation: str | None, tenant: Tenant
) -> tuple[PageError, dict[str, object] | None]:
    """What the page tells the user Entra said, and the values its message names."""
    if aadsts == _NOT_ASSIGNED:
        return error_pages.NOT_ASSIGNED, None
    if aadsts == _CONSENT_DECLINED or (error == "access_denied" and aadsts is None):
        # The user pressed Cancel at Entra (on the consent prompt: AADSTS65004, "user
        # declined"): a choice of theirs, not a failure, and said in those words.
        return error_pages.SIGN_IN_CANCELLED, {"desk": tenant.config.display_name}
    if correlation:
        return error_pages.SIGN_IN_NOT_COMPLETED_WITH_CORRELATION_ID, {"id": correlation}
    return error_pages.SIGN_IN_NOT_COMPLETED, None


# SECURITY: metric labels come from a fixed set, so a client replaying callbacks with
# made-up `error` values cannot create unbounded Prometheus series.
_KNOWN_ERRORS = frozenset(
    {
        "access_denied",
        "interaction_required",
        "consent_required",
        "login_required",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "invalid_client",
        "invalid_grant",
        "invalid_tenant",
    }
)
_KNOWN_AADSTS = frozenset(
    {50105, 65004, 65001, 50076, 53003, 50020, 90072, 7000215, 7000222, 700016, 54005, 70008}
    # The certificate and federated-credential refusals (contract: Client credentials).
    | {700027, 700024, 70021, 700211, 700212, 700213}
)


def _error_labels(error: str, aadsts: int | None) -> tuple[str, str]:
    label = error if error in _KNOWN_ERRORS else "other"
    code = "" if aadsts is None else str(aadsts) if aadsts in _KNOWN_AADSTS else "other"
    return label, code


def _correlation_id(description: str) -> str | None:
    marker = "Correlation ID:"
    if marker not in description:
        return None
    words = description.split(marker, 1)[1].split()
    value = words[0] if words else ""
    return value if value and all(c in "0123456789abcdefABCDEF-" for c in value) else None


def _admin_hint(provider: EntraProvider, aadsts: int | None, error: str) -> str | None:
    """What the customer's Entra admin should do, for the log (the table check-entra prints)."""
    advice = explain_aadsts(
        aadsts,
        error,
        tenant=provider.tenant,
        client_id=provider.client_id,
        authority=provider.authority,
    )
    return advice.sentence() if advice is not None else None
