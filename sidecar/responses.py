"""The sidecar's own answers: pages for people, JSON for programs, safe headers on both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from sidecar.pages.render import error_page

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
    *,
    status: int,
    error: str,
    title: str,
    message: str,
    request_id: str | None = None,
    action_url: str | None = None,
    action_label: str | None = None,
    force_html: bool = False,
) -> web.Response:
    """An error as a page for a browser navigation, as JSON for everything else."""
    if force_html or is_navigation(request):
        body = error_page(
            title=title,
            message=message,
            status=status,
            request_id=request_id,
            action_url=action_url,
            action_label=action_label,
        )
        return html_response(body, status=status)
    payload: dict[str, Any] = {"error": error, "message": message}
    if request_id:
        payload["request_id"] = request_id
    return json_response(payload, status=status)


def redirect(location: str, status: int = 302) -> web.Response:
    """A redirect our routes answer with (never cached: it may carry a fresh cookie)."""
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})
