"""The in-process sign-in cache never lets a revoked session through past its bound."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from sidecar.store.memory import MemoryStore
from sidecar.store.redis_store import RedisStore
from tests.world import Browser, open_world, two_replicas

BOUND = 1.0  # session.cache_ttl in this test


async def test_logout_on_one_replica_takes_effect_on_another_within_the_bound(
    redis_url: str,
) -> None:
    async with two_replicas(
        redis_url, edit=lambda d: d["session"].update(cache_ttl=f"{BOUND}s")
    ) as (world, replica_b):
        on_a = world.browser("alice")
        await world.sign_up(on_a, rd="/echo")
        on_b = Browser(world.http, replica_b.url, world.emulator_url, cookies=dict(on_a.cookies))
        assert (await on_b.get("/echo", navigate=False)).status == 200  # now cached on B
        assert len(replica_b.runtime.sso.cache) == 1

        out = await on_a.get("/.sso/logout")
        assert out.status == 303
        revoked_at = time.monotonic()
        # On A itself the logout is immediate.
        on_a.cookies.update(on_b.cookies)
        assert (await on_a.get("/echo", navigate=False)).status == 401
        # On B, the session ends within the documented bound, never later.
        while (await on_b.get("/echo", navigate=False)).status == 200:
            # Slack for the request itself: the entry expired BOUND after it was made,
            # which was before the logout.
            assert time.monotonic() - revoked_at <= BOUND + 0.5
            await asyncio.sleep(0.05)
        assert (await on_b.get("/echo", navigate=False)).status == 401


async def test_frontchannel_logout_drops_the_local_cache_at_once(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    try:
        async with open_world(store=store) as world:  # default bound: 5 s
            browser = world.browser("alice")
            await world.sign_up(browser, rd="/echo")
            assert (await browser.get("/echo", navigate=False)).status == 200  # cached now
            [index] = await store.keys_with_prefix("sid:")
            entra_sid = index.rsplit(":", 1)[1]
            reply = await world.browser(None).get(
                f"/.sso/frontchannel-logout?sid={entra_sid}", navigate=False
            )
            assert reply.status == 200
            assert (await browser.get("/echo", navigate=False)).status == 401
    finally:
        await store.close()


class WatchedStore(MemoryStore):
    """The real memory store, with its session reads counted and, on demand, the answer
    to the next one held back (read, but not yet returned)."""

    def __init__(self) -> None:
        super().__init__()
        self.session_reads = 0
        self.hold_next: asyncio.Event | None = None

    async def get(self, key: str) -> bytes | None:
        value = await super().get(key)
        if key.startswith("session:"):
            self.session_reads += 1
            hold, self.hold_next = self.hold_next, None
            if hold is not None:
                await hold.wait()
        return value


@contextlib.asynccontextmanager
async def signed_in_with_a_slow_store() -> AsyncIterator[
    tuple[Browser, WatchedStore, asyncio.Event]
]:
    """Alice signed in, her cache entry gone (as when it expires) and the store's answer
    to the next session read held until the event is set."""
    store = WatchedStore()
    async with open_world(store=store) as world:
        browser = world.browser("alice")
        await world.sign_up(browser, rd="/echo")
        world.sidecar.runtime.sso.cache._entries.clear()
        store.session_reads = 0
        release = store.hold_next = asyncio.Event()
        yield browser, store, release


async def read_begun(store: WatchedStore) -> None:
    while store.session_reads == 0:
        await asyncio.sleep(0.01)


async def test_concurrent_requests_share_one_store_read_when_the_cache_is_cold() -> None:
    async with signed_in_with_a_slow_store() as (browser, store, release):
        requests = [asyncio.ensure_future(browser.get("/echo", navigate=False)) for _ in range(20)]
        await asyncio.sleep(0.3)  # every request has arrived meanwhile
        release.set()
        assert [(await r).status for r in requests] == [200] * 20
        assert store.session_reads == 1


async def test_a_logout_racing_a_store_read_is_not_undone_by_the_cache() -> None:
    async with signed_in_with_a_slow_store() as (browser, store, release):
        # A request has read the session from the store, and is slow to go on ...
        in_flight = asyncio.ensure_future(browser.get("/echo", navigate=False))
        await read_begun(store)
        # ... the user signs out on this replica meanwhile ...
        kept = dict(browser.cookies)  # a copy of the cookie outlives the logout
        assert (await browser.get("/.sso/logout")).status == 303
        release.set()
        assert (await in_flight).status == 200  # it was read before the logout
        # ... and what that earlier read found must not be cached and honoured now.
        browser.cookies.update(kept)
        assert (await browser.get("/echo", navigate=False)).status == 401


async def test_a_request_after_a_logout_never_joins_a_store_read_from_before_it() -> None:
    """Found by review: single flight must not hand a request that comes after a logout
    the answer of a store read that began before it."""
    async with signed_in_with_a_slow_store() as (browser, store, release):
        kept = dict(browser.cookies)
        in_flight = asyncio.ensure_future(browser.get("/echo", navigate=False))
        await read_begun(store)
        assert (await browser.get("/.sso/logout")).status == 303
        browser.cookies.update(kept)  # a copy of the cookie, used after the logout
        after = asyncio.ensure_future(browser.get("/echo", navigate=False))
        await asyncio.sleep(0.2)
        release.set()
        assert (await in_flight).status == 200  # read before the logout
        assert (await after).status == 401
