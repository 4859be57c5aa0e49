"""Every error the sidecar answers with a page: its status, its code and its words.

A call site names one entry (``error_response(request, error_pages.UPSTREAM_TIMEOUT)``)
and adds only what differs per request. The same entry is a page for a browser and
``{"error": ..., "message": ...}`` for a program: ``error`` is part of the operator
contract (gateways, scripts and alerts match on it), so an entry's code never changes.

Titles and messages are English catalogue messages marked with ``N_``: Babel extracts
them from here, and the page translates them when it is shown. A message holding
``%(name)s`` is filled in, after translation, with the values the call site gives.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.pages.i18n import N_

__all__ = ["CATALOGUE", "PageError"]


@dataclass(frozen=True, slots=True)
class PageError:
    """One known error: the status, the JSON ``error`` code, the page's title and message.

    ``action_label`` names the page's button when the call site gives it a link.
    """

    status: int
    error: str
    title: str
    message: str
    action_label: str | None = None


# The request itself. These refusals come before a tenant is known, and the framing
# ones answer protocol mistakes no browser makes: their words are plain English, shown
# as given, and only the title is translated.
BAD_HOST = PageError(400, "bad_host", N_("Bad request"), "%(reason)s.")
HTTP_VERSION_NOT_SUPPORTED = PageError(
    505, "http_version_not_supported", N_("Bad request"), "Only HTTP/1.0 and 1.1 are served."
)
CHUNKED_HTTP_1_0 = PageError(
    400, "bad_framing", N_("Bad request"), "HTTP/1.0 requests cannot be chunked."
)
TRANSFER_CODING_NOT_SUPPORTED = PageError(
    501, "transfer_coding_not_supported", N_("Bad request"), "Only chunked is supported."
)
FRAGMENT_IN_TARGET = PageError(
    400, "bad_target", N_("Bad request"), "A request target cannot hold a fragment (#)."
)
UNKNOWN_HOST = PageError(
    421,
    "unknown_host",
    N_("Unknown service desk"),
    N_("This address is not a TicketLog service desk served here."),
)
NOT_FOUND = PageError(404, "not_found", N_("Not found"), N_("There is no such page."))

# The sidecar itself.
STORE_UNAVAILABLE = PageError(
    503,
    "store_unavailable",
    N_("Sign-in is unavailable"),
    N_("We cannot check your sign-in right now. Please try again in a minute."),
)
INTERNAL_ERROR = PageError(
    500,
    "internal_error",
    N_("Something went wrong"),
    N_("The sign-in service hit an unexpected error. Please try again."),
)

# The desk behind the sidecar.
UPSTREAM_TIMEOUT = PageError(
    504,
    "upstream_timeout",
    N_("The service desk is taking too long"),
    N_("The service desk did not answer in time. Please try again shortly."),
)
UPSTREAM_UNAVAILABLE = PageError(
    502,
    "upstream_unavailable",
    N_("The service desk is unavailable"),
    N_("We could not reach the service desk. Please try again shortly."),
)
BAD_WEBSOCKET_HANDSHAKE = PageError(
    400, "bad_websocket_handshake", N_("Bad request"), N_("This WebSocket handshake is not valid.")
)
UNFORWARDABLE_REQUEST = PageError(
    400, "bad_request", N_("Bad request"), N_("This request cannot be forwarded.")
)

# Signing in with Entra (/.sso/login and /.sso/callback).
ENTRA_UNREACHABLE_AT_LOGIN = PageError(
    502,
    "idp_unavailable",
    N_("Microsoft sign-in is unavailable"),
    N_("We could not reach Microsoft Entra ID to sign you in. Please try again soon."),
)
ENTRA_UNREACHABLE = PageError(
    502,
    "idp_unavailable",
    N_("Microsoft sign-in is unavailable"),
    N_("We could not reach Microsoft Entra ID. Please try again shortly."),
)
INVALID_CALLBACK = PageError(
    400,
    "invalid_callback",
    N_("This sign-in link is not valid"),
    N_("The sign-in could not be completed from this link. Please sign in again."),
)
CALLBACK_FROM_ANOTHER_ISSUER = PageError(
    400,
    "invalid_callback",
    N_("This sign-in link is not valid"),
    N_("The sign-in response did not come from your organisation's Entra ID."),
)
SIGN_IN_MISCONFIGURED = PageError(
    502,
    "idp_error",
    N_("Sign-in is misconfigured"),
    N_(
        "Your organisation's Entra ID sign-in for this desk is misconfigured. "
        "Please tell your administrator."
    ),
)
CODE_REDEMPTION_FAILED = PageError(
    502,
    "idp_error",
    N_("Sign-in failed"),
    N_("Microsoft Entra ID could not complete your sign-in. Please try again."),
)
ID_TOKEN_REJECTED = PageError(
    502,
    "invalid_id_token",
    N_("Sign-in failed"),
    N_("Microsoft Entra ID sent a sign-in we could not verify. Please try again."),
)
ROLE_REQUIRED = PageError(
    403,
    "role_required",
    N_("You do not have access to this service desk"),
    N_(
        "%(desk)s needs one of these roles in your organisation's Microsoft Entra ID: "
        "%(roles)s. Your account has none of them. Please ask your administrator to "
        "assign you a role for the TicketLog app (Enterprise applications → Users and "
        "groups)."
    ),
)

# Entra sent the browser back with an error instead of a code. These are Entra refusing
# the user (403); the callback answers 502 "idp_error" with the same words when Entra's
# `error` says it failed instead.
NOT_ASSIGNED = PageError(
    403,
    "access_denied",
    N_("You are not assigned to this app"),
    N_(
        "Your organisation has not given your account access to this service desk. "
        "Please ask your administrator to assign you to the TicketLog app "
        "in Microsoft Entra ID."
    ),
)
SIGN_IN_CANCELLED = PageError(
    403,
    "access_denied",
    N_("You cancelled signing in"),
    N_(
        "You chose not to continue at Microsoft, so you are not signed in to %(desk)s "
        "and nothing was shared with it. Sign in again when you are ready."
    ),
)
SIGN_IN_NOT_COMPLETED = PageError(
    403,
    "access_denied",
    N_("Sign-in did not complete"),
    N_("Microsoft Entra ID did not complete your sign-in."),
)
SIGN_IN_NOT_COMPLETED_WITH_CORRELATION_ID = PageError(
    403,
    "access_denied",
    N_("Sign-in did not complete"),
    N_("Microsoft Entra ID did not complete your sign-in (Entra correlation id %(id)s)."),
)

# The first-login screen.
SIGNUP_FORM_EXPIRED = PageError(
    403,
    "csrf_refused",
    N_("This form has expired"),
    N_("Please go back, reload the page and try again."),
    action_label=N_("Reload the page"),
)

CATALOGUE: tuple[PageError, ...] = tuple(
    value for value in tuple(globals().values()) if isinstance(value, PageError)
)
"""Every entry above, in the order written (the tests render each one)."""
