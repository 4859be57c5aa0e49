"""The signed-in session on aiohttp-session: one AbstractStorage of ours over the store.

aiohttp-session gives the request its session (`get_session`, `new_session`)
and its middleware saves a changed session into the answer. This storage adds
what an auth proxy needs of it:

* The cookie holds an opaque random id and a MAC under `session.secret_keys`
  (the first key signs, all verify: rotation), so a forged or garbage cookie
  is refused before any store lookup.
* A new id at every sign-in (no session fixation, OWASP Session Management).
* The store key is a SHA-256 hash of the id, so a store dump holds no usable
  cookie; the record names its host, and a cookie of one desk is no session on
  another.
* An absolute lifetime and a sliding idle timeout, checked at every read.
* Each Entra `sid` indexes its sessions, so Entra's front-channel logout ends
  them on every replica (OIDC Front-Channel Logout 1.0 §2).

The cookie name and its attributes depend on the request's public scheme
(sidecar.cookies: `__Host-` over https), so load_cookie and save_cookie are ours.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from aiohttp import web
from aiohttp_session import AbstractStorage, Session, SessionData

from sidecar.cookies import SESSION_COOKIE, clear_cookie, read_cookie, set_cookie
from sidecar.oidc.idtoken import IdTokenClaims
from sidecar.request_scope import SCOPE
from sidecar.secret_keys import DerivedKeys
from sidecar.store import Store
from sidecar.store.records import RecordFormat

# Sliding the idle timeout rewrites the session; do it at most this often, so a
# busy user does not cost a store write per request.
TOUCH_INTERVAL = 60.0

#: The key of the record in an aiohttp-session Session's mapping.
RECORD = "record"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A signed-in session as the store keeps it."""

    key: str  # store key (a hash of the cookie's id), never the id itself
    host: str
    user_key: str  # "{oid}.{tid}"
    oid: str
    tid: str
    email_claim: str | None
    email_domain_verified: bool | None
    given_name: str | None
    family_name: str | None
    name: str | None
    entra_sid: str | None
    login_hint: str | None
    created_at: float
    last_seen: float
    roles: tuple[str, ...] | None = None  # the ID token's app roles; None: no roles claim

    def __post_init__(self) -> None:
        # JSON gives a list back; a tuple keeps the frozen record hashable.
        if self.roles is not None and not isinstance(self.roles, tuple):
            object.__setattr__(self, "roles", tuple(self.roles))


def _well_typed(record: SessionRecord) -> bool:
    texts = (record.key, record.host, record.user_key, record.oid, record.tid)
    optional_texts = (
        record.email_claim,
        record.given_name,
        record.family_name,
        record.name,
        record.entra_sid,
        record.login_hint,
    )
    return (
        all(isinstance(t, str) for t in texts)
        and all(t is None or isinstance(t, str) for t in optional_texts)
        and record.email_domain_verified in (None, True, False)
        and all(isinstance(t, int | float) for t in (record.created_at, record.last_seen))
        and (record.roles is None or all(isinstance(r, str) for r in record.roles))
    )


# Version 0: written before records carried a version; the same fields.
SESSION_RECORD = RecordFormat(SessionRecord, version=1, check=_well_typed)


def store_key(host: str, session_id: str) -> str:
    # A hash of the id, so a store dump holds no usable cookie. The id has 256 random
    # bits, so a plain SHA-256 cannot be reversed; a keyed hash would break when
    # session.secret_keys rotate.
    return f"session:{host}:{hashlib.sha256(session_id.encode()).hexdigest()}"


def _sid_index(host: str, entra_sid: str) -> str:
    return f"sid:{host}:{entra_sid}"


