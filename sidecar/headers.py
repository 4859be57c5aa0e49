"""Header names of the contract and the rules for what may cross to the desk."""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

USER = "X-TicketLog-User"
EMAIL = "X-TicketLog-Email"
GIVEN_NAME = "X-TicketLog-Given-Name"
FAMILY_NAME = "X-TicketLog-Family-Name"
NAME = "X-TicketLog-Name"
IDENTITY = "X-TicketLog-Identity"
ROLES = "X-TicketLog-Roles"
IDENTITY_HEADERS = (USER, EMAIL, GIVEN_NAME, FAMILY_NAME, NAME, IDENTITY, ROLES)

FORWARDED_FOR = "X-Forwarded-For"
FORWARDED_PROTO = "X-Forwarded-Proto"
FORWARDED_HOST = "X-Forwarded-Host"
REQUEST_ID = "X-Request-Id"

# RFC 9110 §7.6.1 connection-specific fields, plus the de-facto ones proxies drop.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def canonical(name: str) -> str:
    """Lower case with `_` read as `-`: the form in which servers may merge header names."""
    return name.lower().replace("_", "-")


# SECURITY: identity and forwarding headers a client sends are dropped in every
# spelling (case, `_` for `-`, duplicates): servers such as WSGI/CGI stacks map
# `X_TicketLog_User` onto the same variable as `X-TicketLog-User`
# (oauth2-proxy CVE-2025-64484). Forwarding headers are rebuilt by the proxy.
CLIENT_MAY_NOT_SEND = frozenset(
    canonical(n)
    for n in (
        *IDENTITY_HEADERS,
        FORWARDED_FOR,
        FORWARDED_PROTO,
        FORWARDED_HOST,
        # Other spellings of the same facts (RFC 7239, nginx): the desk must not read a
        # client's claim through them either.
        "Forwarded",
        "X-Real-IP",
    )
)


def connection_listed(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    """Header names a `Connection` header declares hop-by-hop (RFC 9110 §7.6.1)."""
    listed: set[str] = set()
    for value in headers.getall("Connection", ()):
        listed.update(token.strip().lower() for token in value.split(",") if token.strip())
    return listed


def end_to_end(
    headers: CIMultiDictProxy[str] | CIMultiDict[str], also_drop: Iterable[str] = ()
) -> CIMultiDict[str]:
    """A copy without hop-by-hop headers, those the Connection header names, and ``also_drop``."""
    copy = CIMultiDict(headers)  # copied in C; then the few names to drop are removed
    for name in (*HOP_BY_HOP, *connection_listed(headers), *also_drop):
        if name in copy:
            copy.popall(name)
    return copy


_SAFE = frozenset(range(0x20, 0x7F)) - {ord("%")}


def encode_header_value(value: str) -> str:
    """Percent-encode UTF-8 outside printable ASCII, and `%` itself (contract: Headers sent).

    SECURITY: CR, LF and NUL can never reach the desk raw, so a name claim cannot
    split or inject headers.
    """
    if value.isascii() and value.isprintable() and "%" not in value:
        return value
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in value.encode("utf-8"))


def encode_roles(roles: tuple[str, ...]) -> str:
    """The role values joined with `,`, each encoded as any header value and its own `,`
    as `%2C`, so the list splits back exactly (contract: App roles)."""
    return ",".join(encode_header_value(role).replace(",", "%2C") for role in roles)


def last_listed(headers: CIMultiDictProxy[str] | CIMultiDict[str], name: str) -> str:
    """The right-most entry of a comma-list header over all its lines: the one the
    nearest (trusted) proxy wrote. Entries further left may come from the client."""
    entries = [e.strip() for line in headers.getall(name, ()) for e in line.split(",")]
    entries = [e for e in entries if e]
    return entries[-1] if entries else ""
