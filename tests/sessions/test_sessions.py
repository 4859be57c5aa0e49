"""Sessions over each store: lifetime, idle timeout, key rotation, Entra sid index."""

from __future__ import annotations

from typing import Any

from sidecar.oidc.idtoken import IdTokenClaims
from sidecar.secret_keys import DerivedKeys
from sidecar.sessions.sessions import SessionManager
from sidecar.store import Store
from tests.helpers import FakeClock

OLD_KEY, NEW_KEY = "o" * 40, "n" * 40


def identity(entra_sid: str = "entra-sid-1") -> dict[str, Any]:
    claims = IdTokenClaims(
        tid="6d5a4e1c-3b2a-4c1d-9e8f-7a6b5c4d3e2f",
        oid="6d5a4e1c-0000-4000-8000-00000000a11c",
        sub="pairwise-sub",
        sid=entra_sid,
        email=None,
        email_domain_verified=None,
        given_name=None,
        family_name=None,
        name=None,
        preferred_username=None,
        login_hint=None,
        iat=0,
        exp=0,
    )
    return {"host": "desk.example.test", "claims": claims}


def manager(store: Store, clock: FakeClock, keys: list[str] | None = None) -> SessionManager:
    return SessionManager(
        store, DerivedKeys(keys or [OLD_KEY]), lifetime=3600, idle_timeout=600, clock=clock
    )


async def test_every_sign_in_gets_a_new_id_and_the_store_never_holds_it(any_store: Store) -> None:
    clock = FakeClock()
    sessions = manager(any_store, clock)
    first, _ = await sessions.create(**identity())
    second, _ = await sessions.create(**identity())
    assert first != second
    session_id = first.rpartition(".")[0]
    for key in await any_store.keys_with_prefix("session:"):
        assert session_id not in key


async def test_idle_timeout_slides_and_absolute_lifetime_ends(any_store: Store) -> None:
    clock = FakeClock()
    sessions = manager(any_store, clock)
    cookie, _ = await sessions.create(**identity())
    for _ in range(5):  # active every 9 minutes: the idle timeout (10 min) slides
        clock.now += 540
        assert await sessions.load("desk.example.test", cookie) is not None
    clock.now += 1200  # 65 min after creation: past the 1 h absolute lifetime
    assert await sessions.load("desk.example.test", cookie) is None


async def test_idle_session_ends(any_store: Store) -> None:
    clock = FakeClock()
    sessions = manager(any_store, clock)
    cookie, _ = await sessions.create(**identity())
    clock.now += 601
    assert await sessions.load("desk.example.test", cookie) is None


async def test_secret_key_rotation_keeps_sessions_and_refuses_unknown_keys(
    any_store: Store,
) -> None:
    clock = FakeClock()
    cookie, _ = await manager(any_store, clock, [OLD_KEY]).create(**identity())
    rotated = manager(any_store, clock, [NEW_KEY, OLD_KEY])
    assert await rotated.load("desk.example.test", cookie) is not None
    assert await manager(any_store, clock, [NEW_KEY]).load("desk.example.test", cookie) is None


async def test_a_session_is_bound_to_its_host(any_store: Store) -> None:
    clock = FakeClock()
    sessions = manager(any_store, clock)
    cookie, _ = await sessions.create(**identity())
    assert await sessions.load("other.example.test", cookie) is None


async def test_entra_sid_ends_every_session_of_that_sign_in(any_store: Store) -> None:
    clock = FakeClock()
    sessions = manager(any_store, clock)
    a, _ = await sessions.create(**identity())
    b, _ = await sessions.create(**identity())
    c, _ = await sessions.create(**identity(entra_sid="other"))
    assert await sessions.destroy_by_entra_sid("desk.example.test", "entra-sid-1") == 2
    assert await sessions.load("desk.example.test", a) is None
    assert await sessions.load("desk.example.test", b) is None
    assert await sessions.load("desk.example.test", c) is not None
