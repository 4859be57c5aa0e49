"""A bounded in-process cache of validated sign-ins: the fast authenticated path.

Reading the session and the account from Redis on every proxied request costs
two round trips; this cache answers repeat requests from memory for at most
`session.cache_ttl` (default 5 s). That is the documented staleness bound: a
logout, a front-channel logout or an account deletion on ANOTHER replica takes
effect here within it. On this replica they take effect at once (the entry is
dropped). Only complete sign-ins (session + verified account, no pending email
change) are cached, so signup progress is never hidden by the cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SignInCache(Generic[T]):
    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._clock = clock
        # (host, cookie value) -> (deadline, value); the exact cookie string is the key,
        # so a hit implies the cookie's MAC was verified when the entry was made.
        self._entries: OrderedDict[tuple[str, str], tuple[float, T]] = OrderedDict()

    def get(self, host: str, cookie: str) -> T | None:
        key = (host, cookie)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, host: str, cookie: str, value: T) -> None:
        if self.ttl <= 0:
            return
        self._entries[(host, cookie)] = (self._clock() + self.ttl, value)
        self._entries.move_to_end((host, cookie))
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def discard(self, host: str, cookie: str) -> None:
        self._entries.pop((host, cookie), None)

    def discard_where(self, host: str, predicate: Callable[[T], bool]) -> None:
        """Drop every entry of ``host`` matching ``predicate`` (front-channel logout)."""
        for key in [k for k, (_, v) in self._entries.items() if k[0] == host and predicate(v)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
