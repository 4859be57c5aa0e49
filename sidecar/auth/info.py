"""`/.sso/userinfo` and `/.sso/jwks.json`."""

from __future__ import annotations

from aiohttp import web

from sidecar import routes, sign_in
from sidecar.auth.context import SSO
from sidecar.responses import json_response, login_required, signup_required


async def userinfo(request: web.Request) -> web.StreamResponse:
    state = await sign_in.load(request)
    if state.session is None:
        return login_required(routes.login_url("/"))
    identity = state.identity
    if identity is None:
        return signup_required()
    return json_response(identity.userinfo())


async def jwks(request: web.Request) -> web.StreamResponse:
    """Public keys of X-TicketLog-Identity (all configured keys: rotation)."""
    response = web.json_response(request.app[SSO].keys.public_jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
