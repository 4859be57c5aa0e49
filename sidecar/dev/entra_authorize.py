"""``/{tenant}/oauth2/v2.0/authorize`` of the development Entra emulator (entra-reference §2).

Development only. Validation order follows Entra's: what cannot be trusted (tenant, client_id,
redirect_uri) is answered on Entra's own page; everything after that goes back to the
redirect URI in the requested response mode (§5).
"""

from __future__ import annotations

import secrets
import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from sidecar.dev import entra_errors as err
from sidecar.dev import entra_pages as pages
from sidecar.dev.entra_model import (
    MULTI_TENANT_SEGMENTS,
    NO_STORE,
    CodeGrant,
    EmulatedApp,
    EmulatedTenant,
    EmulatedUser,
    SignIn,
    append_query,
    decode_hint,
    issuer_for,
    origin_of,
    request_params,
)

if TYPE_CHECKING:
    from sidecar.dev.entra import EntraEmulator

SESSION_COOKIE = "x-entra-emulator-session"


def cookie_path(request: web.Request) -> str:
    # Scoped to the tenant's oauth2 paths (authorize and logout), so the emulator's cookie
    # never travels to a relying party that shares its host name during development.
    return f"/{request.match_info['tenant']}/oauth2/"


async def authorize(emu: EntraEmulator, request: web.Request) -> web.Response:
    params = await request_params(request)
    # The picker's button (`user`) only counts on its POST; `x_emulator_user` is the test
    # shortcut that skips the page.
    chosen = params.pop("user", None) if request.method == "POST" else None
    params.pop("user", None)
    chosen = chosen or params.pop("x_emulator_user", None)
    params.pop("x_emulator_user", None)
    action = params.pop("x_emulator_action", None)

    segment = request.match_info["tenant"]
    client_id = params.get("client_id", "")
    tenant = emu.tenant(segment)
    if tenant is None:
        if segment.lower() in MULTI_TENANT_SEGMENTS and emu.knows_client(client_id):
            # §1: a single-tenant app must use a tenant-specific endpoint.
            raise err.PageError(50194, err.MSG_50194)
        raise err.PageError(*err.unknown_tenant(segment))
    if not client_id:
        raise err.PageError(900144, err.missing("client_id"))
    app = tenant.app(client_id)
    if app is None:
        # §5: an untrusted client_id never gets a redirect.
        raise err.PageError(700016, err.msg_700016(client_id, tenant))
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri:
        raise err.PageError(900144, err.missing("redirect_uri"))
    if redirect_uri not in app.redirect_uris:
        # §2 redirect URI rules: exact, case-sensitive match; otherwise Entra's page (50011).
        raise err.PageError(50011, err.msg_50011(redirect_uri, app.client_id))

    flow = AuthorizeFlow(emu, request, tenant, app, params)
    if flow.mode not in ("query", "form_post", "fragment"):
        flow.mode = "query"
        return flow.fail("invalid_request", 9002313, err.MSG_MALFORMED)
    response_type = params.get("response_type")
    if not response_type:
        return flow.fail("invalid_request", 900144, err.missing("response_type"))
    if response_type != "code":
        # §2: anything but `code` needs the hybrid flow enabled on the registration.
        message = f"response_type '{response_type}' is not enabled for the application."
        return flow.fail("unsupported_response_type", 700054, message)
    if "openid" not in params.get("scope", "").split():
        # §2: the scope must contain openid for an OpenID Connect sign-in.
        return flow.fail("invalid_request", 900144, "The request must contain the scope 'openid'.")
    challenge = params.get("code_challenge")
    if challenge is not None:
        method = params.get("code_challenge_method", "plain")  # RFC 7636 §4.3 default
        if method not in ("S256", "plain") or not 43 <= len(challenge) <= 128:
            # §2: S256 and plain are accepted; RFC 7636 §4.1 bounds the length.
            message = "Invalid size of Code_Challenge parameter."
            return flow.fail("invalid_request", 501491, message)

    browser_id = request.cookies.get(SESSION_COOKIE, "")
    current = emu.browsers.get(browser_id, {}).get(tenant.tenant_id)
    prompt = params.get("prompt", "")

    if prompt == "none":
        # §2/§5: a silent sign-in needs an Entra session (50058) and no interaction.
        user = tenant.user(current.user_key) if current else None
        if current is None or user is None:
            return flow.fail("login_required", 50058, err.MSG_50058)
        if user.mfa_required:
            return flow.fail("interaction_required", 50076, err.MSG_50076)
        if user.declines_consent and app.client_id not in current.client_ids:
            return flow.fail("consent_required", 65001, err.msg_65001(app.client_id))
        return flow.succeed(user, browser_id, fresh=False)

    if action == "cancel":
        # §5: captures show the user's cancel as access_denied with error_subcode=cancel.
        return flow.fail("access_denied", 65004, err.MSG_65004, subcode="cancel")
    if chosen is None:
        return picker(request, tenant, app, params)
    chosen_user = tenant.user(chosen)
    if chosen_user is None:
        raise err.PageError(50034, f"The user account {chosen} does not exist in the directory.")
    return flow.succeed(chosen_user, browser_id, fresh=prompt == "login")


