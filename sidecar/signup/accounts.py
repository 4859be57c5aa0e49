"""Accounts: one per (tenant host, Entra user), created only after email verification.

An account is keyed by the user key ``{oid}.{tid}`` and nothing else.

SECURITY (nOAuth): Entra's ``email`` claim is mutable and, on single-tenant
registrations, unverified: any tenant admin, or a user editing their own
profile, can set it to someone else's address. An app that finds or links
accounts by email lets that person sign in as the victim. So sign-in only ever
calls ``get(host, user_key)``; ``find`` (which also matches the verified email)
exists for the operator CLI and must never be used on a request path.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sidecar import logs
from sidecar.store import Store
from sidecar.store.records import RecordFormat

_PREFIX = "account:"


class AccountNotFound(KeyError):
    """No account under that user key."""


class AmbiguousAccount(LookupError):
    """``find`` by email matched several accounts: the operator must pick a user key."""

    def __init__(self, user_keys: list[str]) -> None:
        super().__init__(f"several accounts have that email: {', '.join(user_keys)}")
        self.user_keys = user_keys


@dataclass(frozen=True)
class Account:
    user_key: str
    tenant_host: str
    oid: str
    tid: str
    email: str
    """The verified address: proven by a code sent to it, never taken from a claim."""
    given_name: str | None
    family_name: str | None
    name: str | None
    created_at: float
    verified_at: float

    def __post_init__(self) -> None:
        # The key is derived, not chosen: a mismatch would file the account
        # under another user's key.
        if self.user_key != f"{self.oid}.{self.tid}":
            raise ValueError("user_key must be '{oid}.{tid}'")
        _check_key_part("tenant_host", self.tenant_host)
        _check_key_part("user_key", self.user_key)


def _account_fields_typed(account: Account) -> bool:
    # JSON hands back whatever was stored: an email that is not a string or a
    # timestamp that is not a number would otherwise be passed on as the user's
    # identity. (user_key and tenant_host are checked by Account itself.)
    names = (account.given_name, account.family_name, account.name)
    return (
        all(isinstance(v, str) for v in (account.oid, account.tid, account.email))
        and all(v is None or isinstance(v, str) for v in names)
        and all(_is_number(v) for v in (account.created_at, account.verified_at))
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: Version 0 (no "v") is the unversioned record of earlier releases, with the same
#: field names: it reads without an upgrade step.
ACCOUNT_RECORD = RecordFormat(Account, version=1, check=_account_fields_typed)


def _decode_account(raw: bytes) -> Account:
    account = ACCOUNT_RECORD.decode(raw)
    if account is None:
        # Fail closed, and loudly: an account that exists but cannot be read is
        # not "no account" (signup would then try to create it over the stored one).
        raise ValueError("stored account record is corrupt")
    return account


def _check_key_part(what: str, value: str) -> None:
    # SECURITY: ":" separates key parts. A host or user key containing one
    # could make two different (host, user) pairs share a key, or make
    # list(host) see another tenant's accounts through the prefix scan.
    # A stored record may hold anything JSON can: only a string is a key part.
    if (
        not isinstance(value, str)
        or not value
        or ":" in value
        or any(c.isspace() or ord(c) < 0x20 for c in value)
    ):
        raise ValueError(f"invalid {what}")


def account_key(host: str, user_key: str) -> str:
    _check_key_part("tenant_host", host)
    _check_key_part("user_key", user_key)
    return f"{_PREFIX}{host}:{user_key}"


class AccountStore:
    """Accounts on the shared Store: JSON under ``account:{host}:{user_key}``, no TTL.

    Store errors (StoreUnavailable) propagate: callers fail closed with a 503.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, host: str, user_key: str) -> Account | None:
        raw = await self._store.get(account_key(host, user_key))
        return None if raw is None else _decode_account(raw)

    async def create(self, account: Account) -> Account:
        """Create the account once; return whichever account ends up stored.

        Two tabs verifying at the same moment both call this: the store's
        create-once primitive lets exactly one write win and the other caller
        gets the winner's account back, so both sessions agree on one record.
        ``durable=True``: an account lost in a Redis failover would silently
        send the user back through signup, so wait for a replica.
        """
        key = account_key(account.tenant_host, account.user_key)
        for _ in range(3):
            if await self._store.create(key, ACCOUNT_RECORD.encode(account), None, durable=True):
                return account
            existing = await self._store.get(key)
            if existing is not None:
                return _decode_account(existing)
            # Deleted between our create and get (operator delete racing a
            # signup): try again rather than report a phantom.
        raise RuntimeError("account creation kept racing with deletion")

    async def update_email(
        self, host: str, user_key: str, email: str, verified_at: float
    ) -> Account:
        """Record a newly verified address (the user re-verified after a change).

        A read-modify-write: the only concurrent writers are other verifications
        of the same user (last verified address wins, both were proven) and an
        operator delete, which this can at worst undo within the same instant.
        Raises AccountNotFound when there is no account to update.
        """
        key = account_key(host, user_key)
        raw = await self._store.get(key)
        if raw is None:
            raise AccountNotFound(user_key)
        updated = replace(_decode_account(raw), email=email, verified_at=verified_at)
        await self._store.set(key, ACCOUNT_RECORD.encode(updated), None)
        return updated

    async def delete(self, host: str, user_key: str) -> bool:
        return await self._store.delete(account_key(host, user_key)) > 0

    async def list(self, host: str) -> list[Account]:
        """Every account of a tenant, by user key (operator CLI: scans keys)."""
        _check_key_part("tenant_host", host)
        prefix = f"{_PREFIX}{host}:"
        accounts = []
        for key in sorted(await self._store.keys_with_prefix(prefix)):
            raw = await self._store.get(key)
            if raw is None:  # deleted since the scan
                continue
            try:
                accounts.append(_decode_account(raw))
            except ValueError:
                # One unreadable record must not hide the others; name it for the operator.
                logs.warning("account_record_corrupt", key=key)
        return accounts

    async def find(self, host: str, user_or_email: str) -> Account | None:
        """Operator CLI lookup by user key or by verified email.

        SECURITY (nOAuth): never call this to sign someone in; see the module
        docstring. Raises AmbiguousAccount when an email matches several
        accounts (e.g. a user deleted and recreated in Entra gets a new oid and
        verifies the same mailbox), so an operator cannot delete the wrong one.
        """
        wanted = user_or_email.strip()
        if not wanted:
            return None
        if "@" not in wanted:
            try:
                key = account_key(host, wanted)
            except ValueError:
                return None  # not a well-formed user key
            raw = await self._store.get(key)
            return None if raw is None else _decode_account(raw)
        folded = wanted.casefold()
        matches = [a for a in await self.list(host) if a.email.casefold() == folded]
        if len(matches) > 1:
            raise AmbiguousAccount([a.user_key for a in matches])
        return matches[0] if matches else None
