"""Validation of `rd`, where the browser lands after sign-in or signup.

Only a same-host relative path is accepted; anything else lands on `/`
(contract: `/.sso/login?rd=/path`). The refused shapes are the open-redirect
vectors from oauth2-proxy's advisories (GHSA-4mf2-f3wh-gvf2, GHSA-5m6c-jp6f-2vcv,
CVE-2020-11053, CVE-2021-21291): `//evil`, `/\\evil`, `/%09/evil`,
`/%2F%2Fevil`, `https:evil`, `javascript:`, control characters and CR/LF.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from sidecar import routes
from sidecar.paths import remove_dot_segments, split_target

MAX_RD_LENGTH = 2048
# Browsers strip tab, CR and LF inside URLs and treat `\` as `/` (WHATWG URL), so
# these can turn `/` + junk + `/evil` into `//evil`.
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


def safe_redirect_target(rd: str | None) -> str:
    """``rd`` when it is a safe same-host path, else ``/``."""
    # A relative path is printable ASCII (RFC 3986 §4.2): raw Unicode such as a
    # fullwidth solidus is refused, in case something on the way folds it to `/`.
    if not rd or len(rd) > MAX_RD_LENGTH or not rd.isascii():
        return "/"
    # Judge the value as sent and as decoded once and twice: a browser or the desk
    # may decode before following it.
    once = unquote(rd)
    twice = unquote(once)
    for candidate in (rd, once, twice):
        if not candidate.startswith("/") or candidate.startswith("//"):
            return "/"
        if _UNSAFE.search(candidate):
            return "/"
        # Never bounce into our own endpoints (logout loops, replays), however the
        # path is spelled: `/%2Esso/logout`, `/x/../.sso/logout`.
        if remove_dot_segments(split_target(candidate)).startswith(routes.PREFIX):
            return "/"
    return rd
