"""Host header -> tenant, by the contract's rule ("Which tenant, and which paths")."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from yarl import URL

from sidecar.config.model import TenantConfig, normalize_host
from sidecar.desk_wire import Origin

if TYPE_CHECKING:
    from sidecar.oidc.provider import EntraProvider

# A reg-name or bracketed IPv6 literal, then an optional port (RFC 9110 §7.2, RFC 3986 §3.2.2).
_HOST_HEADER = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::(\d{1,5}))?$")


class BadHost(ValueError):
    """The Host header is missing, empty, repeated or malformed: 400."""


@dataclass(frozen=True, slots=True)
class RequestHost:
    name: str  # normalised: lower case, no port, no trailing dot
    port: str | None


# How many parsed Host values are kept. The same few real values arrive again and
# again; the least recently used goes first, so values nobody repeats (a client sending
# junk ones) push out only each other, and a real host first seen after such a flood is
# still kept.
HOST_CACHE_SIZE = 4096


def parse_host(values: list[str]) -> RequestHost:
    """Parse the Host header values of one request.

    SECURITY: exactly one Host is accepted (RFC 9112 §3.2: a repeated Host is a
    400), so a second Host header cannot pick another tenant than the one a
    front proxy routed on.
    """
    if len(values) != 1:
        raise BadHost("missing Host header" if not values else "repeated Host header")
    return _parse_host_value(values[0])


@lru_cache(maxsize=HOST_CACHE_SIZE)
def _parse_host_value(raw: str) -> RequestHost:
    # Pure, so its answers can be cached; a malformed value raises and is not cached.
    value = raw.strip()
    match = _HOST_HEADER.match(value)
    if not value or not match:
        raise BadHost("malformed Host header")
    name = normalize_host(match.group(1))
    if not name or name.startswith(".") or name.endswith(".") or ".." in name:
        raise BadHost("malformed Host header")
    return RequestHost(name=name, port=match.group(2))


# The cache's hits, misses, bound and size, for tests and diagnostics to read without
# reaching into the module's private names.
host_cache_info = _parse_host_value.cache_info


class LazySso:
    """A tenant's sign-in provider, built at its first use.

    With 10,000 tenants most are idle on any one replica: a provider (its discovery
    and key caches) costs memory and start-up time only once someone signs in. A
    reload hands the same LazySso to the new Tenant when the sso block is unchanged,
    so the discovery and keys already fetched are kept.
    """

    __slots__ = ("_make", "_provider")

    def __init__(self, make: Callable[[], EntraProvider]) -> None:
        self._make = make
        self._provider: EntraProvider | None = None

    def get(self) -> EntraProvider:
        if self._provider is None:
            self._provider = self._make()
        return self._provider

    @property
    def built(self) -> EntraProvider | None:
        """The provider when it has been built, else None (nothing to close)."""
        return self._provider


@dataclass(frozen=True)
class Tenant:
    """One desk: its configuration plus what is derived from it once, not per request."""

    config: TenantConfig
    upstream: URL | None  # None: forward-auth only, nothing is proxied
    # For tenants with an sso block: the OIDC provider, built on first use.
    lazy_sso: LazySso | None = field(default=None, compare=False)
    # Read on every request, so derived once here as plain instance attributes: Python
    # 3.11 specialises reads of those, but neither of a cached_property (which also
    # turns every other attribute read of the object into a dict lookup, once it has
    # stored its value) nor of the pydantic config's fields (pydantic's __getattr__).
    host: str = field(init=False, compare=False)
    has_sso: bool = field(init=False, compare=False)
    # False for a forward-auth-only tenant: the sidecar answers /.sso/* alone.
    proxies: bool = field(init=False, compare=False)
    public_paths: tuple[str, ...] = field(init=False, compare=False)
    logout_paths: tuple[str, ...] = field(init=False, compare=False)
    # The desk's address for the upstream pool, and scheme://host[:port] to append
    # request targets to as they are (WebSocket); None when nothing is proxied.
    origin: Origin | None = field(init=False, compare=False)
    upstream_origin: str | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        derive = object.__setattr__  # the dataclass is frozen
        derive(self, "host", self.config.host)
        derive(self, "has_sso", self.config.sso is not None)
        derive(self, "proxies", self.upstream is not None)
        derive(self, "public_paths", self.config.public_paths)
        derive(self, "logout_paths", self.config.logout_paths)
        desk = None if self.upstream is None else _desk_address(self.upstream)
        derive(self, "origin", None if desk is None else desk[0])
        derive(self, "upstream_origin", None if desk is None else desk[1])

    @property
    def sso(self) -> EntraProvider | None:
        """The sign-in provider (None without an sso block)."""
        return None if self.lazy_sso is None else self.lazy_sso.get()


@lru_cache(maxsize=4096)
def _desk_address(upstream: URL) -> tuple[Origin, str]:
    # Tenants of one desk pod mostly share its upstream: made once for all of them.
    return Origin.of(upstream), str(upstream.origin())


class TenantTable:
    """The tenants by host; replaced whole on a config reload, never edited in place."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self._by_host = {t.host: t for t in tenants}

    def lookup(self, host: RequestHost) -> Tenant | None:
        return self._by_host.get(host.name)

    def get(self, host: str) -> Tenant | None:
        """The tenant of a configured (normalised) host name."""
        return self._by_host.get(host)

    def __iter__(self) -> Iterator[Tenant]:
        return iter(self._by_host.values())

    def __len__(self) -> int:
        return len(self._by_host)


class TenantTableRef:
    """The current table; a config reload swaps ``table`` whole, so a request sees one table."""

    def __init__(self, table: TenantTable) -> None:
        self.table = table
