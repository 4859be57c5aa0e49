"""The one contract every session store passes: memory and real Redis alike."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.store import Store, StoreUnavailable
from sidecar.store.redis_store import RedisStore


async def test_set_get_delete(any_store: Store) -> None:
    assert await any_store.get("a") is None
    await any_store.set("a", b"1", ttl=60)
    assert await any_store.get("a") == b"1"
    assert await any_store.delete("a", "missing") == 1
    assert await any_store.get("a") is None


async def test_values_expire(any_store: Store) -> None:
    await any_store.set("short", b"x", ttl=0.05)
    assert await any_store.get("short") == b"x"
    await asyncio.sleep(0.12)
    assert await any_store.get("short") is None


async def test_ttl_reports_expiry_and_none_for_permanent(any_store: Store) -> None:
    await any_store.set("t", b"x", ttl=100)
    left = await any_store.ttl("t")
    assert left is not None
    assert 90 < left <= 100
    await any_store.set("forever", b"x", ttl=None)
    assert await any_store.ttl("forever") is None
    assert await any_store.get("forever") == b"x"


async def test_create_only_once_under_concurrency(any_store: Store) -> None:
    results = await asyncio.gather(*(any_store.create("acct", bytes([i]), None) for i in range(10)))
    assert results.count(True) == 1
    winner = results.index(True)
    assert await any_store.get("acct") == bytes([winner])


async def test_take_gives_the_value_to_one_caller_only(any_store: Store) -> None:
    await any_store.set("code", b"v", ttl=60)
    taken = await asyncio.gather(*(any_store.take("code") for _ in range(5)))
    assert taken.count(b"v") == 1
    assert await any_store.get("code") is None


async def test_incr_counts_and_expires_from_creation(any_store: Store) -> None:
    assert [await any_store.incr("n", ttl=0.2) for _ in range(3)] == [1, 2, 3]
    await asyncio.sleep(0.3)
    assert await any_store.incr("n", ttl=0.2) == 1


async def test_sets_add_remove_and_extend_expiry(any_store: Store) -> None:
    await any_store.add_member("s", "a", ttl=0.2)
    await any_store.add_member("s", "b", ttl=60)
    assert await any_store.members("s") == {"a", "b"}
    await any_store.remove_member("s", "a")
    await asyncio.sleep(0.3)
    assert await any_store.members("s") == {"b"}
    assert await any_store.members("none") == set()


async def test_keys_with_prefix_lists_only_that_prefix(any_store: Store) -> None:
    await any_store.set("account:h1:x", b"1", None)
    await any_store.set("account:h1:y", b"1", None)
    await any_store.set("account:h2:z", b"1", None)
    await any_store.set("account:h1*", b"1", None)
    assert await any_store.keys_with_prefix("account:h1:") == ["account:h1:x", "account:h1:y"]


async def test_ping(any_store: Store) -> None:
    assert await any_store.ping() is True


async def test_redis_outage_raises_store_unavailable_and_ping_is_false() -> None:
    # A port nothing listens on: the store must fail closed quickly, not hang.
    store = RedisStore.from_url("redis://127.0.0.1:1/0")
    try:
        assert await store.ping() is False
        with pytest.raises(StoreUnavailable):
            await store.get("k")
    finally:
        await store.close()
