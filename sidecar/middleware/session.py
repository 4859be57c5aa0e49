"""Steps 5 to 8: the access decision (sidecar.auth.decision), carried out by the proxy.

Allowed: on to the desk, with the identity headers and the signed assertion
when signed in (public paths and SSO-less tenants never carry them). No
session: 302 to sign-in for a browser navigation, 401 JSON otherwise (so XHR
and API clients are never redirected to Entra). A session without a verified
account: the signup screen, or 403 JSON.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sidecar import routes, sign_in
from sidecar.auth.context import SsoServices
from sidecar.auth.decision import ANONYMOUS, SIGNED_IN, Decision, Verdict, decide, decide_now
from sidecar.auth.redirects import safe_redirect_target
from sidecar.auth.signup_screen import render_signup
from sidecar.request_scope import SCOPE
from sidecar.responses import is_navigation, login_required, redirect, signup_required


def session_middleware(*, sso: SsoServices) -> Middleware:
    signer = sso.signer

    @web.middleware
    async def session_and_account(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = request[SCOPE]
        decision = decide_now(ctx, sso, ctx.target, request) or await decide(
            request, ctx, sso, ctx.target, request
        )
        if decision is SIGNED_IN:  # the hot paths first
            ctx.identity_headers = signer.headers_for(ctx)
            return await handler(request)
        if decision is ANONYMOUS:
            return await handler(request)
        if decision.verdict is Verdict.ALLOW:
            if decision.signed_in:
                ctx.identity_headers = signer.headers_for(ctx)
            if decision.desk_logout:
                # The desk's own sign-out ends ours too; the request goes on, and the
                # desk's answer clears our cookie.
                await sign_in.end(request, "desk_logout", desk_answers=True)
            return await handler(request)
        return await _refusal(request, decision)

    return session_and_account


async def _refusal(request: web.Request, decision: Decision) -> web.StreamResponse:
    ctx = request[SCOPE]
    if decision.verdict is Verdict.LOGIN:
        target = routes.login_url(ctx.target)
        if is_navigation(request):
            return redirect(target)
        return login_required(target)
    if is_navigation(request):
        assert decision.state is not None
        # The contract: a navigation gets the signup screen itself, here.
        return await render_signup(request, decision.state, safe_redirect_target(ctx.target))
    return signup_required()
