"""Stored records stay readable across releases: an upgrade logs nobody out, and two
releases side by side in a rolling deploy read each other's accounts and codes.

The ``PREVIOUS_*`` literals are the exact bytes the release before versioning stored
(produced by running that release's code once); each test runs on the memory store
and on real Redis.
"""

from __future__ import annotations

import json

import pytest

from sidecar.signup.accounts import Account, AccountStore, account_key
from sidecar.signup.codes import CodePolicy, IssuedCode, VerificationCodes
from sidecar.store import Store
from tests.helpers import FakeClock

HOST = "desk.contoso.com"
TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OID = "00000000-0000-0000-0000-0000000000a1"
USER = f"{OID}.{TID}"


@pytest.fixture
def store(any_store: Store) -> Store:
    return any_store


# -- accounts -----------------------------------------------------------------

PREVIOUS_ACCOUNT = b'{"created_at":1700000000.0,"email":"evelyne@contoso.com","family_name":null,"given_name":"\\u00c9velyne","name":"\\u00c9velyne Martin","oid":"00000000-0000-0000-0000-0000000000a1","tenant_host":"desk.contoso.com","tid":"72f988bf-86f1-41af-91ab-2d7cd011db47","user_key":"00000000-0000-0000-0000-0000000000a1.72f988bf-86f1-41af-91ab-2d7cd011db47","verified_at":1700000600.5}'

EVELYNE = Account(
    user_key=USER,
    tenant_host=HOST,
    oid=OID,
    tid=TID,
    email="evelyne@contoso.com",
    given_name="Évelyne",
    family_name=None,
    name="Évelyne Martin",
    created_at=1_700_000_000.0,
    verified_at=1_700_000_600.5,
)


async def test_an_account_the_previous_release_stored_still_signs_its_user_in(
    store: Store,
) -> None:
    await store.set(account_key(HOST, USER), PREVIOUS_ACCOUNT, None)
    accounts = AccountStore(store)
    assert await accounts.get(HOST, USER) == EVELYNE
    assert await accounts.find(HOST, "Evelyne@Contoso.com") == EVELYNE
    assert await accounts.list(HOST) == [EVELYNE]


async def test_an_account_the_previous_release_stored_can_change_its_email(
    store: Store,
) -> None:
    await store.set(account_key(HOST, USER), PREVIOUS_ACCOUNT, None)
    accounts = AccountStore(store)
    updated = await accounts.update_email(HOST, USER, "e.martin@contoso.com", 1_800_000_000.0)
    assert updated.created_at == EVELYNE.created_at
    assert await accounts.get(HOST, USER) == updated


async def test_the_previous_release_reads_the_account_this_one_stores(store: Store) -> None:
    # The previous release reads every field by the same name and ignores the rest.
    await AccountStore(store).create(EVELYNE)
    stored = await store.get(account_key(HOST, USER))
    assert stored is not None
    assert json.loads(stored) == {"v": 1, **json.loads(PREVIOUS_ACCOUNT)}


async def test_an_account_a_newer_release_stored_is_read(store: Store) -> None:
    newer = {**json.loads(PREVIOUS_ACCOUNT), "v": 2, "preferred_language": "fr"}
    await store.set(account_key(HOST, USER), json.dumps(newer).encode(), None)
    assert await AccountStore(store).get(HOST, USER) == EVELYNE


@pytest.mark.parametrize(
    "field_value",
    [
        ("email", 5),
        ("email", ["evelyne@contoso.com"]),
        ("given_name", {"first": "Évelyne"}),
        ("created_at", "1700000000"),
        ("verified_at", True),
        ("oid", 1),
        ("tenant_host", ["desk.contoso.com"]),
        ("tenant_host", [1]),
    ],
)
async def test_an_account_field_of_the_wrong_type_is_a_corrupt_account(
    store: Store, field_value: tuple[str, object]
) -> None:
    # The request fails closed: a stored account nobody can read is never a signed-in
    # identity, nor taken for "no account yet".
    name, value = field_value
    record = {**json.loads(PREVIOUS_ACCOUNT), name: value}
    await store.set(account_key(HOST, USER), json.dumps(record).encode(), None)
    with pytest.raises(ValueError, match="corrupt"):
        await AccountStore(store).get(HOST, USER)


# -- verification codes ---------------------------------------------------------

HASH_KEY = b"signup-code-key-!!!!!!!!!!!!!!!!"
CODE_KEY = f"signup:code:{HOST}:{USER}:"
CURRENT_KEY = f"signup:current:{HOST}:{USER}"

# Sent at 1700000000 to evelyne@contoso.com: the code 379331.
FIRST_ID = "4eb1416f3a0255e7897d6393"
PREVIOUS_FIRST_CODE = b'{"id":"4eb1416f3a0255e7897d6393","email":"evelyne@contoso.com","mac":"1c1beb19b9fc2310cd46650441c9e1c26106e9837e0d3af18d1ab1c4f63112ac","exp":1700000600.0,"locked":false,"sup":[]}'
# Sent 30 s later to e.martin@contoso.com: the code 223602, replacing 379331.
SECOND_ID = "6172ff89e87a24d4ae772c8a"
PREVIOUS_SECOND_CODE = b'{"id":"6172ff89e87a24d4ae772c8a","email":"e.martin@contoso.com","mac":"08f0c859ccd8c60c355917131f1c0bbddd3904ad1e19f73d57a14202ce7d22d2","exp":1700000630.0,"locked":false,"sup":[["evelyne@contoso.com","1c1beb19b9fc2310cd46650441c9e1c26106e9837e0d3af18d1ab1c4f63112ac"]]}'
# The second code after five wrong tries.
PREVIOUS_VOIDED_CODE = b'{"id":"6172ff89e87a24d4ae772c8a","email":"e.martin@contoso.com","mac":"","exp":1700000630.0,"locked":true,"sup":[]}'


