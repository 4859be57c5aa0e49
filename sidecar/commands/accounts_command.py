"""``ticketlog-sso accounts {list,show,delete}``: the first-login accounts of one tenant host.

Accounts live in the shared session store (Redis); with ``session.store: memory`` they live
inside the running sidecar process, out of this command's reach, so it exits 2 and says why.

SECURITY: finding an account by email is for this operator command only (nOAuth; see
``sidecar.signup.accounts``). Values printed here come from ID-token claims and typed
addresses: control characters are escaped so a crafted name cannot drive the terminal.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TextIO

from sidecar.commands.exit_codes import EXIT_INVALID, EXIT_OK
from sidecar.config.model import Config, normalize_host
from sidecar.runtime import open_store
from sidecar.signup.accounts import Account, AccountStore, AmbiguousAccount
from sidecar.store import StoreUnavailable

__all__ = ["delete_account", "list_accounts", "show_account"]

MEMORY_STORE_REASON = (
    "accounts live in the sidecar process's memory with store: memory; "
    "use store: redis to manage them"
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


async def list_accounts(config: Config, host: str, out: TextIO) -> int:
    """One account a line: user key, verified email, created (ISO-8601 UTC), names."""

    async def run(tenant_host: str, accounts: AccountStore) -> int:
        found = await accounts.list(tenant_host)
        for account in found:
            print(_one_line(account), file=out)
        if not found:
            print(f"{tenant_host}: no accounts", file=out)
        return EXIT_OK

    return await _with_accounts(config, host, out, run)


async def show_account(config: Config, host: str, user: str, out: TextIO) -> int:
    """Every field of one account; ``user`` is the user key or the verified email."""

    async def run(tenant_host: str, accounts: AccountStore) -> int:
        account = await _find(accounts, tenant_host, user, out)
        if account is None:
            return EXIT_INVALID
        for label, value in _fields(account):
            print(f"{label + ':':<13} {value}", file=out)
        return EXIT_OK

    return await _with_accounts(config, host, out, run)


async def delete_account(config: Config, host: str, user: str, out: TextIO) -> int:
    """Remove the account: the user goes through signup again at their next request."""

    async def run(tenant_host: str, accounts: AccountStore) -> int:
        account = await _find(accounts, tenant_host, user, out)
        if account is None:
            return EXIT_INVALID
        if not await accounts.delete(tenant_host, account.user_key):
            print(f"{tenant_host}: no account {_safe(user)} (deleted meanwhile)", file=out)
            return EXIT_INVALID
        print(
            f"{tenant_host}: deleted account {_safe(account.user_key)} "
            f"({_safe(account.email)}): the user goes through signup again on their next "
            f"request (a replica may take up to {config.session.cache_ttl:g}s to notice)",
            file=out,
        )
        return EXIT_OK

    return await _with_accounts(config, host, out, run)


async def _with_accounts(
    config: Config,
    host: str,
    out: TextIO,
    run: Callable[[str, AccountStore], Awaitable[int]],
) -> int:
    """The checks every subcommand shares, then ``run`` on the opened store (closed after)."""
    if config.session.store == "memory":
        print(f"accounts: {MEMORY_STORE_REASON}", file=out)
        return EXIT_INVALID
    tenant_host = normalize_host(host)
    if not any(t.host == tenant_host for t in config.tenants):
        known = ", ".join(t.host for t in config.tenants)
        print(f"{_safe(host)}: not a tenant host in this config (tenants: {known})", file=out)
        return EXIT_INVALID
    store = open_store(config)
    try:
        return await run(tenant_host, AccountStore(store))
    except StoreUnavailable as exc:
        # The message names the exception type only, never the Redis URL (it may hold a
        # password).
        print(
            f"{tenant_host}: the session store is unavailable ({exc}): check that Redis "
            "(session.redis_url or session.redis_sentinel) is reachable from here",
            file=out,
        )
        return EXIT_INVALID
    except ValueError as exc:
        # A corrupt record (AccountStore fails closed), or a host the key rules refuse.
        print(f"{tenant_host}: {exc}", file=out)
        return EXIT_INVALID
    finally:
        await store.close()


async def _find(accounts: AccountStore, host: str, user: str, out: TextIO) -> Account | None:
    try:
        account = await accounts.find(host, user)
    except AmbiguousAccount as exc:
        keys = ", ".join(_safe(k) for k in exc.user_keys)
        print(
            f"{host}: several accounts have the email {_safe(user.strip())}: {keys}; "
            "give the user key instead",
            file=out,
        )
        return None
    if account is None:
        print(
            f"{host}: no account {_safe(user.strip())} (give a user key or a verified email)",
            file=out,
        )
    return account


def _one_line(account: Account) -> str:
    return "\t".join(
        [
            _safe(account.user_key),
            _safe(account.email),
            _iso(account.created_at),
            _opt(account.name),
            _opt(account.given_name),
            _opt(account.family_name),
        ]
    )


def _fields(account: Account) -> list[tuple[str, str]]:
    return [
        ("user", _safe(account.user_key)),
        ("tenant host", _safe(account.tenant_host)),
        ("oid", _safe(account.oid)),
        ("tid", _safe(account.tid)),
        ("email", f"{_safe(account.email)} (verified)"),
        ("name", _opt(account.name)),
        ("given name", _opt(account.given_name)),
        ("family name", _opt(account.family_name)),
        ("created", _iso(account.created_at)),
        ("verified", _iso(account.verified_at)),
    ]


def _iso(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _opt(value: str | None) -> str:
    return "-" if value is None or value == "" else _safe(value)


def _safe(value: str) -> str:
    """Escape control characters (terminal escapes, CR/LF, tabs between columns)."""
    return _CONTROL.sub(_escape, value)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
