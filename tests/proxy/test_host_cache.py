"""The parsed-Host cache stays bounded and keeps the real hosts under a flood of junk ones.

A client may send any Host it likes; each well-formed one is parsed and could be kept.
The cache must neither grow without end nor fill up with such values for good, which
would leave every real host parsed again on every request.
"""

from __future__ import annotations

import secrets

import pytest

from sidecar.tenants import HOST_CACHE_SIZE, BadHost, RequestHost, host_cache_info, parse_host

FLOOD = 10_000


def junk_host(number: int) -> str:
    # Random per run, so no earlier test (or run) can have put them in the cache.
    return f"junk-{number}-{secrets.token_hex(4)}.attacker.test"


def test_the_cache_never_grows_past_its_bound() -> None:
    largest = 0
    for number in range(FLOOD):
        parse_host([junk_host(number)])
        largest = max(largest, host_cache_info().currsize)
    assert host_cache_info().maxsize == HOST_CACHE_SIZE
    assert largest == HOST_CACHE_SIZE  # it did fill up, and no further


def test_a_host_first_seen_after_a_flood_is_then_answered_from_the_cache() -> None:
    for number in range(FLOOD):
        parse_host([junk_host(number)])
    real = f"desk-{secrets.token_hex(4)}.contoso.test:8443"
    first = parse_host([real])  # never seen before: parsed
    before = host_cache_info()
    again = parse_host([real])
    after = host_cache_info()
    assert again == first == RequestHost(name=real.split(":")[0], port="8443")
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


def test_a_host_in_use_during_a_flood_stays_in_the_cache() -> None:
    real = f"desk-{secrets.token_hex(4)}.contoso.test"
    parse_host([real])
    before = host_cache_info()
    for number in range(FLOOD):
        parse_host([junk_host(number)])
        if number % 1000 == 0:  # the desk's users keep coming meanwhile
            parse_host([real])
    after = host_cache_info()
    # Each junk value was parsed; every use of the real host was answered from the cache.
    assert after.misses - before.misses == FLOOD
    assert after.hits - before.hits == FLOOD // 1000


def test_malformed_hosts_are_refused_every_time_and_never_kept() -> None:
    before = host_cache_info()
    for _twice in range(2):
        for number in range(100):
            with pytest.raises(BadHost):
                parse_host([f"junk {number}.attacker.test"])
    after = host_cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses + 200)
