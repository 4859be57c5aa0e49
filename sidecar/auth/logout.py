"""Ending sessions: RP-initiated logout, Entra's front-channel logout, the desk's own."""

from __future__ import annotations

from aiohttp import web

from sidecar import logs, metrics, routes, sign_in
from sidecar.oidc.errors import OidcError
from sidecar.pages.render import render_page
from sidecar.request_scope import SCOPE
from sidecar.responses import html_response, page_language, page_look, redirect


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session here, then send the browser to Entra's end_session (OIDC RP-Initiated
    Logout 1.0 §2; entra-reference §6). Always lands on /.sso/signed-out."""
    ctx = request[SCOPE]
    provider = ctx.tenant.sso
    assert provider is not None  # the own-routes step offers sign-out only with an sso block
    ended = await sign_in.end(request, "logout")
    login_hint = ended.login_hint if ended else None
    post_logout = f"{ctx.public_origin}{routes.SIGNED_OUT}"
    try:
        metadata = await provider.metadata()
        target = provider.end_session_url(
            metadata, post_logout_redirect_uri=post_logout, logout_hint=login_hint
        )
    except OidcError:
        # Entra unreachable: our session still ends; the user lands on our own page.
        target = routes.SIGNED_OUT
    return redirect(target, 303)


async def signed_out(request: web.Request) -> web.StreamResponse:
    return html_response(
        render_page("signed_out.html", lang=page_language(request), look=page_look(request))
    )


async def frontchannel_logout(request: web.Request) -> web.StreamResponse:
    """Entra's front-channel call: end every session of that Entra `sid` on this host.

    Entra sends only `?sid=` (entra-reference §6); the sid index lives in the store,
    so the sessions end on every replica. Always 200, and framable by the tenant's
    authority only (it runs in Entra's hidden iframe).
    """
    ctx = request[SCOPE]
    sid = request.query.get("sid", "")
    ended = 0
    if sid and len(sid) <= 128:
        ended = await sign_in.end_entra_sign_in(request, sid)
        metrics.LOGOUTS.labels(ctx.tenant.host, "frontchannel").inc(ended)
    logs.event(
        "frontchannel_logout", request_id=ctx.request_id, tenant=ctx.tenant.host, ended=ended
    )
    sso = ctx.tenant.config.sso
    assert sso is not None
    response = web.Response(text="signed out", content_type="text/plain")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = f"frame-ancestors {_origin(sso.authority)}"
    return response


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
