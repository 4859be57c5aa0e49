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

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SignInCache(Generic[T]):
    def __init__(self, ttl: float, *, max_entries: int = 50_000) -> None:
        self.ttl = ttl
        self._max = max_entries
        # (host, cookie value) -> (deadline, value); the exact cookie string is the key,
        # so a hit implies the cookie's MAC was verified when the entry was made. A plain
        # dict, in the order of the last put (the eviction order): the hot path's get on
        # it is a specialised method call, where OrderedDict's is not.
        self._entries: dict[tuple[str, str], tuple[float, T]] = {}
        self._generation = 0
        # Loads in progress, with the generation they began in (load_once).
        self._loading: dict[tuple[str, str], tuple[int, asyncio.Future[T]]] = {}

    def get(self, host: str, cookie: str, now: float) -> T | None:
        """The entry as of `now`, a time.monotonic() reading: a proxied request passes the
        time it arrived (RequestScope.started), so no clock is read per request."""
        try:
            deadline, value = self._entries[host, cookie]
        except KeyError:  # a miss is followed by a store read: the raise costs nothing beside it
            return None
        if now < deadline:
            return value
        del self._entries[host, cookie]  # expired
        return None

    @property
    def generation(self) -> int:
        """Changes whenever entries are dropped (see put)."""
        return self._generation

    def put(
        self, host: str, cookie: str, value: T, *, unless_dropped_since: int | None = None
    ) -> None:
        """Caches `value`; with `unless_dropped_since` (a generation read before the store
        was asked) only if nothing was dropped meanwhile: a logout on this replica that
        races with a store read must take effect at once, not after the ttl."""
        if self.ttl <= 0:
            return
        if unless_dropped_since is not None and unless_dropped_since != self._generation:
            return
        entries = self._entries
        key = (host, cookie)
        entries.pop(key, None)  # a renewed entry goes last
        entries[key] = (time.monotonic() + self.ttl, value)
        while len(entries) > self._max:
            del entries[next(iter(entries))]  # the least recently put

    async def load_once(self, host: str, cookie: str, load: Callable[[], Awaitable[T]]) -> T:
        """`load()`, shared by every caller for this key while it runs (single flight).

        It runs as a task, so the request that started it going away does not cancel
        it for the others; each caller waits through a shield for the same reason.
        """
        key = (host, cookie)
        running = self._loading.get(key)
        # SECURITY: a load that began before a logout (or any drop) may have read the
        # session before it was deleted: a request that comes after must not join it.
        task: asyncio.Future[T]
        if running is None or running[0] != self._generation:
            task = asyncio.ensure_future(load())
            self._loading[key] = (self._generation, task)
            task.add_done_callback(lambda done: self._loaded(key, done))
        else:
            task = running[1]
        return await asyncio.shield(task)

    def _loaded(self, key: tuple[str, str], task: asyncio.Future[T]) -> None:
        running = self._loading.get(key)
        if running is not None and running[1] is task:
            del self._loading[key]
        if not task.cancelled():
            task.exception()  # marked as retrieved: every waiter may have gone away

    def discard(self, host: str, cookie: str) -> None:
        self._generation += 1
        self._entries.pop((host, cookie), None)

    def discard_where(self, host: str, predicate: Callable[[T], bool]) -> None:
        """Drop every entry of ``host`` matching ``predicate`` (front-channel logout)."""
        self._generation += 1
        for key in [k for k, (_, v) in self._entries.items() if k[0] == host and predicate(v)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
