"""The in-process sign-in cache: bounded, least recently stored out first, per host."""

from __future__ import annotations

import time

from sidecar.sign_in.cache import SignInCache


def test_the_bound_holds_and_the_least_recently_stored_entry_goes_first() -> None:
    cache: SignInCache[str] = SignInCache(60, max_entries=3)
    now = time.monotonic()
    for n in range(3):
        cache.put("desk.test", f"cookie-{n}", f"state-{n}")
    cache.put("desk.test", "cookie-0", "state-0 renewed")  # renewed: now the newest
    cache.put("desk.test", "cookie-3", "state-3")

    assert len(cache) == 3
    assert cache.get("desk.test", "cookie-1", now) is None  # the oldest went
    assert cache.get("desk.test", "cookie-0", now) == "state-0 renewed"
    assert cache.get("desk.test", "cookie-2", now) == "state-2"
    assert cache.get("desk.test", "cookie-3", now) == "state-3"


def test_a_flood_of_new_cookies_keeps_the_cache_at_its_bound() -> None:
    cache: SignInCache[str] = SignInCache(60, max_entries=100)
    for n in range(10_000):
        cache.put("desk.test", f"cookie-{n}", "state")
    assert len(cache) == 100
    assert cache.get("desk.test", "cookie-9999", time.monotonic()) == "state"


def test_an_entry_answers_for_its_own_host_only_and_not_past_its_deadline() -> None:
    cache: SignInCache[str] = SignInCache(5)
    cache.put("a.test", "same-cookie", "signed in at a")
    now = time.monotonic()
    assert cache.get("a.test", "same-cookie", now) == "signed in at a"
    assert cache.get("b.test", "same-cookie", now) is None
    assert cache.get("a.test", "same-cookie", now + 6) is None
    assert len(cache) == 0  # the expired entry was dropped as it was read
