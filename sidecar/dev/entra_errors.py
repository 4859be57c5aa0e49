"""Entra's error shapes and AADSTS messages for the development emulator.

Development only. entra-reference §5: JSON errors carry ``error``, ``error_description``
(AADSTS text, then Trace ID, Correlation ID and Timestamp joined by ``\\r\\n``),
``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id`` and ``error_uri``; redirect
errors carry the same description; errors about an untrusted client or redirect URI are shown
on Entra's own page and never reach the relying party.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sidecar.dev import entra_pages as pages
from sidecar.dev.entra_model import NO_STORE, EmulatedApp, EmulatedTenant, origin_of


class EntraError(Exception):
    """Answered as an Entra JSON error (token endpoint error format, §5)."""

    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.status = status
        self.error = error
        self.code = code
        self.message = message


class PageError(Exception):
    """Answered with Entra's own error page, never a redirect (§5)."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def timestamp() -> str:
    # [obs] Entra's timestamps look like "2021-11-04 10:23:38Z".
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def trace_ids(request: web.Request) -> tuple[str, str]:
    """(trace id, correlation id); a caller's ``client-request-id`` becomes the correlation id,
    as MSAL clients rely on."""
    supplied = request.headers.get("client-request-id", "")
    try:
        correlation = str(uuid.UUID(supplied))
    except ValueError:
        correlation = str(uuid.uuid4())
    return str(uuid.uuid4()), correlation


def error_fields(request: web.Request, error: str, code: int, message: str) -> dict[str, Any]:
    """The full Entra error schema of §5."""
    trace_id, correlation_id = trace_ids(request)
    ts = timestamp()
    return {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {ts}"
        ),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{origin_of(request)}/error?code={code}",
    }


def json_error(request: web.Request, exc: EntraError) -> web.Response:
    body = error_fields(request, exc.error, exc.code, exc.message)
    return web.json_response(body, status=exc.status, headers=NO_STORE)


def page_error(request: web.Request, exc: PageError) -> web.Response:
    trace_id, correlation_id = trace_ids(request)
    text = pages.error_page(
        code=exc.code,
        message=exc.message,
        trace_id=trace_id,
        correlation_id=correlation_id,
        ts=timestamp(),
    )
    return web.Response(text=text, status=exc.status, content_type="text/html", headers=NO_STORE)


# ---- messages (wording as in Entra's, entra-reference §5) -----------------------------------


def unknown_tenant(segment: str) -> tuple[int, str]:
    # §1 "Unknown tenant at discovery".
    return 90002, (
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud. Check with your subscription administrator, this "
        "may happen if there are no active subscriptions for the tenant."
    )


def missing(name: str) -> str:
    return f"The request body must contain the following parameter: '{name}'."


def msg_700016(client_id: str, tenant: EmulatedTenant | None) -> str:
    directory = tenant.label if tenant else "the directory"
    return (
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{directory}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have "
        "sent your authentication request to the wrong tenant."
    )


def msg_50011(redirect_uri: str, client_id: str) -> str:
    return (
        f"The redirect URI '{redirect_uri}' specified in the request does not match the "
        f"redirect URIs configured for the application '{client_id}'. Make sure the redirect "
        "URI sent in the request matches one added to your application in the Azure portal. "
        "Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
    )


def msg_50105(app: EmulatedApp, upn: str) -> str:
    return (
        f"Your administrator has configured the application {app.display_name} "
        f"('{app.client_id}') to block users unless they are specifically granted ('assigned') "
        f"access to the application. The signed in user '{upn}' is blocked because they are "
        "not a direct member of a group with access, nor had access directly assigned by an "
        "administrator. Please contact your administrator to assign access to this application."
    )


def msg_65001(client_id: str) -> str:
    return (
        "The user or administrator has not consented to use the application with ID "
        f"'{client_id}'. Send an interactive authorization request for this user and resource."
    )


def msg_7000215(client_id: str) -> str:
    # §5/§7: customers often paste the secret ID instead of its value.
    return (
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        "client secret value, not the client secret ID, for a secret added to app "
        f"'{client_id}'."
    )


def msg_7000222(client_id: str) -> str:
    return (
        f"The provided client secret keys for app '{client_id}' are expired. Visit the Azure "
        "portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider "
        "using certificate credentials for added security: https://aka.ms/certCreds."
    )


MSG_50194 = (
    "Application is not configured as a multi-tenant application. Usage of the /common "
    "endpoint is not supported for such applications created after '10/15/2018'. Use a "
    "tenant-specific endpoint or configure the application to be multi-tenant."
)
MSG_50058 = "A silent sign-in request was sent but no user is signed in."
MSG_50076 = (
    "Due to a configuration change made by your administrator, or because you moved to a new "
    "location, you must use multi-factor authentication to access the application."
)
MSG_65004 = "User declined to consent to access the app."
MSG_54005 = (
    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or "
    "use an existing refresh token."
)
MSG_70008 = (
    "The provided authorization code or refresh token has expired due to inactivity. Send a "
    "new interactive authorization request for this user and resource."
)
MSG_700005 = "Provided Authorization Code is intended to use against other tenant, thus rejected."
MSG_501481 = (
    "The Code_Verifier does not match the code_challenge supplied in the authorization request."
)
MSG_7000218 = (
    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
)
MSG_MALFORMED = "Invalid request. Request is malformed or invalid."
