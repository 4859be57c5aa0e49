"""Public-path and logout-path matching, by the contract's rule.

Prefixes are matched case-sensitively on the percent-decoded path with dot
segments resolved, never on the query or fragment. A raw path holding `\\`, `;`,
`%2F` or `%5C`, or one that dot-segment removal changes, is never public: those
are the shapes of the path-confusion bypasses where the proxy and the desk read
one path two ways (e.g. oauth2-proxy's skip-auth-regex bypasses, GHSA-5j7x-...;
`/assets/..%2fadmin`).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_NEVER_PUBLIC = re.compile(r"[\\;]|%2[fF]|%5[cC]")


def split_target(raw_target: str) -> str:
    """The raw path of a request target, without query or fragment."""
    return raw_target.split("?", 1)[0].split("#", 1)[0]


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, on an absolute path."""
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        elif segment == ".":
            if last:
                output.append("")
        else:
            output.append(segment)
    result = "/".join(output)
    return result if result.startswith("/") else "/" + result


def normalized_path(raw_path: str) -> str | None:
    """The decoded, dot-resolved path; None when the raw path may not be matched at all."""
    path = split_target(raw_path)
    if not path.startswith("/") or _NEVER_PUBLIC.search(path):
        return None
    try:
        decoded = unquote(path, errors="strict") if "%" in path else path
    except UnicodeDecodeError:
        return None
    # SECURITY: a decoded path that still holds '%' was double-encoded; refuse rather
    # than guess which decoding the desk applies.
    if "%" in decoded or "\\" in decoded or "\x00" in decoded:
        return None
    # SECURITY: a path that dot-segment removal would change is never matched.
    if "/." in decoded and remove_dot_segments(decoded) != decoded:
        return None
    return decoded


def matches_prefix(raw_path: str, prefixes: tuple[str, ...]) -> bool:
    return bool(prefixes) and under_prefix(normalized_path(raw_path), prefixes)


def under_prefix(path: str | None, prefixes: tuple[str, ...]) -> bool:
    """``path`` from normalized_path (None: never matches) starts with one of ``prefixes``."""
    return path is not None and path.startswith(prefixes)