def picker(
    request: web.Request, tenant: EmulatedTenant, app: EmulatedApp, params: dict[str, str]
) -> web.Response:
    """The account picker; a ``login_hint`` (UPN, email or the opaque claim) highlights one."""
    hint = params.get("login_hint", "")
    hinted = decode_hint(hint)
    entries = []
    for user in tenant.users:
        labels: list[tuple[str, bool]] = []
        if not user.assigned:
            labels.append(("not assigned to this app: AADSTS50105", True))
        if user.declines_consent:
            labels.append(("declines consent: AADSTS65004", True))
        if user.email and not user.email_verified_domain:
            labels.append(("email domain not verified (xms_edov false)", True))
        if user.mfa_required:
            labels.append(("MFA required (approved here)", False))
        if user.roles:
            labels.append((f"app roles: {', '.join(user.roles)}", False))
        else:
            labels.append(("no app role (no roles claim)", False))
        is_hinted = bool(hint) and (
            hint.lower() in (tenant.upn(user).lower(), (user.email or "").lower())
            or (hinted is not None and hinted[1] == user.oid)
        )
        entries.append(pages.PickerEntry(user.key, user.name, user.email, labels, is_hinted))
    text = pages.account_picker(
        action=request.path,
        tenant_label=tenant.label,
        app_label=f"{app.display_name} ({app.client_id})",
        params=list(params.items()),
        entries=entries,
    )
    return web.Response(text=text, content_type="text/html", headers=NO_STORE)


