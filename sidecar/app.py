"""Builds the public app: THE middleware list, in pipeline order."""

from __future__ import annotations

import warnings

from aiohttp import web
from aiohttp_session import session_middleware as user_session_middleware

from sidecar import routes
from sidecar.auth import forward_auth, info, login, logout, signup_routes
from sidecar.auth.context import SSO
from sidecar.middleware.entry import entry_middleware
from sidecar.middleware.own_routes import Routes, own_routes_middleware
from sidecar.middleware.session import session_middleware
from sidecar.middleware.strip import strip_middleware
from sidecar.middleware.tenant import tenant_middleware
from sidecar.proxy import UPSTREAM_POOL, UPSTREAM_SESSION, proxy_handler
from sidecar.responses import server_named
from sidecar.runtime import Runtime

# aiohttp-session keeps its storage under a plain string key of the request, which
# aiohttp warns about (it recommends typed keys); the key is the library's, not ours.
# sidecar.sign_in sets the same key for desk traffic (its _session says why).
warnings.filterwarnings(
    "ignore", category=web.NotAppKeyWarning, module=r"aiohttp_session|sidecar\.sign_in"
)

# Our own routes take small forms; desk traffic streams and has no size limit here.
OWN_ROUTE_MAX_BODY = 64 * 1024


SSO_ROUTES: Routes = {
    routes.LOGIN: {"GET": login.login},
    # POST is the contract's form_post form; the sidecar itself asks for response_mode=query,
    # because Entra's cross-site form POST would not carry the SameSite=Lax login cookie.
    routes.CALLBACK: {"GET": login.callback, "POST": login.callback},
    routes.SIGNUP: {"GET": signup_routes.signup_page, "POST": signup_routes.send_code},
    routes.VERIFY: {"GET": signup_routes.verify_page, "POST": signup_routes.verify},
    routes.LOGOUT: {"GET": logout.logout, "POST": logout.logout},
    routes.SIGNED_OUT: {"GET": logout.signed_out},
    routes.FRONTCHANNEL_LOGOUT: {"GET": logout.frontchannel_logout},
    routes.USERINFO: {"GET": info.userinfo},
    routes.JWKS: {"GET": info.jwks},
}


def build_public_app(runtime: Runtime) -> web.Application:
    config = runtime.config
    app = web.Application(
        middlewares=[
            entry_middleware(trusted_proxies=config.server.trusted_proxies),  # 1
            tenant_middleware(tenants=runtime.tenants),  # 2
            strip_middleware(),  # 3
            own_routes_middleware(  # 4
                routes=SSO_ROUTES,
                forward_auth=forward_auth.forward_auth,
                # aiohttp-session's middleware runs around our own routes: the answers it
                # can save a new or ended session into. Desk traffic does not pass it: it
                # would leave the desk's streamed answer alone anyway, and a level more in
                # the pipeline costs every proxied request (docs/performance.md); what the
                # proxy reads of the session it reads through get_session (sidecar.sign_in).
                user_sessions=user_session_middleware(runtime.sso.sessions),
            ),
            session_middleware(sso=runtime.sso),  # 5, 6, 7, 8
        ],
        client_max_size=OWN_ROUTE_MAX_BODY,
    )
    app.on_response_prepare.append(server_named)
    app[UPSTREAM_SESSION] = runtime.upstream
    app[UPSTREAM_POOL] = runtime.upstream_pool
    app[SSO] = runtime.sso
    app.router.add_route("*", "/{tail:.*}", proxy_handler)
    return app
