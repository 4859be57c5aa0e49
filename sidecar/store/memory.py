"""In-process store: the single-replica default (`session.store: memory`).

Everything lives in this process and ends with it. Expiry is checked on read and
swept lazily, so an idle sidecar does not hold expired sessions for ever.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sidecar.store import Members, Store

_SWEEP_EVERY = 1024  # writes between sweeps of expired keys


class MemoryStore(Store):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._values: dict[str, bytes | Members | int] = {}
        self._expiry: dict[str, float] = {}
        self._writes = 0

    def _alive(self, key: str) -> bool:
        deadline = self._expiry.get(key)
        if deadline is not None and deadline <= self._clock():
            self._values.pop(key, None)
            self._expiry.pop(key, None)
            return False
        return key in self._values

    def _put(self, key: str, value: bytes | Members | int, ttl: float | None) -> None:
        self._values[key] = value
        if ttl is None:
            self._expiry.pop(key, None)
        else:
            self._expiry[key] = self._clock() + ttl
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep()

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, deadline in self._expiry.items() if deadline <= now]:
            self._values.pop(key, None)
            self._expiry.pop(key, None)

    async def ping(self) -> bool:
        return True

    async def get(self, key: str) -> bytes | None:
        if not self._alive(key):
            return None
        value = self._values[key]
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._put(key, value, ttl)

    async def create(
        self, key: str, value: bytes, ttl: float | None, *, durable: bool = False
    ) -> bool:
        if self._alive(key):
            return False
        self._put(key, value, ttl)
        return True

    async def take(self, key: str) -> bytes | None:
        value = await self.get(key)
        if value is not None:
            self._values.pop(key, None)
            self._expiry.pop(key, None)
        return value

    async def delete(self, *keys: str) -> int:
        existed = 0
        for key in keys:
            if self._alive(key):
                existed += 1
            self._values.pop(key, None)
            self._expiry.pop(key, None)
        return existed

    async def incr(self, key: str, ttl: float) -> int:
        if not self._alive(key):
            self._put(key, 1, ttl)
            return 1
        current = self._values[key]
        count = (current if isinstance(current, int) else 0) + 1
        self._values[key] = count
        return count

    async def ttl(self, key: str) -> float | None:
        if not self._alive(key) or key not in self._expiry:
            return None
        return max(0.0, self._expiry[key] - self._clock())

    async def add_member(self, key: str, member: str, ttl: float) -> None:
        current = self._values.get(key) if self._alive(key) else None
        members = current if isinstance(current, set) else set()
        members.add(member)
        left = await self.ttl(key) or 0.0
        self._put(key, members, max(ttl, left))

    async def members(self, key: str) -> Members:
        if not self._alive(key):
            return set()
        value = self._values[key]
        return set(value) if isinstance(value, set) else set()

    async def remove_member(self, key: str, member: str) -> None:
        if self._alive(key):
            value = self._values[key]
            if isinstance(value, set):
                value.discard(member)

    async def keys_with_prefix(self, prefix: str) -> list[str]:
        return sorted(k for k in list(self._values) if k.startswith(prefix) and self._alive(k))

    async def close(self) -> None:
        self._values.clear()
        self._expiry.clear()
