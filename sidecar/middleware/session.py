"""Steps 6 and 7: a signed-in session, then a verified account, or the request ends here.

No session: 302 to sign-in for a browser navigation, 401 JSON otherwise (so
XHR and API clients are never redirected to Entra). A session without a
verified account: the signup screen, or 403 JSON. Public paths and SSO-less
tenants skip both steps.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sidecar.auth.context import SsoServices
from sidecar.auth.login import login_url
from sidecar.auth.logout import end_session
from sidecar.auth.redirects import safe_redirect_target
from sidecar.auth.resolve import cached_sign_in_state, sign_in_state
from sidecar.auth.signup_routes import render_signup
from sidecar.paths import under_prefix
from sidecar.responses import is_navigation, json_response, redirect
from sidecar.scope import SCOPE

SIGNUP_PATH = "/.sso/signup"


def session_middleware(*, sso: SsoServices) -> Middleware:
    @web.middleware
    async def session_and_account(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = request[SCOPE]
        tenant = ctx.tenant
        assert tenant is not None
        if not tenant.has_sso or ctx.is_public_path:
            return await handler(request)
        state = cached_sign_in_state(ctx, sso) or await sign_in_state(request, shared=True)
        if state.session is None:
            target = login_url(ctx.target)
            if is_navigation(request):
                return redirect(target)
            return json_response({"error": "login_required", "login_url": target}, status=401)
        if state.account is None or (state.email_change_pending and is_navigation(request)):
            # A changed email claim holds navigations at the screen until the new address
            # is verified; other requests keep the verified address meanwhile.
            if is_navigation(request):
                # The contract: a navigation gets the signup screen itself, here.
                return await render_signup(request, state, safe_redirect_target(ctx.target))
            return json_response(
                {"error": "signup_required", "signup_url": SIGNUP_PATH}, status=403
            )
        ctx.identity = state.identity
        logout_paths = tenant.config.logout_paths
        if logout_paths and under_prefix(ctx.path_for_matching, logout_paths):
            # The desk's own sign-out ends ours too; the request is then forwarded.
            probe = web.Response()
            await end_session(request, probe, "desk_logout")
            ctx.response_headers.extend(
                ("Set-Cookie", c.output(header="").strip()) for c in probe.cookies.values()
            )
        return await handler(request)

    return session_and_account
