"""JWKS parsing and the per-tenant key cache (entra-reference §4, the contract)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.oidc._http import request_json
from sidecar.oidc.errors import InvalidIdToken, ProviderUnavailable
from sidecar.oidc.jwks import JwksCache, parse_jwks
from tests.helpers import FakeClock

from ._tokens import TENANT_ID, public_jwk, rsa_key
from .fake_entra import FakeEntra

# -- parse_jwks ---------------------------------------------------------------


def _b64int(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_parse_keeps_only_usable_rsa_signature_keys(caplog: pytest.LogCaptureFixture) -> None:
    good = public_jwk(rsa_key("good"), issuer="https://login.microsoftonline.com/{tenantid}/v2.0")
    small = (
        rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_numbers()
    )
    entries = [
        good,
        public_jwk(rsa_key("good")) | {"kid": "no-use"},  # no "use": fine
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA", "use": "sig"},
        public_jwk(rsa_key("good")) | {"kid": "enc", "use": "enc"},
        public_jwk(rsa_key("good")) | {"kid": "rs384", "alg": "RS384"},
        public_jwk(rsa_key("good")) | {"kid": "ops", "key_ops": ["encrypt"]},
        {"kty": "RSA", "kid": "small", "n": _b64int(small.n), "e": _b64int(small.e)},
        {"kty": "RSA", "kid": "garbage", "n": "!!!", "e": "AQAB"},
        {"kty": "RSA", "kid": "no-n", "e": "AQAB"},
        {"kty": "RSA", "kid": "bad-e", "n": good["n"], "e": "AA"},
        public_jwk(rsa_key("good")) | {"kid": ""},
        public_jwk(rsa_key("good")) | {"kid": 7},
        public_jwk(rsa_key("good")) | {"kid": "bad-issuer", "issuer": 1},
        public_jwk(rsa_key("other")) | {"kid": "good"},  # duplicate kid: first wins
        "not an object",
        None,
    ]
    with caplog.at_level(logging.WARNING, logger="sidecar.oidc.jwks"):
        keys = parse_jwks({"keys": entries})
    assert sorted(keys) == ["good", "no-use"]
    assert keys["good"].issuer == "https://login.microsoftonline.com/{tenantid}/v2.0"
    assert keys["good"].key.as_dict()["n"] == good["n"]
    assert not keys["good"].key.is_private
    assert "duplicate kid 'good'" in caplog.text
    assert "shorter than 2048" in caplog.text


def test_private_members_are_not_imported() -> None:
    key = rsa_key("leaky")
    keys = parse_jwks({"keys": [dict(key.as_dict(private=True)) | {"use": "sig"}]})
    assert not keys["leaky"].key.is_private


@pytest.mark.parametrize("document", [None, [], {"keys": "x"}, {"nokeys": []}, "x"])
def test_parse_refuses_non_jwks(document: object) -> None:
    with pytest.raises(ProviderUnavailable) as info:
        parse_jwks(document)
    assert info.value.endpoint == "jwks"


# -- JwksCache against a real server -------------------------------------------------


@pytest.fixture
async def cache(
    entra: FakeEntra, http: aiohttp.ClientSession, clock: FakeClock
) -> AsyncIterator[JwksCache]:
    url = f"{entra.authority}/{TENANT_ID}/discovery/v2.0/keys"

    async def fetch() -> object:
        return await request_json(http, "GET", url, endpoint="jwks", request_timeout=2)

    jwks = JwksCache(fetch, clock=clock, label="test")
    yield jwks
    await jwks.aclose()


async def test_cold_start_shares_one_fetch(cache: JwksCache, entra: FakeEntra) -> None:
    keys = await asyncio.gather(*(cache.get("entra-1") for _ in range(20)))
    assert {k.kid for k in keys} == {"entra-1"}
    assert entra.counts["jwks"] == 1


async def test_cold_start_down(cache: JwksCache, entra: FakeEntra) -> None:
    entra.mode = "503"
    with pytest.raises(ProviderUnavailable) as info:
        await cache.get("entra-1")
    assert info.value.endpoint == "jwks"
    entra.mode = "ok"
    assert (await cache.get("entra-1")).kid == "entra-1"


async def test_unknown_kid_flood_refetches_at_most_once_a_minute(
    cache: JwksCache, entra: FakeEntra, clock: FakeClock
) -> None:
    await cache.get("entra-1")
    assert entra.counts["jwks"] == 1

    results = await asyncio.gather(
        *(cache.get(f"forged-{i}") for i in range(50)), return_exceptions=True
    )
    assert all(isinstance(r, InvalidIdToken) and r.reason == "unknown kid" for r in results)
    assert entra.counts["jwks"] == 2

    clock.advance(30)
    for i in range(20):
        with pytest.raises(InvalidIdToken, match="unknown kid"):
            await cache.get(f"again-{i}")
    assert entra.counts["jwks"] == 2

    clock.advance(31)
    with pytest.raises(InvalidIdToken, match="unknown kid"):
        await cache.get("after-a-minute")
    assert entra.counts["jwks"] == 3
    # Known kids are still answered from the cache, without any fetch.
    assert (await cache.get("entra-2")).kid == "entra-2"
    assert entra.counts["jwks"] == 3


async def test_emergency_rollover_is_picked_up(
    cache: JwksCache, entra: FakeEntra, clock: FakeClock
) -> None:
    await cache.get("entra-1")
    entra.keys = [rsa_key("entra-3"), rsa_key("entra-1")]
    assert (await cache.get("entra-3")).kid == "entra-3"
    assert entra.counts["jwks"] == 2


async def test_unknown_kid_right_after_cold_start_does_not_refetch(
    cache: JwksCache, entra: FakeEntra
) -> None:
    with pytest.raises(InvalidIdToken, match="unknown kid"):
        await cache.get("forged")
    assert entra.counts["jwks"] == 1


async def test_regular_refresh_in_background(
    cache: JwksCache, entra: FakeEntra, clock: FakeClock
) -> None:
    await cache.get("entra-1")
    entra.keys = [rsa_key("entra-2")]
    clock.advance(3599)
    await cache.get("entra-1")
    assert entra.counts["jwks"] == 1
    clock.advance(2)
    # Stale: answered from the cache at once, refreshed behind the scenes.
    assert (await cache.get("entra-1")).kid == "entra-1"
    await cache.wait_idle()
    assert entra.counts["jwks"] == 2
    assert sorted(cache.keys) == ["entra-2"]


async def test_regular_refresh_does_not_use_the_unknown_kid_budget(
    cache: JwksCache, entra: FakeEntra, clock: FakeClock
) -> None:
    await cache.get("entra-1")
    clock.advance(3601)
    await cache.get("entra-1")
    await cache.wait_idle()
    assert entra.counts["jwks"] == 2
    entra.keys = [rsa_key("entra-3")]
    assert (await cache.get("entra-3")).kid == "entra-3"
    assert entra.counts["jwks"] == 3


async def test_last_good_keys_kept_when_entra_is_down(
    cache: JwksCache, entra: FakeEntra, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    await cache.get("entra-1")
    entra.mode = "503"
    clock.advance(7200)
    with caplog.at_level(logging.WARNING, logger="sidecar.oidc.jwks"):
        assert (await cache.get("entra-1")).kid == "entra-1"
        await cache.wait_idle()
    assert entra.counts["jwks"] == 2
    assert "keeping 2 cached keys" in caplog.text
    assert sorted(cache.keys) == ["entra-1", "entra-2"]

    # A failed refresh is retried after a minute, not on every request.
    for _ in range(10):
        await cache.get("entra-1")
    assert entra.counts["jwks"] == 2

    # An unknown kid while down: the refetch fails, the old keys stay.
    with pytest.raises(ProviderUnavailable):
        await cache.get("entra-9")
    assert entra.counts["jwks"] == 3
    assert (await cache.get("entra-2")).kid == "entra-2"

    # A broken answer (no usable keys) does not wipe the cache either.
    entra.mode = "garbage-jwks"
    clock.advance(120)
    with pytest.raises(ProviderUnavailable):
        await cache.refresh()
    assert sorted(cache.keys) == ["entra-1", "entra-2"]

    entra.mode = "ok"
    entra.keys = [rsa_key("entra-9")]
    clock.advance(61)
    assert (await cache.get("entra-9")).kid == "entra-9"


async def test_caller_cancellation_does_not_abort_the_shared_fetch(
    cache: JwksCache, entra: FakeEntra
) -> None:
    first = asyncio.create_task(cache.get("entra-1"))
    second = asyncio.create_task(cache.get("entra-1"))
    await asyncio.sleep(0)
    first.cancel()
    assert (await second).kid == "entra-1"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert entra.counts["jwks"] == 1