class AuthorizeFlow:
    """The part of one /authorize request that answers through the redirect URI."""

    def __init__(
        self,
        emu: EntraEmulator,
        request: web.Request,
        tenant: EmulatedTenant,
        app: EmulatedApp,
        params: dict[str, str],
    ) -> None:
        self.emu = emu
        self.request = request
        self.tenant = tenant
        self.app = app
        self.params = params
        self.mode = params.get("response_mode", "query")  # §2: query is the default for code

    def _deliver(self, fields: list[tuple[str, str]]) -> web.Response:
        state = self.params.get("state")
        if state is not None:
            fields.append(("state", state))
        if self.emu.authorization_response_iss:
            origin = origin_of(self.request)
            fields.append(("iss", issuer_for(origin, self.tenant.tenant_id)))
        redirect_uri = self.params["redirect_uri"]
        if self.mode == "form_post":
            text = pages.form_post(action=redirect_uri, params=fields)
            return web.Response(text=text, content_type="text/html", headers=NO_STORE)
        if self.mode == "fragment":
            location = f"{redirect_uri}#{urlencode(fields)}"
        else:
            location = append_query(redirect_uri, fields)
        return web.Response(status=302, headers={"Location": location, **NO_STORE})

    def fail(
        self, error: str, code: int, message: str, *, subcode: str | None = None
    ) -> web.Response:
        """A redirect error in the format of entra-reference §5."""
        body = err.error_fields(self.request, error, code, message)
        fields = [("error", error), ("error_description", body["error_description"])]
        if subcode:
            fields.append(("error_subcode", subcode))
        fields.append(("error_uri", body["error_uri"]))
        return self._deliver(fields)

    def succeed(self, user: EmulatedUser, browser_id: str, *, fresh: bool) -> web.Response:
        emu = self.emu
        if not user.assigned:
            # §8: "Assignment required" blocks unassigned users with 50105; §5 lists the ways
            # it has been seen to surface.
            message = err.msg_50105(self.app, self.tenant.upn(user))
            if emu.unassigned_response == "page":
                raise err.PageError(50105, message)
            return self.fail(emu.unassigned_error, 50105, message)
        if user.declines_consent:
            return self.fail("access_denied", 65004, err.MSG_65004)
        browser_id, signin = sign_in(emu, browser_id, self.tenant, user, self.app, fresh=fresh)
        code = issue_code(emu, self.tenant, self.app, user, signin.sid, self.params)
        # [obs] §2: Entra returns session_state alongside code and state.
        response = self._deliver([("code", code), ("session_state", signin.session_state)])
        response.set_cookie(
            SESSION_COOKIE,
            browser_id,
            path=cookie_path(self.request),
            httponly=True,
            samesite="Lax",
            secure=self.request.secure,
        )
        return response


def sign_in(
    emu: EntraEmulator,
    browser_id: str,
    tenant: EmulatedTenant,
    user: EmulatedUser,
    app: EmulatedApp,
    *,
    fresh: bool,
) -> tuple[str, SignIn]:
    """Record the sign-in in the browser's Entra session; returns (cookie value, sign-in).

    The `sid` belongs to the Entra session and is shared by every app signed in through it
    (§6: front-channel logout reaches every app of the session), so it is kept while the same
    user signs in again, unless prompt=login asks for fresh credentials.
    """
    if browser_id not in emu.browsers:
        browser_id = secrets.token_urlsafe(24)
        emu.browsers[browser_id] = {}
    signins = emu.browsers[browser_id]
    current = signins.get(tenant.tenant_id)
    if current is None or fresh or current.user_key != user.key:
        current = SignIn(tenant.tenant_id, user.key, str(uuid.uuid4()), str(uuid.uuid4()))
        signins[tenant.tenant_id] = current
    if app.client_id not in current.client_ids:
        current.client_ids.append(app.client_id)
    return browser_id, current


def issue_code(
    emu: EntraEmulator,
    tenant: EmulatedTenant,
    app: EmulatedApp,
    user: EmulatedUser,
    sid: str,
    params: dict[str, str],
) -> str:
    """A random, single-use code bound to everything /token checks (§2: lives ~60 s)."""
    now = emu.clock()
    # Keep expired codes a while, so a late redemption reports 70008 rather than "unknown".
    emu.codes = {c: g for c, g in emu.codes.items() if g.expires_at > now - 600}
    code = "1.emu." + secrets.token_urlsafe(48)
    challenge = params.get("code_challenge")
    emu.codes[code] = CodeGrant(
        tenant_id=tenant.tenant_id,
        client_id=app.client_id,
        redirect_uri=params["redirect_uri"],
        scope=params.get("scope", ""),
        nonce=params.get("nonce"),
        code_challenge=challenge,
        code_challenge_method=params.get("code_challenge_method", "plain") if challenge else "",
        user_key=user.key,
        sid=sid,
        expires_at=now + emu.code_lifetime,
    )
    return code