class SessionStorage(AbstractStorage):
    def __init__(
        self,
        store: Store,
        keys: DerivedKeys,
        *,
        lifetime: float,
        idle_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(cookie_name=SESSION_COOKIE, max_age=int(lifetime), samesite="Lax")
        self._store = store
        self._keys = keys
        self.lifetime = lifetime
        self.idle_timeout = idle_timeout
        self._clock = clock

    # aiohttp-session's interface.

    async def new_session(self) -> Session:
        """A session with a fresh random id, for a sign-in that just succeeded."""
        return Session(secrets.token_urlsafe(32), data=None, new=True, max_age=self.max_age)

    async def load_session(self, request: web.Request) -> Session:
        ctx = request[SCOPE]
        found = await self.read(ctx.tenant.host, self.load_cookie(request))
        if found is None:
            return Session(None, data=None, new=True, max_age=self.max_age)
        session_id, record = found
        # max_age None: the lifetimes were checked by read(); aiohttp-session's own
        # check counts from the last change, which is not our absolute lifetime.
        data: SessionData = {"created": int(record.created_at), "session": {RECORD: record}}
        return Session(session_id, data=data, new=False, max_age=None)

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        """A new sign-in is written with its cookie; an ended one clears the cookie (end()
        has deleted it from the store already)."""
        ctx = request[SCOPE]
        if session.empty:
            clear_cookie(response, ctx, SESSION_COOKIE)
            return
        record: SessionRecord = session[RECORD]
        await self.write(record)
        set_cookie(response, ctx, SESSION_COOKIE, self.cookie_value(session), self.lifetime)

    def load_cookie(self, request: web.Request) -> str | None:
        # SECURITY: by the public scheme's name only (sidecar.cookies: cookie tossing).
        return read_cookie(request[SCOPE], SESSION_COOKIE)

    # The store side, request-free so that commands and tests use it too.

    def new_record(self, host: str, session_id: str, claims: IdTokenClaims) -> SessionRecord:
        now = self._clock()
        return SessionRecord(
            key=store_key(host, session_id),
            host=host,
            user_key=claims.user_key,
            oid=claims.oid,
            tid=claims.tid,
            email_claim=claims.email,
            email_domain_verified=claims.email_domain_verified,
            given_name=claims.given_name,
            family_name=claims.family_name,
            name=claims.name,
            entra_sid=claims.sid,
            login_hint=claims.login_hint,
            created_at=now,
            last_seen=now,
            roles=claims.roles,
        )

    def cookie_value(self, session: Session) -> str:
        assert isinstance(session.identity, str)
        return self._keys.sign_cookie(session.identity)

    def _ttl(self, record: SessionRecord, now: float) -> float:
        return max(1.0, min(self.idle_timeout, record.created_at + self.lifetime - now))

    async def write(self, record: SessionRecord) -> None:
        now = self._clock()
        await self._store.set(record.key, SESSION_RECORD.encode(record), self._ttl(record, now))
        if record.entra_sid:
            await self._store.add_member(
                _sid_index(record.host, record.entra_sid), record.key, self.lifetime
            )

    async def read(self, host: str, cookie: str | None) -> tuple[str, SessionRecord] | None:
        """(session id, record) of a valid cookie of `host`'s, or None: no cookie, a bad
        MAC, no such session, another host's, or past a lifetime (then deleted)."""
        session_id = self._keys.verify_cookie(cookie) if cookie else None
        if session_id is None:
            return None
        key = store_key(host, session_id)
        raw = await self._store.get(key)
        record = SESSION_RECORD.decode(raw) if raw is not None else None
        # An unreadable record is no session (fail closed).
        if record is None or record.host != host or record.key != key:
            return None
        now = self._clock()
        if now >= record.created_at + self.lifetime or now >= record.last_seen + self.idle_timeout:
            await self._store.delete(key)
            return None
        if now - record.last_seen >= TOUCH_INTERVAL:
            # Written here, not through aiohttp-session's save: a proxied answer is
            # streamed, and its middleware saves nothing into a streamed answer.
            record = replace(record, last_seen=now)
            await self._store.set(key, SESSION_RECORD.encode(record), self._ttl(record, now))
        return session_id, record

    async def delete(self, record: SessionRecord) -> None:
        await self._store.delete(record.key)
        if record.entra_sid:
            await self._store.remove_member(_sid_index(record.host, record.entra_sid), record.key)

    async def delete_by_entra_sid(self, host: str, entra_sid: str) -> int:
        index = _sid_index(host, entra_sid)
        keys = await self._store.members(index)
        ended = await self._store.delete(*keys) if keys else 0
        await self._store.delete(index)
        return ended
