"""Checks on the email address a user types (or Entra claims) at signup.

Both functions are pure: no DNS, no store. Deliverability is proven by the
verification code itself, so an MX lookup would only add latency and a way to
make signup depend on a resolver.
"""

from __future__ import annotations

from collections.abc import Iterable

import idna
from email_validator import EmailNotValidError, validate_email

from sidecar.pages.i18n import N_

# RFC 5321 caps a forward path at 256 octets including the angle brackets.
MAX_EMAIL_LENGTH = 254


class InvalidEmail(ValueError):
    """The address cannot be used; ``message`` is written for the end user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def normalize_typed_email(raw: str, *, allow_test_domains: bool = False) -> str:
    """Validate an address and return its canonical, all-ASCII form.

    Surrounding whitespace is forgiven; the domain is lower-cased and IDNA
    encoded (``bücher.de`` -> ``xn--bcher-kva.de``); the local part keeps its
    case, as RFC 5321 leaves it to the receiving server.

    Raises InvalidEmail with a message that can be shown on the signup page
    (it is plain text: the template escapes it).
    """
    if not isinstance(raw, str):
        raise InvalidEmail(N_("Please enter an email address."))
    candidate = raw.strip()
    if not candidate:
        raise InvalidEmail(N_("Please enter an email address."))
    if len(candidate) > MAX_EMAIL_LENGTH:
        # Checked before parsing so an oversized form field costs nothing.
        raise InvalidEmail(N_("That email address is too long."))
    try:
        # SECURITY: allow_smtputf8=False keeps every address pure ASCII, so it
        # can go into mail headers, the envelope and the X-TicketLog-Email HTTP
        # header without any encoding step that could be got wrong. Display
        # names, quoted local parts and IP-literal domains are refused
        # (library defaults, restated): they are how "a@b"@evil.example style
        # addresses confuse the parser of whoever reads the address next.
        result = validate_email(
            candidate,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            allow_empty_local=False,
            # Claims from a development Entra use the reserved `.test` TLD (RFC 2606);
            # a demo accepts typed addresses in any special-use domain (RFC 6761).
            test_environment=allow_test_domains,
            globally_deliverable=not allow_test_domains,
        )
    except EmailNotValidError as exc:
        # email-validator's messages are written for end users.
        raise InvalidEmail(str(exc) or "That is not a valid email address.") from None
    ascii_email = result.ascii_email
    if ascii_email is None:  # pragma: no cover - impossible with allow_smtputf8=False
        raise InvalidEmail("Please use an address without accented letters before the @.")
    return ascii_email


def _canonical_domain(domain: str) -> str:
    """Lower-case, trailing-dot-free, IDNA (punycode) form of a domain, for comparison."""
    domain = domain.strip().rstrip(".").lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        # Not a valid IDN: compare it as typed; it will simply match nothing valid.
        return domain


def domain_allowed(email: str, allowed_domains: Iterable[str]) -> bool:
    """True when the address's domain is exactly one of ``allowed_domains``.

    An empty list allows every domain. The match is exact and case-insensitive:
    ``allowed_domains=["contoso.com"]`` refuses ``x@mail.contoso.com``.
    """
    allowed = {_canonical_domain(d) for d in allowed_domains if d.strip()}
    if not allowed:
        return True
    # SECURITY: split on the LAST @ only. A quoted local part may contain "@"
    # ('"x@contoso.com"@evil.example'); splitting on the first one would read
    # the attacker's decoy as the domain. normalize_typed_email refuses quoted
    # local parts anyway, this keeps the function safe on its own.
    _, sep, domain = email.rpartition("@")
    if not sep or not domain:
        return False
    return _canonical_domain(domain) in allowed
