"""Attacks on the signup gate: brute force across replicas, reused codes, mail flooding."""

from __future__ import annotations

import asyncio

from sidecar.signup import AccountStore
from tests.world import HOST, Browser, Reply, World, open_world, two_replicas


async def at_step_two(world: World, browser: Browser) -> Reply:
    page = await browser.open("/echo")
    sent = await browser.post(
        "/.sso/signup", {"csrf_token": page.form_value("csrf_token"), "rd": "/echo"}
    )
    assert sent.status == 303, sent.text[:300]
    return await browser.follow(sent)


async def verification_results(world: World) -> dict[str, float]:
    """This tenant's code checks by result, from the sidecar's /metrics."""
    async with world.http.get(world.sidecar.admin_url + "/metrics") as reply:
        text = await reply.text()
    results: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("ticketlog_sso_verifications_total{") and f'tenant="{HOST}"' in line:
            result = line.split('result="', 1)[1].split('"', 1)[0]
            results[result] = float(line.rsplit(" ", 1)[1])
    return results


async def test_brute_force_is_counted_across_replicas(redis_url: str) -> None:
    async with two_replicas(redis_url) as (world, replica_b):
        on_a = world.browser("alice")
        page = await at_step_two(world, on_a)
        csrf = page.form_value("csrf_token")
        code = world.smtp.last_code()
        wrong = "000000" if code != "000000" else "111111"
        on_b = Browser(world.http, replica_b.url, world.emulator_url, cookies=on_a.cookies)
        statuses = []
        for attempt in range(5):  # alternate replicas: the count is in Redis, not per process
            replica = on_a if attempt % 2 == 0 else on_b
            reply = await replica.submit(
                "/.sso/verify", {"csrf_token": csrf, "code": wrong, "rd": "/echo"}
            )
            statuses.append(reply.status)
        assert statuses == [400, 400, 400, 400, 429]
        for replica in (on_a, on_b):
            reply = await replica.submit(
                "/.sso/verify", {"csrf_token": csrf, "code": code, "rd": "/echo"}
            )
            assert reply.status == 429
        assert await AccountStore(world.sidecar.runtime.sso.store).list(HOST) == []


async def test_parallel_guesses_cannot_exceed_the_attempt_limit() -> None:
    async with open_world() as world:
        browser = world.browser("alice")
        page = await at_step_two(world, browser)
        csrf = page.form_value("csrf_token")
        code = world.smtp.last_code()
        guesses = [f"{n:06d}" for n in range(30) if f"{n:06d}" != code][:20]
        before = await verification_results(world)
        replies = await asyncio.gather(
            *(
                browser.post("/.sso/verify", {"csrf_token": csrf, "code": g, "rd": "/echo"})
                for g in guesses
            )
        )
        assert {r.status for r in replies} == {303}  # each shows its outcome on the screen
        after = await verification_results(world)
        assert after.get("wrong", 0) - before.get("wrong", 0) == 4  # 4 wrong answers, then void
        assert after.get("locked", 0) - before.get("locked", 0) == 16
        assert (
            await browser.submit("/.sso/verify", {"csrf_token": csrf, "code": code, "rd": "/echo"})
        ).status == 429


async def test_a_used_code_cannot_be_used_again() -> None:
    async with open_world() as world:
        browser = world.browser("alice")
        page = await at_step_two(world, browser)
        csrf = page.form_value("csrf_token")
        code = world.smtp.last_code()
        assert (
            await browser.post("/.sso/verify", {"csrf_token": csrf, "code": code, "rd": "/echo"})
        ).status == 303
        # The operator deletes the account: the old code must not recreate it.
        store = world.sidecar.runtime.store
        [account] = await AccountStore(store).list(HOST)
        await AccountStore(store).delete(HOST, account.user_key)
        world.sidecar.runtime.sso.cache.discard_where(HOST, lambda state: True)
        again = await browser.submit(
            "/.sso/verify", {"csrf_token": csrf, "code": code, "rd": "/echo"}
        )
        assert again.status == 400
        assert "expired" in again.text
        assert await AccountStore(store).list(HOST) == []


async def test_resends_cannot_flood_a_mailbox() -> None:
    def limits(document: dict[str, object]) -> None:
        document["signup"] = {"resend_cooldown": "0.1s", "max_sends_per_hour": 3}

    async with open_world(edit=limits) as world:
        browser = world.browser("alice")
        page = await browser.open("/echo")
        csrf = page.form_value("csrf_token")
        statuses = []
        for _ in range(5):
            await asyncio.sleep(0.15)
            reply = await browser.submit("/.sso/signup", {"csrf_token": csrf, "rd": "/echo"})
            statuses.append(reply.status)
        assert statuses == [200, 200, 200, 429, 429]
        assert len(world.smtp.envelopes) == 3


async def test_one_client_ip_cannot_mail_many_users() -> None:
    def limits(document: dict[str, object]) -> None:
        document["signup"] = {"max_sends_per_hour_per_ip": 2}

    async with open_world(edit=limits) as world:
        statuses = []
        for user in ("alice", "erin", "bob"):
            browser = world.browser(user)
            page = await browser.open("/echo")
            form = {"csrf_token": page.form_value("csrf_token"), "rd": "/echo"}
            # As a browser posts the form: the prefilled address, or bob's typed one.
            form["email"] = "bob@contoso.com" if user == "bob" else page.form_value("email")
            statuses.append((await browser.submit("/.sso/signup", form)).status)
        assert statuses == [200, 200, 429]
        assert len(world.smtp.envelopes) == 2
