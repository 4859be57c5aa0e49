"""Requests whose framing or target another server could read differently are refused.

aiohttp's parser already refuses the classic smuggling shapes (Content-Length with
Transfer-Encoding, two lengths, obs-fold, bare LF, bad chunk sizes). What it accepts
and this module refuses, before anything else runs:

- a protocol version other than HTTP/1.0 and HTTP/1.1 (505): aiohttp would answer an
  "HTTP/0.9" or "HTTP/2.0" text request in kind, and servers disagree on how such a
  message is framed;
- Transfer-Encoding on an HTTP/1.0 request (400): RFC 9112 §6.1 says its framing is
  faulty, so a proxy in front may have read its body differently;
- a transfer coding other than plain `chunked` (501, RFC 9112 §6.1): the sidecar would
  forward the still-coded bytes as if they were not;
- a `#` in the request target (400): a fragment is not part of a request target
  (RFC 9112 §3.2); the sidecar matches public paths before the `#` while a desk may
  read the path through it (`/assets/#/../admin`).

Each refusal closes the connection: bytes after a message of doubtful framing may
belong to it.
"""

from __future__ import annotations

from aiohttp import HttpVersion10, HttpVersion11, hdrs, web

from sidecar.pages import error_pages
from sidecar.pages.error_pages import PageError


def framing_refusal(request: web.Request) -> PageError | None:
    """Why this request may not go on, or None."""
    version = request.version
    if version != HttpVersion11 and version != HttpVersion10:
        return error_pages.HTTP_VERSION_NOT_SUPPORTED
    headers = request.headers
    if hdrs.TRANSFER_ENCODING in headers:
        codings = headers.getall(hdrs.TRANSFER_ENCODING)
        if version == HttpVersion10:
            return error_pages.CHUNKED_HTTP_1_0
        if ",".join(codings).strip().lower() != "chunked":
            return error_pages.TRANSFER_CODING_NOT_SUPPORTED
    if "#" in request.raw_path:
        return error_pages.FRAGMENT_IN_TARGET
    return None
