"""Email verification codes for the first-login signup.

Entra's ``email`` claim is neither verified nor stable, so an account is only
created once the user proves they read mail at an address: a 6-digit code is
mailed to it and typed back. Everything here runs on the shared Store
primitives only (create / take / incr / sets), so limits hold across replicas.

Sending is two-phase so that refused or failed sends never count (contract:
"refused sends do not count")::

    issued = await codes.issue(host, user_key, email, client_ip)  # may raise SendRefused
    try:
        await mailer.send(build_verification_message(..., code=issued.code))
    except MailError:
        await codes.abandon(issued)   # no trace: limits and cooldown as before
        raise
    await codes.confirm_sent(issued)  # the new code replaces the old one

``send_new_code`` wraps exactly that. Choices:

* ``issue`` reserves: it takes the per-user cooldown lock and one slot in the
  per-user and per-IP hourly windows, and generates the code. Nothing about the
  code is stored yet.
* ``confirm_sent`` stores the code (HMAC only) and makes it the user's current
  code; the previous code, if any, is void from then on (only the most recently
  *sent* code works, so a mail arriving late cannot revive an old code). The
  new code remembers the HMACs of the few codes it replaced, so a user typing
  one from an older mail is told so ("superseded") without losing a try. The
  cooldown restarts from the moment the mail went out.
* ``abandon`` releases the reservation. Since the new code was never stored,
  a previously sent, still-valid code keeps working: a failed resend does not
  strand a user who already has a good code in their inbox.
* A process dying between ``issue`` and either call leaves its hourly slot
  counted and the cooldown running until it expires: it fails closed.

Store errors (StoreUnavailable) propagate: signup answers 503, never a pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from sidecar.store import Store
from sidecar.store.records import RecordFormat

CODE_LENGTH = 6
_WINDOW = 3600.0  # the "per hour" of the hourly send limits: a sliding window
_MAX_RAW_CODE_INPUT = 64  # longer form input is not a code; don't even strip it
_MAC_LABEL = "ticketlog-sso/signup-code/v1"

SendRefusal = Literal["cooldown", "user_hourly_limit", "ip_hourly_limit"]
VerifyOutcome = Literal["ok", "wrong", "locked", "expired_or_missing", "superseded"]
# Replaced codes recognised as such (the user's inbox holds at most a few).
_SUPERSEDED_KEPT = 3


@dataclass(frozen=True)
class CodePolicy:
    """Limits from the ``signup:`` config block (seconds; defaults as documented)."""

    ttl: float = 600
    max_attempts: int = 5
    resend_cooldown: float = 60
    max_sends_per_hour: int = 5
    max_sends_per_hour_per_ip: int = 50

    def __post_init__(self) -> None:
        if self.ttl <= 0:
            raise ValueError("signup code_ttl must be positive")
        if self.max_attempts < 1:
            raise ValueError("signup max_attempts must be at least 1")
        if self.resend_cooldown < 0:
            raise ValueError("signup resend_cooldown must not be negative")
        if self.max_sends_per_hour < 1 or self.max_sends_per_hour_per_ip < 1:
            raise ValueError("signup hourly send limits must be at least 1")


class SendRefused(Exception):
    """A code may not be sent now; the page shows ``retry_after`` (seconds). Maps to 429."""

    def __init__(self, reason: SendRefusal, retry_after: float) -> None:
        super().__init__(
            f"verification code send refused: {reason} (retry after {retry_after:.0f}s)"
        )
        self.reason: SendRefusal = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class IssuedCode:
    """A reserved, not yet committed code: pass it to confirm_sent or abandon."""

    host: str
    user_key: str
    email: str
    code_id: str
    # SECURITY: kept out of repr so a logged IssuedCode (debug log, traceback
    # with locals, error reporter) never discloses a live code.
    code: str = field(repr=False)
    ttl: float
    """Lifetime the code gets once sent, for the mail text ("valid for N minutes")."""
    _cooldown_held: bool = field(repr=False)
    _user_slot: str = field(repr=False)
    _ip_key: str = field(repr=False)
    _ip_slot: str = field(repr=False)

    @property
    def ttl_minutes(self) -> int:
        return max(1, round(self.ttl / 60))


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of one verification attempt.

    ok -> create the account with ``email``; wrong -> 400 with ``attempts_left``;
    locked -> 429, a new code must be sent; expired_or_missing -> 400, send a new code;
    superseded -> a code a newer one replaced: 400, and no try was used.
    """

    outcome: VerifyOutcome
    email: str | None = None
    attempts_left: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass(frozen=True)
