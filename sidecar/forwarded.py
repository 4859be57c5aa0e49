"""Who sent a request: the client address, the public scheme and the request id, read
from the connection and, behind a trusted proxy only, from its X-Forwarded-* headers."""

from __future__ import annotations

import ipaddress
import itertools
import re
import secrets
from collections.abc import Sequence
from typing import NamedTuple

from aiohttp import web
from yarl import URL

from sidecar.headers import FORWARDED_FOR, FORWARDED_PROTO, REQUEST_ID, last_listed

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # the whole value (fullmatch)

# Request ids: a random per-process prefix and a counter. Unique across replicas and
# restarts in practice, and without the system call uuid4() makes per request.
_ID_PREFIX = secrets.token_hex(6)
_ids = itertools.count(1)


class Sender(NamedTuple):
    client_ip: str
    scheme: str  # the public scheme
    request_id: str
    peer_trusted: bool  # the connection comes from server.trusted_proxies


def sender_of(request: web.Request, trusted_proxies: Sequence[Network]) -> Sender:
    peer = request.remote or ""
    # SECURITY: forwarding headers are believed only from a configured proxy; anyone
    # else could claim any client address or https (spoofed X-Forwarded-*).
    if not _is_trusted(peer, trusted_proxies):
        return Sender(peer, request.scheme, next_request_id(), False)
    headers = request.headers
    client_ip = _client_ip(peer, headers.getall(FORWARDED_FOR, []), trusted_proxies)
    proto = last_listed(headers, FORWARDED_PROTO).lower()
    scheme = proto if proto in ("http", "https") else request.scheme
    given_id = headers.get(REQUEST_ID, "")
    # fullmatch: `$` would also let a value end in a line feed.
    request_id = given_id if _REQUEST_ID.fullmatch(given_id) else next_request_id()
    return Sender(client_ip, scheme, request_id, True)


def next_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):010x}"


def origin_form(raw_target: str) -> str:
    """The path and query of a request target, also for absolute-form (RFC 9112 §3.2.2)."""
    if raw_target.startswith("/"):
        return raw_target
    url = URL(raw_target, encoded=True)
    return url.raw_path_qs if url.is_absolute() else "/"


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    if not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def _client_ip(peer: str, forwarded_for: list[str], trusted: Sequence[Network]) -> str:
    """The first address, from the right, that is not a trusted proxy (the real client)."""
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return hops[0] if hops else peer
