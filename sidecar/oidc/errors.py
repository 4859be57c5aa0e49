"""Errors of the OpenID Connect relying-party core.

Every message here is safe to log and to show an admin: none ever carries a
token, an authorization code, a client secret or Entra's free-text
``error_description`` (which can quote request parameters). The web layer maps
the classes to pages: ``ProviderUnavailable`` and ``InvalidIdToken`` to 502,
``ProviderRejected`` by its ``error`` (Learn [ERR]: branch on ``error``, log the
AADSTS codes and ``correlation_id`` for admins, explained by ``sidecar.oidc.aadsts``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

Endpoint = Literal["discovery", "jwks", "token"]

__all__ = [
    "Endpoint",
    "InvalidDiscovery",
    "InvalidIdToken",
    "OidcError",
    "ProviderRejected",
    "ProviderUnavailable",
    "aadsts_from_description",
]


class OidcError(Exception):
    """Base of every error raised by ``sidecar.oidc``."""


class ProviderUnavailable(OidcError):
    """Entra could not be reached, timed out, failed (5xx) or sent no usable JSON."""

    def __init__(self, endpoint: Endpoint, detail: str) -> None:
        super().__init__(f"Entra {endpoint} endpoint unavailable: {detail}")
        self.endpoint: Endpoint = endpoint
        self.detail = detail


class ProviderRejected(OidcError):
    """Entra answered with an OAuth error object (RFC 6749 §5.2; Learn [CODE], [ERR]).

    ``description`` is Entra's ``error_description``: for the admin log only,
    never for an end-user page, and deliberately not part of ``str(self)``.
    """

    def __init__(
        self,
        *,
        endpoint: Endpoint,
        status: int,
        error: str,
        error_codes: list[int],
        correlation_id: str | None,
        trace_id: str | None,
        description: str,
    ) -> None:
        code = f" AADSTS{error_codes[0]}" if error_codes else ""
        corr = f" correlation_id={correlation_id}" if correlation_id else ""
        super().__init__(f"Entra {endpoint} endpoint refused (HTTP {status}): {error}{code}{corr}")
        self.endpoint: Endpoint = endpoint
        self.status = status
        self.error = error
        self.error_codes = error_codes
        self.correlation_id = correlation_id
        self.trace_id = trace_id
        self.description = description

    @property
    def aadsts(self) -> int | None:
        """The first AADSTS code, for logs and admin-facing hints only (Learn [ERR])."""
        return self.error_codes[0] if self.error_codes else None

    @classmethod
    def from_body(
        cls, *, endpoint: Endpoint, status: int, body: Mapping[str, object]
    ) -> ProviderRejected:
        """Build from Entra's JSON error schema; tolerant of missing or ill-typed fields."""
        error = body.get("error")
        raw_codes = body.get("error_codes")
        codes = (
            [c for c in raw_codes if isinstance(c, int) and not isinstance(c, bool)]
            if isinstance(raw_codes, list)
            else []
        )
        description = body.get("error_description")
        description = description if isinstance(description, str) else ""
        if not codes:
            found = aadsts_from_description(description)
            codes = [found] if found is not None else []
        return cls(
            endpoint=endpoint,
            status=status,
            error=_printable(error) if isinstance(error, str) else "unknown_error",
            error_codes=codes,
            correlation_id=_opt_printable(body.get("correlation_id")),
            trace_id=_opt_printable(body.get("trace_id")),
            description=description,
        )


class InvalidDiscovery(OidcError):
    """The discovery document is unusable (wrong issuer, missing or bad endpoints)."""


class InvalidIdToken(OidcError):
    """The ID token was refused. ``reason`` is a short fixed phrase, safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid ID token: {reason}")
        self.reason = reason


_AADSTS = re.compile(r"\bAADSTS(\d{4,9})\b")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def aadsts_from_description(description: str | None) -> int | None:
    """The AADSTS number at the start of an Entra ``error_description``, if any.

    Redirect errors on the callback carry only the description text (Learn
    [ERR] "Redirect error format"); use the number for logs, not for control flow.
    """
    if not description:
        return None
    match = _AADSTS.search(description[:200])
    return int(match.group(1)) if match else None


def _printable(value: str) -> str:
    # SECURITY: these strings come from the network and end up in log lines;
    # keep them short and free of control characters (log injection).
    return _UNPRINTABLE.sub("?", value[:100])


def _opt_printable(value: object) -> str | None:
    return _printable(value) if isinstance(value, str) and value else None
