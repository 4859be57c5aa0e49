"""The in-process sign-in cache never lets a revoked session through past its bound."""

from __future__ import annotations

import asyncio
import time

from sidecar.sessions.redis_store import RedisStore
from tests.helpers import config_from, run_sidecar
from tests.world import Browser, open_world

BOUND = 1.0  # session.cache_ttl in this test


async def test_logout_on_one_replica_takes_effect_on_another_within_the_bound(
    redis_url: str,
) -> None:
    store_a, store_b = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    try:
        async with (
            open_world(
                store=store_a, edit=lambda d: d["session"].update(cache_ttl=f"{BOUND}s")
            ) as world,
            run_sidecar(config_from(world.document), store=store_b) as replica_b,
        ):
            on_a = world.browser("alice")
            await world.sign_up(on_a, rd="/echo")
            on_b = Browser(
                world.http, replica_b.url, world.emulator_url, cookies=dict(on_a.cookies)
            )
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
    finally:
        await store_a.close()
        await store_b.close()


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
