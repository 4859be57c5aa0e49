"""Accounts: keyed by {oid}.{tid} only, created once, never found by email on sign-in."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from sidecar.signup.accounts import (
    Account,
    AccountNotFound,
    AccountStore,
    AmbiguousAccount,
    account_key,
)
from sidecar.store import Store

HOST = "desk.contoso.com"
TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OID = "00000000-0000-0000-0000-0000000000a1"
OID2 = "00000000-0000-0000-0000-0000000000b2"


def account(oid: str = OID, email: str = "evelyne@contoso.com", host: str = HOST) -> Account:
    return Account(
        user_key=f"{oid}.{TID}",
        tenant_host=host,
        oid=oid,
        tid=TID,
        email=email,
        given_name="Évelyne",
        family_name="Martin",
        name="Évelyne Martin",
        created_at=1_700_000_000.0,
        verified_at=1_700_000_000.0,
    )


async def test_create_get_roundtrip(store: Store) -> None:
    accounts = AccountStore(store)
    acct = account()
    assert await accounts.get(HOST, acct.user_key) is None
    assert await accounts.create(acct) == acct
    assert await accounts.get(HOST, acct.user_key) == acct
    # Accounts never expire.
    assert await store.ttl(account_key(HOST, acct.user_key)) is None


async def test_concurrent_create_yields_one_account(store: Store) -> None:
    accounts = AccountStore(store)
    first = account()
    second = replace(first, created_at=first.created_at + 1, verified_at=first.verified_at + 1)
    results = await asyncio.gather(accounts.create(first), accounts.create(second))
    assert results[0] == results[1]
    assert results[0] in (first, second)
    assert await accounts.list(HOST) == [results[0]]


async def test_create_does_not_overwrite(store: Store) -> None:
    accounts = AccountStore(store)
    original = await accounts.create(account())
    again = await accounts.create(account(email="attacker@evil.example"))
    assert again == original
    assert (await accounts.get(HOST, original.user_key)) == original


async def test_noauth_same_email_other_oid_gets_nothing(store: Store) -> None:
    """nOAuth: another Entra user claiming the victim's email is not the victim."""
    accounts = AccountStore(store)
    victim = await accounts.create(account(OID, "ceo@contoso.com"))
    impostor_key = f"{OID2}.{TID}"
    assert await accounts.get(HOST, impostor_key) is None
    # If the impostor verifies a mailbox of their own, they get their own account.
    own = await accounts.create(account(OID2, "ceo@contoso.com"))
    assert own.user_key == impostor_key
    assert await accounts.get(HOST, victim.user_key) == victim


async def test_accounts_are_per_tenant_host(store: Store) -> None:
    accounts = AccountStore(store)
    acct = await accounts.create(account())
    assert await accounts.get("desk.fabrikam.com", acct.user_key) is None
    # A host that extends another's name does not see its accounts through the prefix scan.
    await accounts.create(account(OID2, host=f"{HOST}.evil.example"))
    assert [a.user_key for a in await accounts.list(HOST)] == [acct.user_key]


async def test_list_find_delete(store: Store) -> None:
    accounts = AccountStore(store)
    a = await accounts.create(account(OID, "Evelyne@Contoso.com"))
    b = await accounts.create(account(OID2, "paul@contoso.com"))
    assert await accounts.list(HOST) == sorted([a, b], key=lambda x: x.user_key)

    assert await accounts.find(HOST, a.user_key) == a
    assert await accounts.find(HOST, "evelyne@contoso.COM") == a  # case-insensitive
    assert await accounts.find(HOST, " paul@contoso.com ") == b
    assert await accounts.find(HOST, "nobody@contoso.com") is None
    assert await accounts.find(HOST, "not:a:key") is None
    assert await accounts.find(HOST, "") is None

    assert await accounts.delete(HOST, a.user_key) is True
    assert await accounts.delete(HOST, a.user_key) is False
    assert await accounts.get(HOST, a.user_key) is None
    assert await accounts.list(HOST) == [b]


async def test_find_by_ambiguous_email_refuses(store: Store) -> None:
    accounts = AccountStore(store)
    await accounts.create(account(OID, "shared@contoso.com"))
    await accounts.create(account(OID2, "shared@contoso.com"))
    with pytest.raises(AmbiguousAccount) as info:
        await accounts.find(HOST, "shared@contoso.com")
    assert sorted(info.value.user_keys) == [f"{OID}.{TID}", f"{OID2}.{TID}"]


async def test_update_email(store: Store) -> None:
    accounts = AccountStore(store)
    acct = await accounts.create(account())
    updated = await accounts.update_email(
        HOST, acct.user_key, "e.martin@contoso.com", 1_800_000_000
    )
    assert updated.email == "e.martin@contoso.com"
    assert updated.verified_at == 1_800_000_000
    assert updated.created_at == acct.created_at
    assert await accounts.get(HOST, acct.user_key) == updated
    with pytest.raises(AccountNotFound):
        await accounts.update_email(HOST, f"{OID2}.{TID}", "x@contoso.com", 1.0)


def test_account_key_must_match_identity() -> None:
    with pytest.raises(ValueError, match="user_key"):
        replace(account(), user_key=f"{OID2}.{TID}")
    with pytest.raises(ValueError, match="tenant_host"):
        account(host="desk:contoso")


async def test_corrupt_record_fails_closed(store: Store) -> None:
    accounts = AccountStore(store)
    await store.set(account_key(HOST, f"{OID}.{TID}"), b"{not json", None)
    with pytest.raises(ValueError, match="corrupt"):
        await accounts.get(HOST, f"{OID}.{TID}")
