"""From a request to the identity the desk may receive: session, then verified account."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from sidecar.auth.context import SSO, SsoServices
from sidecar.auth.cookies import read_session_cookie
from sidecar.auth.identity import Identity
from sidecar.request_scope import SCOPE, RequestScope
from sidecar.sessions.sessions import Session
from sidecar.signup import Account, InvalidEmail, normalize_typed_email


def usable_claim(claim: str | None) -> str | None:
    """Entra's email claim in normalised form, or None when it is absent or not a usable
    address (e.g. non-ASCII local part): then the user types one instead."""
    if not claim:
        return None
    try:
        return normalize_typed_email(claim, allow_test_domains=True)
    except InvalidEmail:
        return None


@dataclass(frozen=True, slots=True)
class SignInState:
    session: Session | None
    account: Account | None
    claimed_email: str | None = None  # usable_claim(session.email_claim)
    # Derived once here, because the state is cached and read on every request:
    # what the desk is told, and whether the ID token now claims another address than
    # the verified one (issue: email changes).
    identity: Identity | None = field(init=False, default=None)
    email_change_pending: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "identity", self._identity())
        # A claim from an unverified domain (xms_edov false) may have been replaced by a
        # typed address at signup: it then differing from the account is no change.
        if (
            self.account is not None
            and self.claimed_email is not None
            and self.session is not None
            and self.session.email_domain_verified is not False
        ):
            changed = self.claimed_email.lower() != self.account.email.lower()
            object.__setattr__(self, "email_change_pending", changed)

    def _identity(self) -> Identity | None:
        """Names come from the latest ID token; the email only ever from the account."""
        if self.session is None or self.account is None:
            return None
        s = self.session
        return Identity(
            user_key=s.user_key,
            oid=s.oid,
            tid=s.tid,
            email=self.account.email,
            given_name=s.given_name,
            family_name=s.family_name,
            name=s.name,
            roles=s.roles,
        )


_SIGNED_OUT = SignInState(None, None)


def cached_sign_in_state(ctx: RequestScope, sso: SsoServices) -> SignInState | None:
    """The hot path, without a coroutine: no cookie (signed out), or a cached sign-in;
    None when the store must be asked (sign_in_state)."""
    assert ctx.tenant is not None
    cookie = read_session_cookie(ctx)
    if not cookie:
        return _SIGNED_OUT
    # The cache answers only while the store is known to be up: an outage fails closed.
    return sso.cache.get(ctx.tenant.host, cookie, ctx.started) if sso.store.healthy else None


async def sign_in_state(request: web.Request, *, shared: bool = False) -> SignInState:
    """The request's sign-in. `shared` (proxied traffic): concurrent requests with the
    same cookie share one store read; the signup routes, which change the state they
    read, always read for themselves."""
    ctx = request[SCOPE]
    assert ctx.tenant is not None
    sso = request.app[SSO]
    cached = cached_sign_in_state(ctx, sso)
    if cached is not None:
        return cached
    cookie = read_session_cookie(ctx)
    assert cookie is not None  # cached_sign_in_state answers requests without one
    host = ctx.tenant.host
    if not shared:
        return await _load(sso, host, cookie)
    # Single flight: when a busy user's cache entry expires, their concurrent requests
    # wait for one store read instead of each making their own (a burst of round trips
    # every `cache_ttl` that showed in the p99 latency).
    state: SignInState = await sso.cache.load_once(host, cookie, lambda: _load(sso, host, cookie))
    return state


async def _load(sso: SsoServices, host: str, cookie: str) -> SignInState:
    generation = sso.cache.generation
    session = await sso.sessions.load(host, cookie)
    if session is None:
        return _SIGNED_OUT
    # SECURITY: the account is found by (host, tid, oid) only, never by email (nOAuth).
    account = await sso.accounts.get(host, session.user_key)
    state = SignInState(session, account, usable_claim(session.email_claim))
    if account is not None and not state.email_change_pending:
        # Not if a logout or deletion dropped entries meanwhile: this read may predate it.
        sso.cache.put(host, cookie, state, unless_dropped_since=generation)
    return state
