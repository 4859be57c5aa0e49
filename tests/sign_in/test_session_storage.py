"""The session storage over each store: lifetime, idle timeout, key rotation, the Entra
sid index, and records of the previous release."""

from __future__ import annotations

import json

from sidecar.oidc.idtoken import IdTokenClaims
from sidecar.secret_keys import DerivedKeys
from sidecar.sign_in.storage import SESSION_RECORD, SessionStorage, store_key
from sidecar.store import Store
from tests.helpers import FakeClock

OLD_KEY, NEW_KEY = "o" * 40, "n" * 40
HOST = "desk.example.test"


def claims(entra_sid: str = "entra-sid-1") -> IdTokenClaims:
    return IdTokenClaims(
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


def storage(store: Store, clock: FakeClock, keys: list[str] | None = None) -> SessionStorage:
    return SessionStorage(
        store, DerivedKeys(keys or [OLD_KEY]), lifetime=3600, idle_timeout=600, clock=clock
    )


async def sign_in(sessions: SessionStorage, entra_sid: str = "entra-sid-1") -> str:
    """What a sign-in does through aiohttp-session: a new session, its record written,
    the cookie value the browser receives."""
    session = await sessions.new_session()
    assert isinstance(session.identity, str)
    await sessions.write(sessions.new_record(HOST, session.identity, claims(entra_sid)))
    return sessions.cookie_value(session)


async def test_every_sign_in_gets_a_new_id_and_the_store_never_holds_it(any_store: Store) -> None:
    sessions = storage(any_store, FakeClock())
    first = await sign_in(sessions)
    second = await sign_in(sessions)
    assert first != second
    session_id = first.rpartition(".")[0]
    for key in await any_store.keys_with_prefix("session:"):
        assert session_id not in key


async def test_idle_timeout_slides_and_absolute_lifetime_ends(any_store: Store) -> None:
    clock = FakeClock()
    sessions = storage(any_store, clock)
    cookie = await sign_in(sessions)
    for _ in range(5):  # active every 9 minutes: the idle timeout (10 min) slides
        clock.now += 540
        assert await sessions.read(HOST, cookie) is not None
    clock.now += 1200  # 65 min after creation: past the 1 h absolute lifetime
    assert await sessions.read(HOST, cookie) is None


async def test_idle_session_ends(any_store: Store) -> None:
    clock = FakeClock()
    sessions = storage(any_store, clock)
    cookie = await sign_in(sessions)
    clock.now += 601
    assert await sessions.read(HOST, cookie) is None


async def test_secret_key_rotation_keeps_sessions_and_refuses_unknown_keys(
    any_store: Store,
) -> None:
    clock = FakeClock()
    cookie = await sign_in(storage(any_store, clock, [OLD_KEY]))
    rotated = storage(any_store, clock, [NEW_KEY, OLD_KEY])
    assert await rotated.read(HOST, cookie) is not None
    assert await storage(any_store, clock, [NEW_KEY]).read(HOST, cookie) is None


async def test_a_session_is_bound_to_its_host(any_store: Store) -> None:
    sessions = storage(any_store, FakeClock())
    cookie = await sign_in(sessions)
    assert await sessions.read("other.example.test", cookie) is None


async def test_a_forged_or_garbage_cookie_is_no_session(any_store: Store) -> None:
    sessions = storage(any_store, FakeClock())
    cookie = await sign_in(sessions)
    session_id, _, mac = cookie.rpartition(".")
    for bad in (f"{session_id}.{mac[::-1]}", session_id, "", "é" * 10, cookie + "x" * 300):
        assert await sessions.read(HOST, bad) is None, bad


async def test_entra_sid_ends_every_session_of_that_sign_in(any_store: Store) -> None:
    sessions = storage(any_store, FakeClock())
    a = await sign_in(sessions)
    b = await sign_in(sessions)
    c = await sign_in(sessions, entra_sid="other")
    assert await sessions.delete_by_entra_sid(HOST, "entra-sid-1") == 2
    assert await sessions.read(HOST, a) is None
    assert await sessions.read(HOST, b) is None
    assert await sessions.read(HOST, c) is not None


# The exact bytes the previous release (before records carried a version) stored for a
# session, with the cookie that pointed at it under OLD_KEY.
PREVIOUS_RELEASE_SESSION_ID = "previous-release-session-id-0123456789abcdefghij"
PREVIOUS_RELEASE_RECORD = (
    '{"key": "%s", "host": "desk.example.test", '
    '"user_key": "6d5a4e1c-0000-4000-8000-00000000a11c.6d5a4e1c-3b2a-4c1d-9e8f-7a6b5c4d3e2f", '
    '"oid": "6d5a4e1c-0000-4000-8000-00000000a11c", '
    '"tid": "6d5a4e1c-3b2a-4c1d-9e8f-7a6b5c4d3e2f", "email_claim": "ann@contoso.test", '
    '"email_domain_verified": true, "given_name": "Ann", "family_name": "Lee", '
    '"name": "Ann Lee", "entra_sid": "entra-sid-1", "login_hint": "hint", '
    '"created_at": 1700000000.0, "last_seen": 1700000000.0, "roles": ["Agent"]}'
)


async def test_a_session_the_previous_release_stored_is_still_signed_in(any_store: Store) -> None:
    clock = FakeClock()
    sessions = storage(any_store, clock)
    key = store_key(HOST, PREVIOUS_RELEASE_SESSION_ID)
    await any_store.set(key, (PREVIOUS_RELEASE_RECORD % key).encode(), 600)
    cookie = DerivedKeys([OLD_KEY]).sign_cookie(PREVIOUS_RELEASE_SESSION_ID)
    clock.now += 30
    found = await sessions.read(HOST, cookie)
    assert found is not None
    session_id, record = found
    assert session_id == PREVIOUS_RELEASE_SESSION_ID
    assert (record.user_key, record.email_claim, record.roles) == (
        "6d5a4e1c-0000-4000-8000-00000000a11c.6d5a4e1c-3b2a-4c1d-9e8f-7a6b5c4d3e2f",
        "ann@contoso.test",
        ("Agent",),
    )


async def test_a_session_a_newer_release_stored_is_read_without_its_new_fields(
    any_store: Store,
) -> None:
    sessions = storage(any_store, FakeClock())
    key = store_key(HOST, PREVIOUS_RELEASE_SESSION_ID)
    newer = json.loads(PREVIOUS_RELEASE_RECORD % key) | {"v": 2, "device": "laptop"}
    await any_store.set(key, json.dumps(newer).encode(), 600)
    cookie = DerivedKeys([OLD_KEY]).sign_cookie(PREVIOUS_RELEASE_SESSION_ID)
    assert await sessions.read(HOST, cookie) is not None


async def test_a_record_that_does_not_decode_is_no_session(any_store: Store) -> None:
    sessions = storage(any_store, FakeClock())
    key = store_key(HOST, PREVIOUS_RELEASE_SESSION_ID)
    cookie = DerivedKeys([OLD_KEY]).sign_cookie(PREVIOUS_RELEASE_SESSION_ID)
    good = json.loads(PREVIOUS_RELEASE_RECORD % key)
    for bad in (
        b"garbage",
        json.dumps(good | {"email_domain_verified": "yes"}).encode(),
        json.dumps(good | {"host": "other.example.test"}).encode(),
        json.dumps({k: v for k, v in good.items() if k != "oid"}).encode(),
    ):
        await any_store.set(key, bad, 600)
        assert await sessions.read(HOST, cookie) is None, bad
    assert SESSION_RECORD.version == 1
