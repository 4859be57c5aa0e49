"""Redis store: sessions, codes and accounts shared by every replica.

Every primitive is one command or one Lua script, so the limits built on it
(single-use codes, attempt counters, create-once accounts) hold across replicas.
Every key that is meant to expire is written with its TTL in the same command.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from sidecar.store import Members, Store, StoreUnavailable

KEY_PREFIX = "tlsso:"

# One quick retry then fail closed: a request must not hang for seconds while Redis is down.
_TIMEOUTS: dict[str, Any] = {
    "socket_timeout": 2.0,
    "socket_connect_timeout": 2.0,
    "health_check_interval": 10,
    "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
}

_INCR_WITH_TTL = """
local v = redis.call('INCR', KEYS[1])
if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return v
"""

_SADD_WITH_TTL = """
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""

P = ParamSpec("P")
R = TypeVar("R")


def _unavailable_on_error(
    method: Callable[P, Awaitable[R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0]
        assert isinstance(store, Store)
        try:
            result = await method(*args, **kwargs)
        except (RedisError, OSError, TimeoutError) as exc:
            store.healthy = False
            # The exception text can name the host but never carries the URL's password.
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        store.healthy = True
        return result

    return wrapper


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore(Store):
    def __init__(self, client: aioredis.Redis, *, replicas_to_wait_for: int = 0) -> None:
        super().__init__()
        self._redis = client
        self._wait_replicas = replicas_to_wait_for
        self._incr = client.register_script(_INCR_WITH_TTL)
        self._sadd = client.register_script(_SADD_WITH_TTL)

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        return cls(aioredis.Redis.from_url(url, **_TIMEOUTS))

    @classmethod
    def from_sentinel(
        cls, hosts: list[tuple[str, int]], service: str, password: str | None = None
    ) -> RedisStore:
        sentinel = Sentinel(hosts, password=password, **_TIMEOUTS)  # type: ignore[no-untyped-call]
        # SECURITY: an account must survive a failover, so account writes wait for one
        # replica to acknowledge them (Redis WAIT) before the user is told they exist.
        return cls(sentinel.master_for(service), replicas_to_wait_for=1)

    @staticmethod
    def _k(key: str) -> str:
        return KEY_PREFIX + key

    async def ping(self) -> bool:
        try:
            self.healthy = bool(await self._redis.ping())
        except (RedisError, OSError, TimeoutError):
            self.healthy = False
        return self.healthy

    @_unavailable_on_error
    async def get(self, key: str) -> bytes | None:
        return _as_bytes(await self._redis.get(self._k(key)))

    @_unavailable_on_error
    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        await self._redis.set(self._k(key), value, px=_ms(ttl) if ttl is not None else None)

    @_unavailable_on_error
    async def create(
        self, key: str, value: bytes, ttl: float | None, *, durable: bool = False
    ) -> bool:
        created = await self._redis.set(
            self._k(key), value, nx=True, px=_ms(ttl) if ttl is not None else None
        )
        if created and durable and self._wait_replicas:
            acked = await self._redis.execute_command(  # type: ignore[no-untyped-call]
                "WAIT", self._wait_replicas, 2000
            )
            if int(acked) < self._wait_replicas:
                raise StoreUnavailable("redis: write not acknowledged by a replica")
        return bool(created)

    @_unavailable_on_error
    async def take(self, key: str) -> bytes | None:
        return _as_bytes(await self._redis.getdel(self._k(key)))

    @_unavailable_on_error
    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._redis.delete(*(self._k(k) for k in keys)))

    @_unavailable_on_error
    async def incr(self, key: str, ttl: float) -> int:
        return int(await self._incr(keys=[self._k(key)], args=[_ms(ttl)]))

    @_unavailable_on_error
    async def ttl(self, key: str) -> float | None:
        left = int(await self._redis.pttl(self._k(key)))
        return left / 1000 if left >= 0 else None

    @_unavailable_on_error
    async def add_member(self, key: str, member: str, ttl: float) -> None:
        await self._sadd(keys=[self._k(key)], args=[member, _ms(ttl)])

    @_unavailable_on_error
    async def members(self, key: str) -> Members:
        raw = await self._redis.smembers(self._k(key))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in raw}

    @_unavailable_on_error
    async def remove_member(self, key: str, member: str) -> None:
        await self._redis.srem(self._k(key), member)

    @_unavailable_on_error
    async def keys_with_prefix(self, prefix: str) -> list[str]:
        pattern = self._k(_escape_glob(prefix)) + "*"
        found: list[str] = []
        async for raw in self._redis.scan_iter(match=pattern, count=500):
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            found.append(name[len(KEY_PREFIX) :])
        return sorted(found)

    async def close(self) -> None:
        await self._redis.aclose()


def _escape_glob(text: str) -> str:
    # Tenant hosts and user keys never hold glob characters, but SCAN must not widen on one.
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value
