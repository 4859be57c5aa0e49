"""`accounts list/show/delete` against the real Redis on loopback (DB 15, flushed)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.procs import free_port
from sidecar.cli import main
from sidecar.commands.accounts_command import delete_account, list_accounts, show_account
from sidecar.config.model import Config
from sidecar.signup.accounts import Account, AccountStore
from sidecar.store.redis_store import RedisStore
from tests.helpers import base_config, config_from
from tests.world import HOST, world_config

TID = "6d5a4e1c-3b2a-4c1d-9e8f-7a6b5c4d3e2f"
ALICE_OID = "6d5a4e1c-0000-4000-8000-00000000a11c"
BOB_OID = "6d5a4e1c-0000-4000-8000-000000000b0b"
NEW_ALICE_OID = "6d5a4e1c-0000-4000-8000-0000000a11ce"
ALICE = f"{ALICE_OID}.{TID}"
BOB = f"{BOB_OID}.{TID}"
NEW_ALICE = f"{NEW_ALICE_OID}.{TID}"
CREATED = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def account(
    oid: str,
    email: str,
    *,
    host: str = HOST,
    name: str | None = "Alice Example",
    given: str | None = "Alice",
    family: str | None = "Example",
) -> Account:
    return Account(
        user_key=f"{oid}.{TID}",
        tenant_host=host,
        oid=oid,
        tid=TID,
        email=email,
        given_name=given,
        family_name=family,
        name=name,
        created_at=CREATED,
        verified_at=CREATED + 42,
    )


def redis_config(redis_url: str) -> Config:
    doc = world_config(
        desk_url="http://127.0.0.1:9",
        emulator_url="http://127.0.0.1:9",
        smtp_port=2525,
        store="redis",
        redis_url=redis_url,
    )
    return config_from(doc)


@pytest.fixture
async def accounts(redis_url: str) -> AsyncIterator[AccountStore]:
    store = RedisStore.from_url(redis_url)
    yield AccountStore(store)
    await store.close()


@pytest.fixture
async def seeded(accounts: AccountStore) -> AccountStore:
    await accounts.create(account(ALICE_OID, "alice@contoso.test"))
    await accounts.create(account(BOB_OID, "bob@contoso.test", name=None, given=None, family=None))
    # Another tenant's account never shows under HOST.
    await accounts.create(account(ALICE_OID, "alice@plain.test", host="plain.example.test"))
    return accounts


async def call(fn: Any, *args: Any) -> tuple[int, str]:
    out = io.StringIO()
    status: int = await fn(*args, out)
    return status, out.getvalue()


async def test_list(redis_url: str, seeded: AccountStore) -> None:
    status, text = await call(list_accounts, redis_config(redis_url), HOST)
    assert status == 0, text
    # By user key (Bob's oid sorts first).
    assert text.splitlines() == [
        f"{BOB}\tbob@contoso.test\t2023-11-14T22:13:20Z\t-\t-\t-",
        f"{ALICE}\talice@contoso.test\t2023-11-14T22:13:20Z\tAlice Example\tAlice\tExample",
    ]


async def test_list_host_is_normalized(redis_url: str, seeded: AccountStore) -> None:
    status, text = await call(list_accounts, redis_config(redis_url), HOST.upper() + ".")
    assert status == 0
    assert len(text.splitlines()) == 2


async def test_list_empty(redis_url: str, accounts: AccountStore) -> None:
    status, text = await call(list_accounts, redis_config(redis_url), HOST)
    assert status == 0
    assert text == f"{HOST}: no accounts\n"


async def test_show_by_key(redis_url: str, seeded: AccountStore) -> None:
    status, text = await call(show_account, redis_config(redis_url), HOST, ALICE)
    assert status == 0, text
    assert text.splitlines() == [
        f"user:         {ALICE}",
        f"tenant host:  {HOST}",
        f"oid:          {ALICE_OID}",
        f"tid:          {TID}",
        "email:        alice@contoso.test (verified)",
        "name:         Alice Example",
        "given name:   Alice",
        "family name:  Example",
        "created:      2023-11-14T22:13:20Z",
        "verified:     2023-11-14T22:14:02Z",
    ]


async def test_show_by_email(redis_url: str, seeded: AccountStore) -> None:
    status, text = await call(show_account, redis_config(redis_url), HOST, "Bob@Contoso.TEST")
    assert status == 0, text
    assert f"user:         {BOB}" in text
    assert "name:         -" in text


async def test_show_unknown(redis_url: str, seeded: AccountStore) -> None:
    config = redis_config(redis_url)
    for user in ("nobody@contoso.test", f"{NEW_ALICE_OID}.{TID}", "not a key", ""):
        status, text = await call(show_account, config, HOST, user)
        assert status == 2, user
        assert "no account" in text


async def test_show_ambiguous_email(redis_url: str, seeded: AccountStore) -> None:
    # Alice was deleted and re-created in Entra (new oid) and verified the same mailbox.
    await seeded.create(account(NEW_ALICE_OID, "alice@contoso.test"))
    status, text = await call(show_account, redis_config(redis_url), HOST, "alice@contoso.test")
    assert status == 2
    assert "several accounts have the email alice@contoso.test" in text
    assert ALICE in text
    assert NEW_ALICE in text
    assert "give the user key instead" in text


async def test_delete_by_email(redis_url: str, seeded: AccountStore) -> None:
    config = redis_config(redis_url)
    status, text = await call(delete_account, config, HOST, "alice@contoso.test")
    assert status == 0, text
    assert f"{HOST}: deleted account {ALICE} (alice@contoso.test)" in text
    assert "the user goes through signup again on their next request" in text
    assert await seeded.get(HOST, ALICE) is None
    # The others are untouched: Bob here, and Alice's account on the other tenant.
    assert await seeded.get(HOST, BOB) is not None
    assert await seeded.get("plain.example.test", ALICE) is not None
    # Deleting again: unknown.
    status, text = await call(delete_account, config, HOST, ALICE)
    assert status == 2
    assert "no account" in text


async def test_delete_by_key(redis_url: str, seeded: AccountStore) -> None:
    status, _ = await call(delete_account, redis_config(redis_url), HOST, BOB)
    assert status == 0
    assert [a.user_key for a in await seeded.list(HOST)] == [ALICE]


async def test_delete_ambiguous_deletes_nothing(redis_url: str, seeded: AccountStore) -> None:
    await seeded.create(account(NEW_ALICE_OID, "alice@contoso.test"))
    status, _ = await call(delete_account, redis_config(redis_url), HOST, "alice@contoso.test")
    assert status == 2
    assert len(await seeded.list(HOST)) == 3


async def test_control_characters_are_escaped(redis_url: str, accounts: AccountStore) -> None:
    await accounts.create(account(ALICE_OID, "alice@contoso.test", name="Eve\x1b[2J\nroot\t"))
    status, text = await call(list_accounts, redis_config(redis_url), HOST)
    assert status == 0
    assert "\x1b" not in text
    assert text.count("\n") == 1
    assert "Eve\\x1b[2J\\x0aroot\\x09" in text


async def test_memory_store_says_why() -> None:
    doc = world_config(
        desk_url="http://127.0.0.1:9", emulator_url="http://127.0.0.1:9", smtp_port=2525
    )
    config = config_from(doc)
    reason = (
        "accounts live in the sidecar process's memory with store: memory; "
        "use store: redis to manage them"
    )
    for fn, args in (
        (list_accounts, (HOST,)),
        (show_account, (HOST, ALICE)),
        (delete_account, (HOST, ALICE)),
    ):
        status, text = await call(fn, config, *args)
        assert status == 2
        assert reason in text


async def test_unknown_host(redis_url: str, seeded: AccountStore) -> None:
    config = redis_config(redis_url)
    for fn, args in (
        (list_accounts, ("nope.example.test",)),
        (show_account, ("nope.example.test", ALICE)),
        (delete_account, ("nope.example.test", ALICE)),
    ):
        status, text = await call(fn, config, *args)
        assert status == 2
        assert "nope.example.test: not a tenant host in this config" in text
    assert await seeded.get(HOST, ALICE) is not None


async def test_sso_less_tenant_is_a_tenant(redis_url: str, seeded: AccountStore) -> None:
    # Accounts can outlive an sso block that was removed: they stay manageable.
    status, text = await call(list_accounts, redis_config(redis_url), "plain.example.test")
    assert status == 0
    assert text.startswith(f"{ALICE}\talice@plain.test\t")


async def test_store_down() -> None:
    config = redis_config(f"redis://:hunter2-password@127.0.0.1:{free_port()}/0")
    for fn, args in (
        (list_accounts, (HOST,)),
        (show_account, (HOST, ALICE)),
        (show_account, (HOST, "alice@contoso.test")),
        (delete_account, (HOST, ALICE)),
    ):
        status, text = await call(fn, config, *args)
        assert status == 2
        assert f"{HOST}: the session store is unavailable (redis: " in text
        assert "check that Redis (session.redis_url or session.redis_sentinel) is reachable" in text
        assert "hunter2" not in text


def test_cli_accounts_needs_a_shared_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base_config("http://127.0.0.1:3000")))
    assert main(["accounts", "list", "-c", str(path), "--host", "desk.example.test"]) == 2
    assert "store: memory" in capsys.readouterr().out
