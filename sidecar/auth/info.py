"""`/.sso/userinfo` and `/.sso/jwks.json`."""

from __future__ import annotations

from aiohttp import web

from sidecar import routes, sign_in
from sidecar.auth.context import SSO
from sidecar.responses import json_response


async def userinfo(request: web.Request) -> web.StreamResponse:
    state = await sign_in.load(request)
    if state.session is None:
        return json_response(
            {"error": "login_required", "login_url": routes.login_url("/")}, status=401
        )
    identity = state.identity
    if identity is None:
        return json_response({"error": "signup_required", "signup_url": routes.SIGNUP}, status=403)
    return json_response(identity.userinfo())


async def jwks(request: web.Request) -> web.StreamResponse:
    """Public keys of X-TicketLog-Identity (all configured keys: rotation)."""
    response = web.json_response(request.app[SSO].keys.public_jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
