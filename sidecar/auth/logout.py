"""Ending sessions: RP-initiated logout, Entra's front-channel logout, the desk's own."""

from __future__ import annotations

from aiohttp import web

from sidecar import logs, metrics, routes
from sidecar.auth.context import SSO
from sidecar.auth.cookies import SESSION_COOKIE, clear_cookie, read_session_cookie
from sidecar.auth.session_lookup import current_session, forget_session
from sidecar.oidc.errors import OidcError
from sidecar.pages.render import render_page
from sidecar.request_scope import SCOPE
from sidecar.responses import html_response, page_language, page_look, redirect


async def end_session(request: web.Request, response: web.StreamResponse, kind: str) -> bool:
    """End the request's session in the store and clear its cookie; True if there was one."""
    ctx = request[SCOPE]
    session = await current_session(request)
    clear_cookie(response, ctx, SESSION_COOKIE)
    cookie = read_session_cookie(ctx)
    if cookie:
        request.app[SSO].cache.discard(ctx.tenant.host, cookie)
    if session is None:
        return False
    await request.app[SSO].sessions.destroy(session)
    if cookie:
        # Again, now that the store has it gone: a store read that began between the
        # first drop and the delete may have found the session; this keeps it uncached.
        request.app[SSO].cache.discard(ctx.tenant.host, cookie)
    forget_session(request)
    metrics.LOGOUTS.labels(ctx.tenant.host, kind).inc()
    logs.event("signed_out", request_id=ctx.request_id, tenant=ctx.tenant.host, kind=kind)
    return True


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session here, then send the browser to Entra's end_session (OIDC RP-Initiated
    Logout 1.0 §2; entra-reference §6). Always lands on /.sso/signed-out."""
    ctx = request[SCOPE]
    provider = ctx.tenant.sso
    assert provider is not None  # the own-routes step offers sign-out only with an sso block
    session = await current_session(request)
    login_hint = session.login_hint if session else None
    post_logout = f"{ctx.public_origin}{routes.SIGNED_OUT}"
    try:
        metadata = await provider.metadata()
        target = provider.end_session_url(
            metadata, post_logout_redirect_uri=post_logout, logout_hint=login_hint
        )
    except OidcError:
        # Entra unreachable: our session still ends; the user lands on our own page.
        target = routes.SIGNED_OUT
    response = redirect(target, 303)
    await end_session(request, response, "logout")
    return response


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
        sso_services = request.app[SSO]
        ended = await sso_services.sessions.destroy_by_entra_sid(ctx.tenant.host, sid)
        sso_services.cache.discard_where(
            ctx.tenant.host, lambda state: state.session.entra_sid == sid
        )
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
