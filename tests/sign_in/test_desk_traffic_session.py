"""Desk traffic reads the session without aiohttp-session's middleware (sidecar.app)."""

from __future__ import annotations

from aiohttp import web
from aiohttp_session import STORAGE_KEY

from tests.world import Browser, two_replicas


async def test_a_replica_s_first_read_of_a_session_on_desk_traffic_signs_the_user_in(
    redis_url: str,
) -> None:
    """A user signed in on replica A sends their first request to replica B for a desk
    page: B reads the session from the store on the proxied path, where aiohttp-session's
    middleware does not run, and forwards the request signed in. The request key that
    read sets is aiohttp-session's plain string key, which aiohttp warns about once per
    process; the warning is the library's and is silenced (tests run with warnings as
    errors, so a warning here would be a 500)."""
    async with two_replicas(redis_url) as (world, replica_b):
        on_a = world.browser("alice")
        await world.sign_up(on_a, rd="/echo")
        # As in a fresh process: aiohttp has not yet warned about this key.
        web.BaseRequest._seen_str_keys.discard(STORAGE_KEY)
        on_b = Browser(world.http, replica_b.url, world.emulator_url, cookies=dict(on_a.cookies))
        assert len(replica_b.runtime.sso.cache) == 0
        reply = await on_b.get("/echo", navigate=False)
        assert reply.status == 200, reply.text
        assert "alice" in reply.text.lower()
        assert len(replica_b.runtime.sso.cache) == 1
        # The desk's answer carries no session cookie of ours: nothing was saved.
        assert not any(
            value.startswith("tlsso") for value in reply.headers.getall("Set-Cookie", [])
        )
