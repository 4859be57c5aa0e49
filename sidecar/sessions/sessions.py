"""Signed-in sessions: an opaque id in the cookie, the identity in the store.

A new id at every sign-in (no session fixation, OWASP Session Management);
absolute lifetime and sliding idle timeout from the config; the store key is a
SHA-256 hash of the id, so a store dump holds no usable cookie. Each Entra `sid`
indexes its sessions so Entra's front-channel logout can end them on every
replica (OIDC Front-Channel Logout 1.0 §2).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from sidecar.oidc.idtoken import IdTokenClaims
from sidecar.secret_keys import DerivedKeys
from sidecar.store import Store

# Sliding the idle timeout rewrites the session; do it at most this often, so a
# busy user does not cost a store write per request.
TOUCH_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class Session:
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
    # The ID token's app roles; None: no roles claim. Defaulted, so sessions stored before
    # roles existed still load.
    roles: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # JSON gives a list back; a tuple keeps the frozen session hashable.
        if self.roles is not None and not isinstance(self.roles, tuple):
            object.__setattr__(self, "roles", tuple(self.roles))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Session | None:
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError):
            return None  # unreadable: treated as no session (fail closed)


class SessionManager:
    def __init__(
        self,
        store: Store,
        keys: DerivedKeys,
        *,
        lifetime: float,
        idle_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._keys = keys
        self.lifetime = lifetime
        self.idle_timeout = idle_timeout
        self._clock = clock

    @staticmethod
    def _store_key(host: str, session_id: str) -> str:
        # A hash of the id, so a store dump holds no usable cookie. The id has 256 random
        # bits, so a plain SHA-256 cannot be reversed; a keyed hash would break when
        # session.secret_keys rotate.
        return f"session:{host}:{hashlib.sha256(session_id.encode()).hexdigest()}"

    @staticmethod
    def _sid_index(host: str, entra_sid: str) -> str:
        return f"sid:{host}:{entra_sid}"

    def _ttl(self, session: Session, now: float) -> float:
        return max(1.0, min(self.idle_timeout, session.created_at + self.lifetime - now))

    async def create(self, host: str, claims: IdTokenClaims) -> tuple[str, Session]:
        """A new session for a validated ID token; returns (cookie value, session)."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(
            key=self._store_key(host, session_id),
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
        await self._store.set(session.key, session.to_json(), self._ttl(session, now))
        if session.entra_sid:
            await self._store.add_member(
                self._sid_index(host, session.entra_sid), session.key, self.lifetime
            )
        return self._keys.sign_cookie(session_id), session

    async def load(self, host: str, cookie_value: str) -> Session | None:
        session_id = self._keys.verify_cookie(cookie_value)
        if session_id is None:
            return None
        key = self._store_key(host, session_id)
        raw = await self._store.get(key)
        session = Session.from_json(raw) if raw is not None else None
        if session is None or session.host != host:
            return None
        now = self._clock()
        if (
            now >= session.created_at + self.lifetime
            or now >= session.last_seen + self.idle_timeout
        ):
            await self._store.delete(key)
            return None
        if now - session.last_seen >= TOUCH_INTERVAL:
            session = replace(session, last_seen=now)
            await self._store.set(key, session.to_json(), self._ttl(session, now))
        return session

    async def destroy(self, session: Session) -> None:
        await self._store.delete(session.key)
        if session.entra_sid:
            await self._store.remove_member(
                self._sid_index(session.host, session.entra_sid), session.key
            )

    async def destroy_by_entra_sid(self, host: str, entra_sid: str) -> int:
        index = self._sid_index(host, entra_sid)
        keys = await self._store.members(index)
        ended = await self._store.delete(*keys) if keys else 0
        await self._store.delete(index)
        return ended
