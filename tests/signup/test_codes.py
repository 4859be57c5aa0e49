"""Verification codes: single use, attempt limits, expiry, send limits, no clear-text codes."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from sidecar.signup.codes import (
    CodePolicy,
    IssuedCode,
    SendRefused,
    VerificationCodes,
    client_ip_bucket,
    normalize_code_input,
)
from sidecar.store import Store
from tests.helpers import FakeClock

HOST = "desk.contoso.com"
USER = "00000000-0000-0000-0000-0000000000a1.72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER = "00000000-0000-0000-0000-0000000000b2.72f988bf-86f1-41af-91ab-2d7cd011db47"
EMAIL = "evelyne@contoso.com"
IP = "198.51.100.7"
KEY = b"k" * 32

NO_COOLDOWN = CodePolicy(resend_cooldown=0)


def make(store: Store, clock: FakeClock, policy: CodePolicy | None = None) -> VerificationCodes:
    return VerificationCodes(store, policy or CodePolicy(), KEY, clock=clock)


async def send(
    codes: VerificationCodes,
    user: str = USER,
    email: str = EMAIL,
    ip: str = IP,
    host: str = HOST,
) -> IssuedCode:
    issued = await codes.issue(host, user, email, ip)
    await codes.confirm_sent(issued)
    return issued


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def all_stored_text(store: Store) -> str:
    """Every key, value and set member in the store, as one string."""
    parts = []
    for key in await store.keys_with_prefix(""):
        parts.append(key)
        try:
            value = await store.get(key)
        except Exception:  # a set, on stores that type their keys
            value = None
        if value is not None:
            parts.append(value.decode("utf-8", "replace"))
        parts.extend(await store.members(key) if value is None else ())
    return "\n".join(parts)


# -- verifying ----------------------------------------------------------------


async def test_right_code_is_ok_once(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock)
    issued = await send(codes)
    assert len(issued.code) == 6
    assert issued.code.isascii()
    assert issued.code.isdigit()
    assert await codes.pending_email(HOST, USER) == EMAIL

    result = await codes.verify(HOST, USER, issued.code)
    assert result.ok
    assert result.outcome == "ok"
    assert result.email == EMAIL

    again = await codes.verify(HOST, USER, issued.code)
    assert not again.ok
    assert again.outcome == "expired_or_missing"
    assert await codes.pending_email(HOST, USER) is None


async def test_concurrent_double_submit_succeeds_once(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock)
    issued = await send(codes)
    results = await asyncio.gather(*(codes.verify(HOST, USER, issued.code) for _ in range(5)))
    assert sum(r.ok for r in results) == 1


async def test_no_code_sent(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock)
    result = await codes.verify(HOST, USER, "123456")
    assert result.outcome == "expired_or_missing"
    assert await codes.pending_email(HOST, USER) is None


async def test_wrong_code_counts_down_then_locks(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, NO_COOLDOWN)
    issued = await send(codes)
    wrong = other_code(issued.code)
    left = [(await codes.verify(HOST, USER, wrong)).attempts_left for _ in range(4)]
    assert left == [4, 3, 2, 1]

    fifth = await codes.verify(HOST, USER, wrong)
    assert fifth.outcome == "locked"  # the attempt that reaches max_attempts voids the code
    assert fifth.attempts_left is None

    # Even the right code is refused now, until a new code is sent.
    assert (await codes.verify(HOST, USER, issued.code)).outcome == "locked"
    assert (await codes.verify(HOST, USER, wrong)).outcome == "locked"
    assert await codes.pending_email(HOST, USER) is None

    fresh = await send(codes)
    assert (await codes.verify(HOST, USER, other_code(fresh.code))).attempts_left == 4
    assert (await codes.verify(HOST, USER, fresh.code)).ok


async def test_right_code_on_last_attempt_still_works(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock)
    issued = await send(codes)
    for _ in range(4):
        await codes.verify(HOST, USER, other_code(issued.code))
    assert (await codes.verify(HOST, USER, issued.code)).ok


async def test_parallel_guesses_cannot_exceed_max_attempts(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock)
    issued = await send(codes)
    wrong = other_code(issued.code)
    results = await asyncio.gather(*(codes.verify(HOST, USER, wrong) for _ in range(20)))
    assert sum(r.outcome == "wrong" for r in results) == 4
    assert sum(r.outcome == "locked" for r in results) == 16
    assert (await codes.verify(HOST, USER, issued.code)).outcome == "locked"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "12345",
        "1234567",
        "abcdef",
        "12345a",
        "\uff11\uff12\uff13\uff14\uff15\uff16",
        "١٢٣٤٥٦",
        "12-345",
        "9" * 5000,
    ],
)
async def test_malformed_input_counts_as_wrong(store: Store, clock: FakeClock, typed: str) -> None:
    codes = make(store, clock)
    await send(codes)
    result = await codes.verify(HOST, USER, typed)
    assert result.outcome == "wrong"
    assert result.attempts_left == 4


async def test_spaces_in_typed_code_are_ignored(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock)
    issued = await send(codes)
    typed = f" {issued.code[:3]} {issued.code[3:]}\t"
    assert (await codes.verify(HOST, USER, typed)).ok


def test_normalize_code_input() -> None:
    assert normalize_code_input("012345") == "012345"
    assert normalize_code_input(" 012 345 ") == "012345"
    assert normalize_code_input("٠١٢٣٤٥") is None  # Arabic-Indic digits: isdigit() but not ASCII
    assert normalize_code_input("²¹²³⁴⁵") is None
    assert normalize_code_input("12345") is None
    assert normalize_code_input("1" * 100) is None


async def test_expired_code_fails(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, CodePolicy(ttl=600))
    issued = await send(codes)
    clock.advance(599)
    assert await codes.pending_email(HOST, USER) == EMAIL
    clock.advance(1)
    assert (await codes.verify(HOST, USER, issued.code)).outcome == "expired_or_missing"
    assert await codes.pending_email(HOST, USER) is None


async def test_expired_code_fails_by_store_ttl(store: Store) -> None:
    codes = VerificationCodes(store, CodePolicy(ttl=0.05), KEY)
    issued = await send(codes)
    await asyncio.sleep(0.1)
    assert (await codes.verify(HOST, USER, issued.code)).outcome == "expired_or_missing"


async def test_new_code_voids_the_previous_one(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, NO_COOLDOWN)
    first = await send(codes)
    second = await send(codes, email="e.martin@contoso.com")
    if first.code != second.code:
        assert (await codes.verify(HOST, USER, first.code)).outcome == "superseded"
    result = await codes.verify(HOST, USER, second.code)
    assert result.ok
    assert result.email == "e.martin@contoso.com"  # bound to the address it was sent to


async def test_a_superseded_code_is_named_and_uses_up_no_try(
    store: Store, clock: FakeClock
) -> None:
    codes = make(store, clock, NO_COOLDOWN)
    older = [await send(codes) for _ in range(3)]
    current = await send(codes)
    stale = [i.code for i in older if i.code != current.code]
    # Many more typings of old codes than max_attempts: none of them counts.
    for _ in range(3):
        for code in stale:
            assert (await codes.verify(HOST, USER, code)).outcome == "superseded"
    wrong = next(c for c in ("000000", "111111", "222222", "333333", "444444")
                 if c != current.code and c not in stale)  # fmt: skip
    assert (await codes.verify(HOST, USER, wrong)).attempts_left == codes.policy.max_attempts - 1
    assert (await codes.verify(HOST, USER, current.code)).ok


async def test_only_the_last_few_replaced_codes_are_remembered(
    store: Store, clock: FakeClock
) -> None:
    codes = make(store, clock, NO_COOLDOWN)
    oldest = await send(codes)
    newer = [await send(codes) for _ in range(4)]
    if oldest.code not in {i.code for i in newer}:
        assert (await codes.verify(HOST, USER, oldest.code)).outcome == "wrong"


async def test_code_is_bound_to_user_and_host(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock)
    issued = await send(codes)
    assert (await codes.verify(HOST, OTHER, issued.code)).outcome == "expired_or_missing"
    assert (
        await codes.verify("desk.fabrikam.com", USER, issued.code)
    ).outcome == "expired_or_missing"
    assert (await codes.verify(HOST, USER, issued.code)).ok


async def test_code_never_stored_in_clear(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fixed, distinctive code so the scan cannot be fooled by chance.
    monkeypatch.setattr(secrets, "randbelow", lambda n: 418_372)
    codes = make(store, clock)
    issued = await codes.issue(HOST, USER, EMAIL, IP)
    assert issued.code == "418372"
    assert "418372" not in repr(issued)
    await codes.confirm_sent(issued)
    await codes.verify(HOST, USER, "000001")  # an attempt counter exists too
    stored = await all_stored_text(store)
    assert "signup:code:" in stored  # the scan does see the code record
    assert "418372" not in stored


async def test_codes_are_random(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, CodePolicy(resend_cooldown=0, max_sends_per_hour=50))
    seen = set()
    for _ in range(20):
        issued = await codes.issue(HOST, USER, EMAIL, IP)
        await codes.abandon(issued)
        seen.add(issued.code)
    assert len(seen) > 15


# -- sending limits -------------------------------------------------------------


async def test_cooldown(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, CodePolicy(resend_cooldown=60))
    assert await codes.cooldown_left(HOST, USER) == 0
    await send(codes)
    with pytest.raises(SendRefused) as info:
        await codes.issue(HOST, USER, EMAIL, IP)
    assert info.value.reason == "cooldown"
    assert 0 < info.value.retry_after <= 60
    assert 0 < await codes.cooldown_left(HOST, USER) <= 60
    # Per user: another user is not held back.
    await send(codes, user=OTHER)


async def test_cooldown_expires(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, CodePolicy(resend_cooldown=0.05))
    await send(codes)
    with pytest.raises(SendRefused):
        await codes.issue(HOST, USER, EMAIL, IP)
    await asyncio.sleep(0.1)
    await send(codes)


async def test_concurrent_issues_pass_the_cooldown_once(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock)
    results = await asyncio.gather(
        *(codes.issue(HOST, USER, EMAIL, IP) for _ in range(5)), return_exceptions=True
    )
    issued = [r for r in results if isinstance(r, IssuedCode)]
    refused = [r for r in results if isinstance(r, SendRefused)]
    assert len(issued) == 1
    assert len(refused) == 4
    assert {r.reason for r in refused} == {"cooldown"}


async def test_per_user_hourly_limit(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, CodePolicy(resend_cooldown=0, max_sends_per_hour=5))
    for _ in range(5):
        await send(codes)
        clock.advance(60)
    with pytest.raises(SendRefused) as info:
        await codes.issue(HOST, USER, EMAIL, IP)
    assert info.value.reason == "user_hourly_limit"
    # The first send was 300 s ago: it leaves the window in 3300 s.
    assert info.value.retry_after == pytest.approx(3300)
    await send(codes, user=OTHER)  # per user
    clock.advance(3300)
    await send(codes)  # a sliding window: the oldest send aged out


async def test_per_user_limit_holds_under_concurrency(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, CodePolicy(resend_cooldown=0, max_sends_per_hour=3))
    results = await asyncio.gather(
        *(codes.issue(HOST, USER, EMAIL, IP) for _ in range(10)), return_exceptions=True
    )
    # Never more than the limit. Racing right at the limit may refuse them all
    # (fail closed), and refused ones leave no trace behind:
    admitted = [r for r in results if isinstance(r, IssuedCode)]
    assert len(admitted) <= 3
    assert all(isinstance(r, IssuedCode | SendRefused) for r in results)
    for issued in admitted:
        await codes.confirm_sent(issued)
    for _ in range(3 - len(admitted)):
        await send(codes)
    with pytest.raises(SendRefused, match="user_hourly_limit"):
        await codes.issue(HOST, USER, EMAIL, IP)


async def test_per_ip_hourly_limit(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, CodePolicy(max_sends_per_hour_per_ip=3))
    users = [f"{i:08d}-0000-0000-0000-000000000000.tid" for i in range(4)]
    for user in users[:3]:
        await send(codes, user=user)
    with pytest.raises(SendRefused) as info:
        await codes.issue(HOST, users[3], EMAIL, IP)
    assert info.value.reason == "ip_hourly_limit"
    assert 0 < info.value.retry_after <= 3600
    # The IP limit spans tenants: the same IP on another desk is refused too.
    with pytest.raises(SendRefused):
        await codes.issue("desk.fabrikam.com", users[3], EMAIL, IP)
    await send(codes, user=users[3], ip="203.0.113.9")


async def test_ipv6_counts_per_64(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, CodePolicy(max_sends_per_hour_per_ip=1))
    await send(codes, ip="2001:db8:1:2::1")
    with pytest.raises(SendRefused):
        await codes.issue(HOST, OTHER, EMAIL, "2001:db8:1:2:ffff::9")
    await send(codes, user=OTHER, ip="2001:db8:1:3::1")


def test_client_ip_bucket() -> None:
    assert client_ip_bucket("198.51.100.7") == "198.51.100.7"
    assert client_ip_bucket("::ffff:198.51.100.7") == "198.51.100.7"
    assert client_ip_bucket("2001:db8::1") == "2001:db8::/64"
    assert client_ip_bucket("not an ip") == client_ip_bucket("") == "invalid"


async def test_refused_sends_do_not_count(store: Store, clock: FakeClock) -> None:
    codes = make(
        store,
        clock,
        CodePolicy(resend_cooldown=0, max_sends_per_hour=2, max_sends_per_hour_per_ip=1),
    )
    await send(codes, user=OTHER)  # uses up IP's only slot
    for _ in range(3):  # refused by the IP limit: must not eat USER's slots
        with pytest.raises(SendRefused, match="ip_hourly_limit"):
            await codes.issue(HOST, USER, EMAIL, IP)
    await send(codes, ip="203.0.113.1")
    await send(codes, ip="203.0.113.2")
    with pytest.raises(SendRefused, match="user_hourly_limit"):
        await codes.issue(HOST, USER, EMAIL, "203.0.113.3")


async def test_refused_send_does_not_start_cooldown(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, CodePolicy(max_sends_per_hour_per_ip=1))
    await send(codes, user=OTHER)
    with pytest.raises(SendRefused, match="ip_hourly_limit"):
        await codes.issue(HOST, USER, EMAIL, IP)
    assert await codes.cooldown_left(HOST, USER) == 0
    await send(codes, ip="203.0.113.1")  # not "cooldown"


# -- two-phase sending -------------------------------------------------------------


async def test_abandon_leaves_nothing(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock)
    issued = await codes.issue(HOST, USER, EMAIL, IP)
    await codes.abandon(issued)
    stored = await all_stored_text(store)
    assert issued.code_id not in stored
    assert await codes.pending_email(HOST, USER) is None
    assert await codes.cooldown_left(HOST, USER) == 0
    assert (await codes.verify(HOST, USER, issued.code)).outcome == "expired_or_missing"


async def test_abandon_does_not_count_against_limits(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, CodePolicy(max_sends_per_hour=1, max_sends_per_hour_per_ip=1))
    for _ in range(5):
        await codes.abandon(await codes.issue(HOST, USER, EMAIL, IP))
    issued = await send(codes)
    assert (await codes.verify(HOST, USER, issued.code)).ok


async def test_abandoned_resend_keeps_previous_code(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock, NO_COOLDOWN)
    first = await send(codes)
    second = await codes.issue(HOST, USER, "new@contoso.com", IP)
    await codes.abandon(second)
    assert await codes.pending_email(HOST, USER) == EMAIL
    result = await codes.verify(HOST, USER, first.code)
    assert result.ok
    assert result.email == EMAIL


async def test_send_new_code_commits_or_abandons(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock)
    delivered: list[str] = []

    async def failing(issued: IssuedCode) -> None:
        raise OSError("relay down")

    with pytest.raises(OSError, match="relay down"):
        await codes.send_new_code(HOST, USER, EMAIL, IP, failing)
    assert await codes.cooldown_left(HOST, USER) == 0

    async def deliver(issued: IssuedCode) -> None:
        delivered.append(issued.code)

    issued = await codes.send_new_code(HOST, USER, EMAIL, IP, deliver)
    assert delivered == [issued.code]
    assert await codes.cooldown_left(HOST, USER) > 0
    assert (await codes.verify(HOST, USER, issued.code)).ok


async def test_refusal_text_has_no_secrets(store: Store, clock: FakeClock) -> None:
    codes = make(store, clock)
    issued = await send(codes)
    with pytest.raises(SendRefused) as info:
        await codes.issue(HOST, USER, EMAIL, IP)
    assert issued.code not in str(info.value)
    assert EMAIL not in str(info.value)


# -- configuration and input checks ----------------------------------------------------


def test_policy_and_key_validation(store: Store) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        VerificationCodes(store, CodePolicy(), b"short")
    with pytest.raises(ValueError, match="max_attempts"):
        CodePolicy(max_attempts=0)
    with pytest.raises(ValueError, match="code_ttl"):
        CodePolicy(ttl=0)


@pytest.mark.parametrize(
    ("host", "user", "email"),
    [
        ("desk:evil", USER, EMAIL),
        (HOST, "a:b", EMAIL),
        (HOST, "a|b", EMAIL),
        (HOST, "", EMAIL),
        (HOST, USER, "x@y.com\r\nBcc: z@evil.example"),
        (HOST, USER, "no-at-sign"),
    ],
)
async def test_bad_identifiers_rejected(
    store: Store, clock: FakeClock, host: str, user: str, email: str
) -> None:
    codes = make(store, clock)
    with pytest.raises(ValueError, match="invalid"):
        await codes.issue(host, user, email, IP)
