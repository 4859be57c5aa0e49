"""The sidecar's cookies: their names, how they are set and read, and keeping them
away from the desk.

Over https: `Secure`, `HttpOnly`, `SameSite=Lax`, `__Host-` prefixed; over http
(development) the same without `Secure` and the prefix. SameSite=Lax keeps the
session cookie off cross-site POSTs (CSRF) but on the top-level GET that comes
back from Entra.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

from aiohttp import web

from sidecar.request_scope import RequestScope

SESSION_COOKIE = "tlsso"
LOGIN_COOKIE_PREFIX = "tlsso_tx_"

# Every cookie of ours starts with one of these; over https the `__Host-` form is used
# (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain, so a sibling subdomain cannot set it).
OUR_PREFIXES = ("__Host-tlsso", "tlsso")


# What our cookies' names start with over each scheme, before their base name: they are
# set with it and read only with it (split_cookies).
_NAME_PREFIX = {"http": "", "https": "__Host-"}
# The session cookie is read on every signed-in request: its whole name for each scheme
# is made once.
_SESSION_COOKIE_NAMES = {scheme: prefix + SESSION_COOKIE for scheme, prefix in _NAME_PREFIX.items()}


def cookie_name(base: str, scheme: str) -> str:
    return _NAME_PREFIX[scheme] + base


def set_cookie(
    response: web.StreamResponse, ctx: RequestScope, base: str, value: str, max_age: float
) -> None:
    response.set_cookie(
        cookie_name(base, ctx.scheme),
        value,
        max_age=int(max_age),
        path="/",
        secure=ctx.scheme == "https",
        httponly=True,
        samesite="Lax",
    )


def clear_cookie(response: web.StreamResponse, ctx: RequestScope, base: str) -> None:
    response.del_cookie(
        cookie_name(base, ctx.scheme),
        path="/",
        secure=ctx.scheme == "https",
        httponly=True,
        samesite="Lax",
    )


def clearing_header(ctx: RequestScope, base: str) -> str:
    """The Set-Cookie value clear_cookie would send, for an answer this process does not
    build itself (the desk's answer to its own logout path)."""
    jar: SimpleCookie = SimpleCookie()
    name = cookie_name(base, ctx.scheme)
    jar[name] = ""
    morsel = jar[name]
    morsel["max-age"] = 0
    morsel["expires"] = "Thu, 01 Jan 1970 00:00:00 GMT"
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    if ctx.scheme == "https":
        morsel["secure"] = True
    return morsel.OutputString()


def read_cookie(ctx: RequestScope, base: str) -> str | None:
    """Our cookie's value, as the strip step found it (split_cookies: the Cookie header is
    parsed once, and over https only `__Host-` names are read)."""
    return ctx.our_cookies.get(base) or None


def is_ours(name: str) -> bool:
    return name.strip().startswith(OUR_PREFIXES)


def split_cookies(header_values: list[str], scheme: str) -> tuple[str, dict[str, str]]:
    """The Cookie header lines, parsed once per request: (what the desk may receive,
    our cookies by base name, the first of each name winning).

    SECURITY: the desk never sees our cookies (session id, sign-in transactions), in
    any spelling. Over https only the `__Host-` names are read, so a cookie planted by a
    sibling subdomain or over plain http (cookie tossing) is never taken for ours.
    """
    if len(header_values) == 1:
        # The common cases, decided without the loop below: one cookie, our session
        # (an API client of a desk without cookies) or the desk's; none of ours (SSO-less
        # desks).
        header = header_values[0]
        if ";" not in header:
            name, sep, value = header.strip().partition("=")
            if sep and name == _SESSION_COOKIE_NAMES[scheme]:
                return "", {SESSION_COOKIE: value.strip('"')}
            if not is_ours(name):
                return header, {}
        elif "tlsso" not in header:
            return header, {}
    read_prefix = _NAME_PREFIX[scheme]
    kept: list[str] = []
    ours: dict[str, str] = {}
    for header in header_values:
        for raw_pair in header.split(";"):
            pair = raw_pair.strip()
            if not pair:
                continue
            name, sep, value = pair.partition("=")
            if not is_ours(name):
                kept.append(pair)
            elif sep and name.startswith(read_prefix):
                base = name[len(read_prefix) :]
                if base not in ours:
                    ours[base] = value.strip('"')
    return "; ".join(kept), ours
