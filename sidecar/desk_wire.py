"""Plain values of the desk's wire format, shared by the desk client and its callers.

The desk client (sidecar.upstream) owns connections and parsing; the tenant table
names a desk's address and the identity step serialises the identity headers once.
Those two need only these values, not the client, so they live here and import
nothing of ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from multidict import CIMultiDict
from yarl import URL


class UnsendableRequest(ValueError):
    """The request head would not be one valid HTTP/1.1 head; nothing was sent."""


@dataclass(frozen=True, slots=True)
class Origin:
    """A desk's address: the key of its idle connections in the desk client's pool."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: URL) -> Origin:
        assert url.host is not None
        assert url.port is not None
        return cls(url.scheme, url.host, url.port)


def only_line_ends(text: str, lines: int) -> bool:
    """SECURITY: header injection and request splitting (RFC 9112 §2.2, §5): the only CR
    and LF in `text` are the ends of its `lines` lines, and there is no NUL."""
    return text.count("\n") == lines and text.count("\r") == lines and "\0" not in text


@dataclass(frozen=True, slots=True)
class HeadBlock:
    """Header lines serialised and checked once, for a set sent on many requests
    (the identity headers of a signed-in user), to end a request head with."""

    # The lines, then the empty line that ends the head: a request head is its own
    # lines and this, joined once.
    closing: bytes

    @classmethod
    def of(cls, headers: CIMultiDict[str]) -> HeadBlock:
        text = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if not only_line_ends(text, len(headers)):
            raise UnsendableRequest("a header has a line break or NUL")
        return cls(text.encode("utf-8", "surrogateescape") + b"\r\n")