class _CodeRecord:
    """The stored state of one sent code, under ``signup:code:{host}:{user}:{id}``.

    The short field names are the JSON keys every release since the first has
    stored: replicas of two releases side by side in a rolling deploy read each
    other's records only as long as these names stay.
    """

    id: str
    email: str
    mac: str
    """The code's keyed hash; "" once voided, so no code matches any more."""
    exp: float
    """When the code stops working (epoch seconds)."""
    locked: bool
    sup: tuple[tuple[str, str], ...] = ()
    """(email, mac) of the codes this one replaced, newest first."""

    def __post_init__(self) -> None:
        # JSON gives lists back; keep the declared tuples so a record can be
        # extended (``own + sup``) and compared like the one that was written.
        object.__setattr__(self, "sup", tuple((email, mac) for email, mac in self.sup))


def _code_fields_typed(record: _CodeRecord) -> bool:
    # SECURITY: the fields verify() decides on must hold what they claim. A
    # "locked" that is not a real bool, or an expiry that is not a number, is
    # an unreadable record (no code at all), never a truthy or falsy guess.
    return (
        all(isinstance(v, str) for v in (record.id, record.email, record.mac))
        and isinstance(record.exp, int | float)
        and not isinstance(record.exp, bool)
        and isinstance(record.locked, bool)
        and all(isinstance(v, str) for pair in record.sup for v in pair)
    )


#: Version 0 (no "v") is the unversioned record of earlier releases, with the same
#: field names: it reads without an upgrade step. An unreadable record decodes to
#: None, which every caller treats as no code (fail closed; the next send replaces it).
_CODE_RECORD = RecordFormat(_CodeRecord, version=1, check=_code_fields_typed)


def _check_part(what: str, value: str) -> None:
    # SECURITY: ":" separates key parts and "|" separates MAC fields; either
    # inside a host or user key could make two different users share a key or
    # a MAC input. Control characters have no business in either.
    if not value or any(c in ":|" or c.isspace() or ord(c) < 0x20 for c in value):
        raise ValueError(f"invalid {what}")


def _check_email(email: str) -> None:
    # The email is normalised by email_rules before it gets here; refuse
    # anything that could not have come out of normalize_typed_email.
    if not email or "@" not in email or any(ord(c) < 0x21 or ord(c) == 0x7F for c in email):
        raise ValueError("invalid email")


def normalize_code_input(raw: str) -> str | None:
    """The 6 ASCII digits the user typed, or None when it is not a code.

    Spaces (and tabs) anywhere are dropped: people copy "123 456". Only ASCII
    digits count: str.isdigit() would accept "١٢٣٤٥٦" or superscripts.
    """
    if not isinstance(raw, str) or len(raw) > _MAX_RAW_CODE_INPUT:
        return None
    compact = "".join(raw.split())
    if len(compact) != CODE_LENGTH or not all("0" <= c <= "9" for c in compact):
        return None
    return compact