def codes_on(store: Store) -> VerificationCodes:
    return VerificationCodes(
        store, CodePolicy(resend_cooldown=0), HASH_KEY, clock=FakeClock(1_700_000_100.0)
    )


async def store_code(store: Store, code_id: str, record: bytes) -> None:
    await store.set(CODE_KEY + code_id, record, 600)
    await store.set(CURRENT_KEY, code_id.encode(), 600)


async def test_a_code_the_previous_release_sent_is_accepted(store: Store) -> None:
    await store_code(store, FIRST_ID, PREVIOUS_FIRST_CODE)
    codes = codes_on(store)
    assert await codes.pending_email(HOST, USER) == "evelyne@contoso.com"
    wrong = await codes.verify(HOST, USER, "000000")
    assert (wrong.outcome, wrong.attempts_left) == ("wrong", 4)
    right = await codes.verify(HOST, USER, "379 331")
    assert (right.outcome, right.email) == ("ok", "evelyne@contoso.com")


async def test_a_code_the_previous_release_replaced_is_told_apart(store: Store) -> None:
    await store_code(store, SECOND_ID, PREVIOUS_SECOND_CODE)
    codes = codes_on(store)
    assert (await codes.verify(HOST, USER, "379331")).outcome == "superseded"
    right = await codes.verify(HOST, USER, "223602")
    assert (right.outcome, right.email) == ("ok", "e.martin@contoso.com")


async def test_a_code_the_previous_release_voided_stays_locked(store: Store) -> None:
    await store_code(store, SECOND_ID, PREVIOUS_VOIDED_CODE)
    codes = codes_on(store)
    assert (await codes.verify(HOST, USER, "223602")).outcome == "locked"
    assert await codes.pending_email(HOST, USER) is None


async def test_a_new_code_keeps_the_one_the_previous_release_sent_as_replaced(
    store: Store,
) -> None:
    await store_code(store, FIRST_ID, PREVIOUS_FIRST_CODE)
    codes = codes_on(store)
    sent: list[str] = []

    async def deliver(issued: IssuedCode) -> None:
        sent.append(issued.code)

    await codes.send_new_code(HOST, USER, "evelyne@contoso.com", "192.0.2.7", deliver)
    assert (await codes.verify(HOST, USER, "379331")).outcome == "superseded"
    assert (await codes.verify(HOST, USER, sent[0])).outcome == "ok"


async def test_the_previous_release_reads_the_code_this_one_stores(store: Store) -> None:
    codes = codes_on(store)
    issued = await codes.send_new_code(
        HOST, USER, "evelyne@contoso.com", "192.0.2.7", deliver_nowhere
    )
    stored = await store.get(CODE_KEY + issued.code_id)
    assert stored is not None
    record = json.loads(stored)
    previous = json.loads(PREVIOUS_FIRST_CODE)
    # The same fields by the same names and JSON types, and the version.
    assert {k: type(v) for k, v in record.items()} == {
        "v": int,
        **{k: type(v) for k, v in previous.items()},
    }
    assert record["v"] == 1
    assert record["id"] == issued.code_id


async def test_a_code_a_newer_release_sent_is_accepted(store: Store) -> None:
    newer = {**json.loads(PREVIOUS_FIRST_CODE), "v": 2, "channel": "mail"}
    await store_code(store, FIRST_ID, json.dumps(newer).encode())
    right = await codes_on(store).verify(HOST, USER, "379331")
    assert (right.outcome, right.email) == ("ok", "evelyne@contoso.com")


@pytest.mark.parametrize(
    "field_value",
    [
        ("locked", "false"),
        ("locked", 0),
        ("exp", "1700000600"),
        ("exp", True),
        ("mac", None),
        ("email", ["evelyne@contoso.com"]),
        ("sup", "1c1b"),
        ("sup", [["evelyne@contoso.com", 5]]),
    ],
)
async def test_a_code_field_of_the_wrong_type_is_no_code(
    store: Store, field_value: tuple[str, object]
) -> None:
    # SECURITY: a record verify() cannot trust is no code at all, never a guess at
    # what "locked" or the expiry meant: even the right code is refused.
    name, value = field_value
    record = {**json.loads(PREVIOUS_FIRST_CODE), name: value}
    await store_code(store, FIRST_ID, json.dumps(record).encode())
    codes = codes_on(store)
    assert (await codes.verify(HOST, USER, "379331")).outcome == "expired_or_missing"
    assert await codes.pending_email(HOST, USER) is None


async def deliver_nowhere(issued: IssuedCode) -> None:
    return None
