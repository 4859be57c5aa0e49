"""The signup screen: shown by the signup routes (sidecar.auth.signup_routes) and, to a
navigation whose user still has to sign up, by the session step in place of the desk."""

from __future__ import annotations

from aiohttp import web

from sidecar import routes
from sidecar.auth.context import SSO
from sidecar.pages.render import render_page
from sidecar.request_scope import SCOPE
from sidecar.responses import html_response, page_language, page_look
from sidecar.sign_in import SignInState


def email_is_fixed(state: SignInState) -> bool:
    """The address from Entra is used as it is (the seed: users must not alter it), unless
    Entra says its domain is not verified (xms_edov false): then the user may type another
    one, which is verified like any typed address."""
    assert state.session is not None
    return state.claimed_email is not None and state.session.email_domain_verified is not False


async def render_signup(
    request: web.Request,
    state: SignInState,
    rd: str,
    *,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
    typed_email: str | None = None,
) -> web.Response:
    ctx = request[SCOPE]
    assert state.session is not None
    sso = request.app[SSO]
    session = state.session
    host = ctx.tenant.host
    pending = await sso.codes.pending_email(host, session.user_key)
    body = render_page(
        "signup.html",
        lang=page_language(request),
        look=page_look(request),
        name=session.name,
        given_name=session.given_name,
        family_name=session.family_name,
        claimed_email=state.claimed_email,
        typed_email=typed_email,
        email_locked=email_is_fixed(state),
        csrf_token=sso.keys.csrf_token(session.key),
        rd=rd,
        error=error,
        notice=notice,
        code_sent_to=pending,
        resend_wait=int(await sso.codes.cooldown_left(host, session.user_key) + 0.999),
        allowed_domains=list(ctx.tenant.config.allowed_email_domains),
        signout_url=routes.LOGOUT,
        reverify=state.account is not None,
        verified_email=state.account.email if state.account else None,
    )
    return html_response(body, status=status)