def client_ip_bucket(client_ip: str) -> str:
    """The unit the per-IP limit counts: the address, or its /64 for IPv6.

    SECURITY: any IPv6 client holds at least a /64 and can rotate through it
    freely, so counting per IPv6 address would not limit anyone. IPv4-mapped
    addresses count as the IPv4 address. Unparsable input (the caller is
    expected to pass a real peer or trusted X-Forwarded-For address) shares a
    single bucket, so it cannot be used to get fresh limits.
    """
    try:
        addr = ipaddress.ip_address(client_ip.strip())
    except ValueError:
        return "invalid"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class VerificationCodes:
    """Issue and check signup codes for (tenant host, user key).

    ``hash_key`` must be a secret dedicated to this purpose (e.g. derived with
    HKDF from the session key): codes are stored only as an HMAC under it.
    ``clock`` is injectable for tests; it drives code expiry and the hourly
    windows (the cooldown uses the store's own TTL).
    """

    def __init__(
        self,
        store: Store,
        policy: CodePolicy,
        hash_key: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(hash_key) < 16:
            raise ValueError("hash_key must be at least 16 bytes")
        self._store = store
        self._policy = policy
        self._hash_key = hash_key
        self._clock = clock

    @property
    def policy(self) -> CodePolicy:
        return self._policy

    @policy.setter
    def policy(self, policy: CodePolicy) -> None:
        """A reloaded ``signup:`` block: the next send or check follows it."""
        self._policy = policy

    # -- keys ---------------------------------------------------------------

    @staticmethod
    def _user_ns(host: str, user_key: str) -> str:
        _check_part("tenant host", host)
        _check_part("user key", user_key)
        return f"{host}:{user_key}"

    @staticmethod
    def _cooldown_key(ns: str) -> str:
        return f"signup:cooldown:{ns}"

    @staticmethod
    def _user_sends_key(ns: str) -> str:
        return f"signup:sends:{ns}"

    @staticmethod
    def _ip_sends_key(bucket: str) -> str:
        # Global across tenants: the limit protects the mail relay and its
        # sender reputation, which all tenants share.
        return f"signup:ipsends:{bucket}"

    @staticmethod
    def _current_key(ns: str) -> str:
        return f"signup:current:{ns}"

    @staticmethod
    def _code_key(ns: str, code_id: str) -> str:
        return f"signup:code:{ns}:{code_id}"

    @staticmethod
    def _attempts_key(ns: str, code_id: str) -> str:
        return f"signup:attempts:{ns}:{code_id}"

    def _mac(self, host: str, user_key: str, email: str, code: str) -> str:
        # SECURITY: the code is stored only as this keyed hash. A plain hash of
        # a 6-digit code is reversed by trying all 10^6 values, so anyone who
        # can read the store (a backup, a replica, MONITOR) would get live
        # codes; without the key they get nothing. Binding host, user and email
        # means a code is good only for the address it was sent to.
        msg = f"{_MAC_LABEL}|{host}|{user_key}|{email}|{code}".encode()
        return hmac.new(self._hash_key, msg, hashlib.sha256).hexdigest()

    # -- hourly windows -------------------------------------------------------

    async def _take_slot(self, key: str, member: str, limit: int, now: float) -> float | None:
        """Add ``member`` to a sliding one-hour window; None when within ``limit``.

        Add first, count after: of several concurrent callers the last to add
        sees everyone before it, so no more than ``limit`` can ever be
        admitted (at the limit, racing callers may all be refused: fail
        closed). On refusal our member is removed again and the seconds until
        a slot frees up are returned.
        """
        await self._store.add_member(key, member, _WINDOW)
        active: list[tuple[float, str]] = []
        for m in await self._store.members(key):
            ts = _slot_time(m)
            if ts is None or ts <= now - _WINDOW:
                await self._store.remove_member(key, m)  # aged out; idempotent
            else:
                active.append((ts, m))
        if len(active) <= limit:
            return None
        await self._store.remove_member(key, member)
        others = sorted(ts for ts, m in active if m != member)
        # We fit once len(others) - k < limit, i.e. when the k-th oldest ages out.
        k = max(1, len(others) - limit + 1)
        oldest = others[min(k, len(others)) - 1] if others else now
        return max(1.0, oldest + _WINDOW - now)

    # -- sending --------------------------------------------------------------

    async def issue(self, host: str, user_key: str, email: str, client_ip: str) -> IssuedCode:
        """Reserve a send and generate a code; raises SendRefused.

        Call confirm_sent after the mail is handed to the relay, abandon if it
        was not. Checks, in order: the per-user cooldown, the per-user hourly
        limit, the per-IP hourly limit.
        """
        ns = self._user_ns(host, user_key)
        _check_email(email)
        policy = self._policy
        now = self._clock()
        code_id = secrets.token_hex(12)
        slot = f"{now:.6f}:{code_id}"
        ip_key = self._ip_sends_key(client_ip_bucket(client_ip))
        cooldown_key = self._cooldown_key(ns)
        user_key_sends = self._user_sends_key(ns)

        cooldown_held = False
        user_slot_held = False
        try:
            if policy.resend_cooldown > 0:
                # SECURITY: create-once is the lock: of two concurrent sends for
                # one user (double click, two tabs, a script) only one gets
                # past here, so the cooldown cannot be raced.
                if not await self._store.create(
                    cooldown_key, code_id.encode(), policy.resend_cooldown
                ):
                    left = await self._store.ttl(cooldown_key)
                    raise SendRefused(
                        "cooldown", left if left is not None else policy.resend_cooldown
                    )
                cooldown_held = True
            retry = await self._take_slot(user_key_sends, slot, policy.max_sends_per_hour, now)
            if retry is not None:
                raise SendRefused("user_hourly_limit", retry)
            user_slot_held = True
            retry = await self._take_slot(ip_key, slot, policy.max_sends_per_hour_per_ip, now)
            if retry is not None:
                raise SendRefused("ip_hourly_limit", retry)
        except BaseException:
            # Refused (or the store failed half way): undo what this call
            # reserved, so a refused send does not count.
            if user_slot_held:
                await _quietly(self._store.remove_member(user_key_sends, slot))
            if cooldown_held:
                await _quietly(self._release_cooldown(cooldown_key, code_id))
            raise

        # SECURITY: secrets (the OS CSPRNG), never random: a predictable code
        # is no proof of mailbox access. randbelow is uniform over 10^6.
        code = f"{secrets.randbelow(10**CODE_LENGTH):0{CODE_LENGTH}d}"
        return IssuedCode(
            host=host,
            user_key=user_key,
            email=email,
            code_id=code_id,
            code=code,
            ttl=policy.ttl,
            _cooldown_held=cooldown_held,
            _user_slot=slot,
            _ip_key=ip_key,
            _ip_slot=slot,
        )

    async def confirm_sent(self, issued: IssuedCode) -> None:
        """The mail went out: store the code, make it current, restart the cooldown."""
        policy = self._policy
        ns = self._user_ns(issued.host, issued.user_key)
        replaced = await self._current_record(ns)
        superseded: tuple[tuple[str, str], ...] = ()
        if replaced is not None and replaced.id != issued.code_id:
            own = ((replaced.email, replaced.mac),) if replaced.mac else ()
            superseded = (own + replaced.sup)[:_SUPERSEDED_KEPT]
        record = _CodeRecord(
            id=issued.code_id,
            email=issued.email,
            mac=self._mac(issued.host, issued.user_key, issued.email, issued.code),
            # The code lives ttl from the moment it was sent, as the mail says.
            exp=self._clock() + policy.ttl,
            locked=False,
            sup=superseded,
        )
        current_key = self._current_key(ns)
        previous = await self._store.get(current_key)
        await self._store.set(
            self._code_key(ns, issued.code_id), _CODE_RECORD.encode(record), policy.ttl
        )
        await self._store.set(current_key, issued.code_id.encode(), policy.ttl)
        if previous is not None and previous.decode() != issued.code_id:
            # Only the latest code works: void the one it replaces.
            old_id = previous.decode()
            await self._store.delete(self._code_key(ns, old_id), self._attempts_key(ns, old_id))
        if issued._cooldown_held:
            await self._store.set(
                self._cooldown_key(ns), issued.code_id.encode(), policy.resend_cooldown
            )

    async def abandon(self, issued: IssuedCode) -> None:
        """The mail could not be sent: forget the reservation entirely.

        The send does not count towards any limit, the cooldown is lifted, and
        the user's previous code (if still valid) keeps working, since the new
        code was never stored.
        """
        ns = self._user_ns(issued.host, issued.user_key)
        await self._store.remove_member(self._user_sends_key(ns), issued._user_slot)
        await self._store.remove_member(issued._ip_key, issued._ip_slot)
        if issued._cooldown_held:
            await self._release_cooldown(self._cooldown_key(ns), issued.code_id)

    async def send_new_code(
        self,
        host: str,
        user_key: str,
        email: str,
        client_ip: str,
        deliver: Callable[[IssuedCode], Awaitable[None]],
    ) -> IssuedCode:
        """issue, then ``await deliver(issued)``, then confirm_sent, or abandon if it raised."""
        issued = await self.issue(host, user_key, email, client_ip)
        try:
            await deliver(issued)
        except BaseException:
            await _quietly(self.abandon(issued))
            raise
        await self.confirm_sent(issued)
        return issued

    async def _release_cooldown(self, key: str, code_id: str) -> None:
        # Delete only our own lock. get-then-delete is not atomic, but the lock
        # we hold outlives this window by the whole cooldown (seconds), so it
        # cannot have expired and been retaken in between.
        if await self._store.get(key) == code_id.encode():
            await self._store.delete(key)

    # -- checking ---------------------------------------------------------------

    async def verify(self, host: str, user_key: str, code: str) -> VerifyResult:
        """Check a typed code. Never raises on bad input: it counts as a wrong code."""
        ns = self._user_ns(host, user_key)
        policy = self._policy
        candidate = normalize_code_input(code)

        record = await self._current_record(ns)
        if record is None:
            return VerifyResult("expired_or_missing")
        if record.locked:
            return VerifyResult("locked")
        now = self._clock()
        if now >= record.exp:
            return VerifyResult("expired_or_missing")

        if candidate is not None and self._superseded(host, user_key, record, candidate):
            # A code from an older mail: the user's mistake, not a guess. It uses up no
            # try: a guess costs the same whatever it is, and matching a replaced code
            # (which works for nothing) tells a guesser nothing about the current one.
            return VerifyResult("superseded")

        # SECURITY (online brute force): count the attempt atomically BEFORE
        # comparing. Read-compare-write would let parallel guesses all see
        # "0 attempts so far" and test far more than max_attempts of the 10^6
        # codes. The counter is per code, so a new code starts afresh.
        attempts_key = self._attempts_key(ns, record.id)
        attempt = await self._store.incr(attempts_key, policy.ttl)
        if attempt > policy.max_attempts:
            return VerifyResult("locked")

        expected = record.mac
        right = False
        if candidate is not None and expected:
            # SECURITY: constant-time comparison, no timing oracle on the MAC.
            actual = self._mac(host, user_key, record.email, candidate)
            right = hmac.compare_digest(actual, expected)

        code_key = self._code_key(ns, record.id)
        if right:
            # SECURITY (replay, double submit): single use. take() hands the
            # record to exactly one caller; a concurrent second submit of the
            # same code finds nothing.
            taken = await self._store.take(code_key)
            if taken is None:
                return VerifyResult("expired_or_missing")
            taken_record = _CODE_RECORD.decode(taken)
            if taken_record is None or taken_record.locked:
                # A concurrent attempt voided it first.
                return VerifyResult("locked" if taken_record else "expired_or_missing")
            await self._store.delete(attempts_key)
            return VerifyResult("ok", email=record.email)

        if attempt >= policy.max_attempts:
            # This attempt used up the allowance: void the code. The MAC is
            # dropped so even the right code no longer matches, and the
            # tombstone makes every later attempt "locked" until a new code is
            # sent. (Racing with a take of the right code at most leaves a
            # tombstone behind a code already used: harmless.)
            void = _CodeRecord(
                id=record.id,
                email=record.email,
                mac="",
                exp=record.exp,
                locked=True,
            )
            await self._store.set(code_key, _CODE_RECORD.encode(void), max(1.0, record.exp - now))
            return VerifyResult("locked")
        return VerifyResult("wrong", attempts_left=policy.max_attempts - attempt)

    def _superseded(self, host: str, user_key: str, record: _CodeRecord, candidate: str) -> bool:
        """``candidate`` is a code ``record`` replaced (and not the current one)."""
        if record.mac and hmac.compare_digest(
            self._mac(host, user_key, record.email, candidate), record.mac
        ):
            return False
        return any(
            hmac.compare_digest(self._mac(host, user_key, email, candidate), mac)
            for email, mac in record.sup
        )

    async def _current_record(self, ns: str) -> _CodeRecord | None:
        current = await self._store.get(self._current_key(ns))
        if current is None:
            return None
        code_id = current.decode("ascii", "replace")
        raw = await self._store.get(self._code_key(ns, code_id))
        if raw is None:
            return None
        record = _CODE_RECORD.decode(raw)
        if record is None or record.id != code_id:
            return None
        return record

    async def pending_email(self, host: str, user_key: str) -> str | None:
        """The address a still-usable code was sent to (for "we sent a code to ..."), else None.

        None also after a lockout or expiry: the page then offers to send a new code.
        """
        record = await self._current_record(self._user_ns(host, user_key))
        if record is None or record.locked or self._clock() >= record.exp:
            return None
        return record.email

    async def cooldown_left(self, host: str, user_key: str) -> float:
        """Seconds before another code may be sent to this user (0 when it may now)."""
        if self._policy.resend_cooldown <= 0:
            return 0.0
        left = await self._store.ttl(self._cooldown_key(self._user_ns(host, user_key)))
        return max(0.0, left) if left is not None else 0.0


def _slot_time(member: str) -> float | None:
    ts, sep, _ = member.partition(":")
    if not sep:
        return None
    try:
        return float(ts)
    except ValueError:
        return None


async def _quietly(aw: Awaitable[None]) -> None:
    """Best-effort cleanup while another exception is on its way out."""
    with contextlib.suppress(Exception):  # the original error is the one to report
        await aw
