"""Redis stops and comes back: fail closed with 503 meanwhile, recover on its own."""

from __future__ import annotations

from pathlib import Path

from sidecar.store.redis_store import RedisStore
from tests.redis_server import RedisProcess
from tests.world import open_world


async def test_redis_outage_fails_closed_and_recovers_without_losing_data(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path)
    await redis.start()
    store = RedisStore.from_url(redis.url)
    try:
        async with open_world(store=store) as world:
            browser = world.browser("alice")
            await world.sign_up(browser, rd="/echo")
            assert (await browser.get("/echo", navigate=False)).status == 200

            await redis.stop()
            async with world.http.get(world.sidecar.admin_url + "/readyz") as ready:
                assert ready.status == 503
            page = await browser.get("/tickets")
            assert page.status == 503
            assert "try again" in page.text.lower()
            assert "Traceback" not in page.text
            api = await browser.get("/api", navigate=False)
            assert api.status == 503
            assert api.json()["error"] == "store_unavailable"
            # Signing in needs the store too: a clear page, not a redirect loop.
            fresh = world.browser("alice")
            assert (await fresh.open("/x")).status == 503
            # Public paths and SSO-less tenants keep flowing.
            assert (await browser.get("/assets/app.css", navigate=False)).status == 200
            plain = world.browser(None)
            plain.host = "plain.example.test"
            assert (await plain.get("/echo", navigate=False)).status == 200
            async with world.http.get(world.sidecar.admin_url + "/metrics") as metrics:
                assert "ticketlog_sso_store_errors_total" in await metrics.text()

            await redis.start()  # same port, same append-only file
            reply = await browser.get("/echo", navigate=False)
            assert reply.status == 200, reply.text
            assert reply.json()["headers"]
            async with world.http.get(world.sidecar.admin_url + "/readyz") as ready:
                assert ready.status == 200
    finally:
        await store.close()
        await redis.stop()
