"""The signed-in session of a request, read once and kept on the request scope."""

from __future__ import annotations

from aiohttp import web

from sidecar.auth.context import SSO
from sidecar.auth.cookies import read_session_cookie
from sidecar.request_scope import SCOPE
from sidecar.sessions.sessions import Session

_SESSION = web.RequestKey("session", Session)


async def current_session(request: web.Request) -> Session | None:
    """The request's valid session, or None; StoreUnavailable propagates (fail closed)."""
    if _SESSION in request:
        return request[_SESSION]
    ctx = request[SCOPE]
    assert ctx.tenant is not None
    cookie = read_session_cookie(ctx)
    if not cookie:
        return None
    session = await request.app[SSO].sessions.load(ctx.tenant.host, cookie)
    if session is not None:
        request[_SESSION] = session
    return session


def forget_session(request: web.Request) -> None:
    request.pop(_SESSION, None)
