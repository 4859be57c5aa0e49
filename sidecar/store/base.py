"""The one storage interface behind sessions, login state, verification codes and accounts.

Higher layers (sessions, signup codes, accounts) are written against these few
primitives only, so the memory and Redis stores behave the same: both pass
tests/store/test_store_contract.py. Every primitive that must be atomic
across replicas (create-once, take-once, counters) is one primitive here, so
the Redis implementation can make it one Redis command or script.
"""

from __future__ import annotations

import abc

# An alias, because inside the class body `set` names the method.
Members = set[str]


class StoreUnavailable(Exception):
    """The store could not be reached or did not answer in time.

    Callers fail closed on it: the request gets a 503 page, never a pass.
    """


class Store(abc.ABC):
    """Key/value store with expiry. Keys are str, values bytes; TTLs are seconds."""

    #: False after the last operation or ping failed: in-process caches must not
    #: answer for the store while it is down (fail closed). Set on the instance
    #: (__init__), where the hot path's read of it is a specialised one.
    healthy: bool

    def __init__(self) -> None:
        self.healthy = True

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the store answers; never raises."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Write a value; ``ttl=None`` keeps it until deleted (accounts only)."""

    @abc.abstractmethod
    async def create(
        self, key: str, value: bytes, ttl: float | None, *, durable: bool = False
    ) -> bool:
        """Write only when the key does not exist; True when this call created it.

        ``durable``: on a replicated store, wait until a replica has the write before
        returning, so a failover cannot lose it (accounts).
        """

    @abc.abstractmethod
    async def take(self, key: str) -> bytes | None:
        """Get and delete in one step: at most one caller ever receives a value."""

    @abc.abstractmethod
    async def delete(self, *keys: str) -> int:
        """Delete keys; returns how many existed."""

    @abc.abstractmethod
    async def incr(self, key: str, ttl: float) -> int:
        """Add one to a counter; the TTL starts when the counter is created."""

    @abc.abstractmethod
    async def ttl(self, key: str) -> float | None:
        """Seconds left before the key expires; None when it is missing or never expires."""

    @abc.abstractmethod
    async def add_member(self, key: str, member: str, ttl: float) -> None:
        """Add to a set and push its expiry to at least ``ttl`` from now."""

    @abc.abstractmethod
    async def members(self, key: str) -> Members: ...

    @abc.abstractmethod
    async def remove_member(self, key: str, member: str) -> None: ...

    @abc.abstractmethod
    async def keys_with_prefix(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix`` (operator commands only, never a request path)."""

    @abc.abstractmethod
    async def close(self) -> None: ...
