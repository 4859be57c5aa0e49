"""`/.sso/auth`: the access decision as the answer a gateway acts on (forward-auth).

A gateway in front of the desk (nginx `auth_request`, Caddy `forward_auth`,
Traefik `ForwardAuth`, Envoy `ext_authz`) moves the bytes and asks here about
each request; the decision is the proxy's own (sidecar.auth.decision).

The request being judged is described by the gateway: `X-Forwarded-Method` and
`X-Forwarded-Uri` (Traefik, Caddy), else `X-Original-Method` and
`X-Original-URI` (nginx), else the path below `/.sso/auth/` (Envoy's
`path_prefix`). SECURITY: whoever writes those headers chooses what is judged
(a public path, another tenant), so they are believed only from a peer in
`server.trusted_proxies`, and anyone else gets 403: a client that reaches the
sidecar directly cannot have a request of its choosing approved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web
from yarl import URL

from sidecar import routes, sign_in
from sidecar.auth.context import SSO
from sidecar.auth.decision import Decision, Verdict, decide
from sidecar.auth.redirects import safe_redirect_target
from sidecar.middleware.own_routes import names_sso_prefix
from sidecar.request_scope import SCOPE
from sidecar.responses import json_response, login_required, navigates, signup_required

FORWARDED_METHOD = "X-Forwarded-Method"
FORWARDED_URI = "X-Forwarded-Uri"
ORIGINAL_METHOD = "X-Original-Method"
ORIGINAL_URI = "X-Original-URI"

# RFC 9110 §9.1: a method is a token.
_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$")


class BadOriginal(ValueError):
    """The gateway's description of the original request is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Original:
    """The request a gateway asks about."""

    method: str
    target: str  # origin-form path and query
    # The gateway's request carries the original's Accept, Sec-Fetch-Mode and Cookie.
    headers: Mapping[str, str]
    # nginx's auth_request takes only 2xx, 401 and 403: a redirect is sent as 401 or 403
    # carrying its Location (a 302 would become a 500).
    redirects_as_refusal: bool


def _single(request: web.Request, name: str) -> str | None:
    values = request.headers.getall(name, [])
    if len(values) > 1:
        raise BadOriginal(f"{name} is repeated")
    return values[0].strip() if values else None


def _origin_form(uri: str) -> str:
    if uri.startswith("/"):
        return uri
    url = URL(uri, encoded=True) if "://" in uri else None
    if url is not None and url.scheme in ("http", "https") and url.is_absolute():
        return url.raw_path_qs  # absolute-form (RFC 9112 §3.2.2), as nginx may report it
    raise BadOriginal("the original URI must be a path (origin-form), e.g. /tickets?id=1")


def original_request(request: web.Request) -> Original:
    """The original request, by the contract's order of conventions."""
    ctx = request[SCOPE]
    for method_header, uri_header, as_refusal in (
        (FORWARDED_METHOD, FORWARDED_URI, False),
        (ORIGINAL_METHOD, ORIGINAL_URI, True),
    ):
        uri = _single(request, uri_header)
        if uri is None:
            continue
        method = _single(request, method_header) or request.method
        if not _METHOD.match(method):
            raise BadOriginal(f"{method_header} is not an HTTP method")
        return Original(method.upper(), _origin_form(uri), request.headers, as_refusal)
    # Envoy's path_prefix: /.sso/auth/tickets?id=1 asks about GET /tickets?id=1.
    if ctx.target.startswith(routes.AUTH + "/"):
        return Original(request.method, ctx.target[len(routes.AUTH) :], request.headers, False)
    raise BadOriginal(
        f"no original request: send {FORWARDED_METHOD} and {FORWARDED_URI}, "
        f"{ORIGINAL_METHOD} and {ORIGINAL_URI}, or ask at {routes.AUTH}/<path>"
    )


def _refused(status: int, error: str, message: str) -> web.Response:
    return json_response({"error": error, "message": message}, status=status)


async def forward_auth(request: web.Request) -> web.StreamResponse:
    ctx = request[SCOPE]
    if not ctx.peer_trusted:
        return _refused(
            403,
            "untrusted_gateway",
            "Only a gateway listed in server.trusted_proxies may ask this.",
        )
    try:
        original = original_request(request)
    except BadOriginal as exc:
        return _refused(400, "bad_forward_auth_request", f"{exc}.")
    if names_sso_prefix(original.target, unquote(original.target.split("?", 1)[0])):
        # The desk never receives /.sso/* (contract): the gateway must route it here.
        return _refused(
            403, "reserved_path", f"The gateway must route {routes.PREFIX}* to the sidecar."
        )
    sso = request.app[SSO]
    decision = await decide(request, ctx, sso, original.target, original)
    if decision.verdict is Verdict.ALLOW:
        return await _allowed(request, decision, int(sso.cache.ttl))
    return _denied(request, decision, original)


async def _allowed(request: web.Request, decision: Decision, cache_ttl: int) -> web.Response:
    ctx = request[SCOPE]
    answer = web.Response(status=200)
    if not decision.signed_in:
        answer.headers["Cache-Control"] = "no-store"
        return answer
    answer.headers.extend(request.app[SSO].signer.headers_for(ctx).fields)
    if decision.desk_logout:
        # The desk's own sign-out: the session ends now; the gateway may pass our
        # Set-Cookie on to the browser.
        await sign_in.end(request, "desk_logout")
    # A gateway may reuse a complete sign-in for as long as this replica's own cache
    # would: the same staleness bound for a logout elsewhere (contract: Forward-auth).
    lasting = decision.lasting and cache_ttl > 0
    answer.headers["Cache-Control"] = f"private, max-age={cache_ttl}" if lasting else "no-store"
    return answer


def _denied(request: web.Request, decision: Decision, original: Original) -> web.Response:
    navigation = navigates(original.method, request.headers)
    if decision.verdict is Verdict.LOGIN:
        location = routes.login_url(original.target)
        if not navigation:
            return login_required(location)
        status = 401 if original.redirects_as_refusal else 302
    else:
        location = routes.signup_url(safe_redirect_target(original.target))
        if not navigation:
            return signup_required()
        status = 403 if original.redirects_as_refusal else 302
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})
