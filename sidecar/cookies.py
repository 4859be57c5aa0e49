"""The sidecar's own cookie names, and keeping them away from the desk."""

from __future__ import annotations

# Every cookie of ours starts with one of these; over https the `__Host-` form is used
# (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain, so a sibling subdomain cannot set it).
OUR_PREFIXES = ("__Host-tlsso", "tlsso")


def cookie_name(base: str, scheme: str) -> str:
    return f"__Host-{base}" if scheme == "https" else base


def is_ours(name: str) -> bool:
    return name.strip().startswith(OUR_PREFIXES)


def split_cookies(header_values: list[str]) -> tuple[str, dict[str, str]]:
    """The Cookie header lines, parsed once per request: (what the desk may receive,
    our cookies by exact name, the first of each name winning).

    SECURITY: the desk never sees our cookies (session id, sign-in transactions).
    """
    if len(header_values) == 1:
        # The common cases, decided without the loop below: none of ours (SSO-less
        # desks), or only our session cookie (an API client of a desk without cookies).
        header = header_values[0]
        if "tlsso" not in header:
            return header, {}
        if ";" not in header:
            name, sep, value = header.strip().partition("=")
            if sep and name in OUR_PREFIXES:
                return "", {name: value.strip('"')}
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
            elif sep and name not in ours:
                ours[name] = value.strip('"')
    return "; ".join(kept), ours
