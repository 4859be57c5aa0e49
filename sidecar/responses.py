"""The sidecar's own answers: pages for people, JSON for programs, safe headers on both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from sidecar import routes
from sidecar.auth.redirects import safe_redirect_target
from sidecar.pages.branding import DEFAULT_LOOK, PageLook, look_of
from sidecar.pages.error_pages import PageError
from sidecar.pages.i18n import negotiate
from sidecar.pages.render import error_page
from sidecar.request_scope import SCOPE

# SECURITY: our pages hold no script; framing is refused (clickjacking) and nothing
# is cached by shared caches, since pages can show a user's identity.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def is_navigation(request: web.Request) -> bool:
    """A browser navigation, by the contract: GET/HEAD accepting HTML or Sec-Fetch-Mode navigate."""
    return navigates(request.method, request.headers)


def navigates(method: str, headers: Mapping[str, str]) -> bool:
    """is_navigation for a request given by its method and headers (forward-auth judges a
    request the gateway describes, not the one it sends)."""
    if method not in ("GET", "HEAD"):
        return False
    if headers.get("Sec-Fetch-Mode", "").lower() == "navigate":
        return True
    return "text/html" in headers.get("Accept", "").lower()


def page_language(request: web.Request) -> str:
    """The shipped language this browser prefers (Accept-Language)."""
    return negotiate(request.headers.get("Accept-Language"))


def page_look(request: web.Request) -> PageLook:
    """The look of the request's tenant (the default before a tenant is known)."""
    ctx = request.get(SCOPE)
    tenant = None if ctx is None else ctx.known_tenant
    if tenant is None:
        return DEFAULT_LOOK
    return look_of(tenant.config)


def sign_in_again_url(request: web.Request, rd: str | None = None) -> str | None:
    """`/.sso/login` keeping where the user was going: ``rd``, else the page a GET asked for.

    None where signing in is not ours to offer (no tenant yet, or an SSO-less tenant).
    """
    ctx = request.get(SCOPE)
    tenant = None if ctx is None else ctx.known_tenant
    if ctx is None or tenant is None or not tenant.has_sso:
        return None
    if rd is None:
        rd = ctx.target if request.method in ("GET", "HEAD") else "/"
    return routes.login_url(safe_redirect_target(rd))


def html_response(
    body: str, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(PAGE_HEADERS)
    if headers:
        response.headers.update(headers)
    return response


def json_response(payload: dict[str, Any], status: int = 200) -> web.Response:
    response = web.json_response(payload, status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def error_response(
    request: web.Request,
    page: PageError,
    *,
    message_args: Mapping[str, object] | None = None,
    action_url: str | None = None,
    force_html: bool = False,
    rd: str | None = None,
) -> web.Response:
    """The catalogue's ``page`` as a page for a browser navigation, as JSON for everything else.

    ``message_args`` fill the message's ``%(name)s`` placeholders. The page speaks the
    browser's language, wears the tenant's look, names the request id for support and
    offers "Sign in again" towards ``rd`` (default: the page a GET asked for);
    ``action_url`` becomes its button. The JSON body is ``error``, the English
    ``message`` and the ``request_id``.
    """
    ctx = request.get(SCOPE)
    request_id = ctx.request_id if ctx is not None else None
    if force_html or is_navigation(request):
        body = error_page(
            title=page.title,
            message=page.message,
            message_args=message_args,
            status=page.status,
            request_id=request_id,
            action_url=action_url,
            action_label=page.action_label,
            sign_in_url=sign_in_again_url(request, rd),
            lang=page_language(request),
            look=page_look(request),
        )
        return html_response(body, status=page.status)
    message = page.message if message_args is None else page.message % message_args
    payload: dict[str, Any] = {"error": page.error, "message": message}
    if request_id:
        payload["request_id"] = request_id
    return json_response(payload, status=page.status)


def login_required(login_url: str) -> web.Response:
    """401 for a program whose request needs a signed-in user: where a browser signs in."""
    return json_response({"error": "login_required", "login_url": login_url}, status=401)


def signup_required() -> web.Response:
    """403 for a program whose signed-in user has not finished the first-login screen."""
    return json_response({"error": "signup_required", "signup_url": routes.SIGNUP}, status=403)


def redirect(location: str, status: int = 302) -> web.Response:
    """A redirect our routes answer with (never cached: it may carry a fresh cookie)."""
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})


SERVER_NAME = "ticketlog-sso"


def name_the_server(response: web.StreamResponse) -> None:
    """Before the headers go out: `Server: ticketlog-sso` instead of aiohttp's default,
    which names the Python and aiohttp versions (an attacker's shortcut to known flaws;
    OWASP WSTG-INFO-02, fingerprint web server). A desk's own Server header is kept.
    aiohttp has set its default before on_response_prepare runs, so that one is replaced."""
    if response.headers.get("Server", SERVER_SOFTWARE) == SERVER_SOFTWARE:
        response.headers["Server"] = SERVER_NAME


async def server_named(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare of a listener whose only touch is the Server header."""
    name_the_server(response)
