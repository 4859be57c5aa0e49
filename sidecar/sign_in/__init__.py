"""Who is signed in: the one API over the session, the account and the in-process cache.

* resolve(ctx, sso): the hot path, a plain function: no cookie (signed out) or a
  cached sign-in; None when the store must be asked.
* load(request): the request's sign-in, read from the store (aiohttp-session's
  get_session over sidecar.sign_in.storage, then the account).
  aiohttp-session's middleware wraps only our own routes (sidecar.app); for desk
  traffic, which it would leave alone anyway, the storage is given to the request
  here when the session must be read (_session).
* start(request, claims): a new session for a validated ID token; aiohttp-session's
  middleware writes it and sets its cookie with the answer.
* end(request, kind): the request's session ends here and in the store.
* end_entra_sign_in(request, sid): every session of one Entra sign-in ends
  (front-channel logout).

The cache (sidecar.sign_in.cache) answers repeat requests for `session.cache_ttl`;
ending a session drops its entries on this replica at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from aiohttp_session import STORAGE_KEY, Session, get_session, new_session

from sidecar import logs, metrics
from sidecar.auth.context import SSO, SsoServices
from sidecar.auth.identity import Identity
from sidecar.cookies import SESSION_COOKIE, clearing_header, read_cookie
from sidecar.oidc.idtoken import IdTokenClaims
from sidecar.request_scope import SCOPE, RequestScope
from sidecar.sign_in.storage import RECORD, SessionRecord
from sidecar.signup import Account, InvalidEmail, normalize_typed_email

__all__ = ["SignInState", "end", "end_entra_sign_in", "load", "resolve", "start"]


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
    session: SessionRecord | None
    account: Account | None
    claimed_email: str | None = None  # usable_claim(session.email_claim)
    # Derived once here, because the state is cached and read on every request: what
    # the desk is told, and whether the ID token now claims another address than the
    # verified one.
    identity: Identity | None = field(init=False, default=None)
    email_change_pending: bool = field(init=False, default=False)
    # Signed in with a verified account and nothing to verify: the only kind the cache
    # holds, and allowed on every path that is not a logout path.
    complete: bool = field(init=False, default=False)

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
        object.__setattr__(
            self, "complete", self.identity is not None and not self.email_change_pending
        )

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


SIGNED_OUT = SignInState(None, None)


def resolve(ctx: RequestScope, sso: SsoServices) -> SignInState | None:
    """The sign-in when no store read is needed: SIGNED_OUT without a cookie, or the
    cached one; None when load() must ask the store. No coroutine: the proxy's hot path."""
    # read_cookie(ctx, SESSION_COOKIE) without the call (the scheme's rule was applied
    # when the strip step parsed the header).
    cookie = ctx.our_cookies.get(SESSION_COOKIE)
    if not cookie:
        return SIGNED_OUT
    # The cache answers only while the store is known to be up: an outage fails closed.
    return sso.cache.get(ctx.tenant.host, cookie, ctx.started) if sso.store.healthy else None


async def load(request: web.Request, *, shared: bool = False) -> SignInState:
    """The request's sign-in. `shared` (proxied traffic): concurrent requests with the
    same cookie share one store read; the signup routes, which change the state they
    read, always read for themselves. StoreUnavailable propagates (fail closed)."""
    ctx = request[SCOPE]
    sso = request.app[SSO]
    known = resolve(ctx, sso)
    if known is not None:
        return known
    cookie = read_cookie(ctx, SESSION_COOKIE)
    assert cookie is not None  # resolve() answers requests without one
    if not shared:
        return await _load(request, sso, cookie)
    # Single flight: when a busy user's cache entry expires, their concurrent requests
    # wait for one store read instead of each making their own.
    host = ctx.tenant.host
    state: SignInState = await sso.cache.load_once(
        host, cookie, lambda: _load(request, sso, cookie)
    )
    return state


async def _session(request: web.Request) -> Session:
    """get_session, also for desk traffic. aiohttp-session's middleware, which gives
    the request its storage, runs around our own routes only: it saves changes into the
    answers we build and never into the desk's streamed ones, so the proxied path goes
    without that level of the pipeline, and the storage is given here on the rare
    request that reads its session (a cache miss, the desk's logout path). Nothing may
    change the session there: no middleware would save it (end() with desk_answers)."""
    if STORAGE_KEY not in request:
        request[STORAGE_KEY] = request.app[SSO].sessions
    return await get_session(request)


async def _load(request: web.Request, sso: SsoServices, cookie: str) -> SignInState:
    generation = sso.cache.generation
    session = await _session(request)
    record: SessionRecord | None = session.get(RECORD)
    if record is None:
        return SIGNED_OUT
    # SECURITY: the account is found by (host, tid, oid) only, never by email (nOAuth).
    account = await sso.accounts.get(record.host, record.user_key)
    state = SignInState(record, account, usable_claim(record.email_claim))
    if state.complete:
        # Not if a logout or deletion dropped entries meanwhile: this read may predate it.
        sso.cache.put(record.host, cookie, state, unless_dropped_since=generation)
    return state


async def start(request: web.Request, claims: IdTokenClaims) -> SessionRecord:
    """A new session for a validated ID token, with a new id (no session fixation).
    aiohttp-session's middleware stores it and sets its cookie on the answer."""
    ctx = request[SCOPE]
    storage = request.app[SSO].sessions
    session = await new_session(request)
    assert isinstance(session.identity, str)
    record = storage.new_record(ctx.tenant.host, session.identity, claims)
    session[RECORD] = record
    return record


async def end(
    request: web.Request, kind: str, *, desk_answers: bool = False
) -> SessionRecord | None:
    """End the request's session in the store and on this replica's cache, and clear its
    cookie; the session ended, if there was one.

    The cookie is cleared by aiohttp-session's middleware when the answer is ours. With
    `desk_answers` (the desk's own logout path) the answer is the desk's, streamed past
    that middleware, so the clearing Set-Cookie goes on ctx.response_headers instead.
    """
    ctx = request[SCOPE]
    sso = request.app[SSO]
    cookie = read_cookie(ctx, SESSION_COOKIE)
    if cookie:
        sso.cache.discard(ctx.tenant.host, cookie)
    session = await _session(request)
    record: SessionRecord | None = session.get(RECORD)
    if desk_answers:
        ctx.response_headers.append(("Set-Cookie", clearing_header(ctx, SESSION_COOKIE)))
    else:
        session.invalidate()
    if record is None:
        return None
    await sso.sessions.delete(record)
    if cookie:
        # Again, now that the store has it gone: a store read that began between the
        # first drop and the delete may have found the session; this keeps it uncached.
        sso.cache.discard(ctx.tenant.host, cookie)
    metrics.LOGOUTS.labels(ctx.tenant.host, kind).inc()
    logs.event("signed_out", request_id=ctx.request_id, tenant=ctx.tenant.host, kind=kind)
    return record


async def end_entra_sign_in(request: web.Request, entra_sid: str) -> int:
    """End every session of this host's that Entra sign-in `entra_sid` made, on every
    replica (the store) and in this replica's cache; the number ended."""
    ctx = request[SCOPE]
    sso = request.app[SSO]
    ended = await sso.sessions.delete_by_entra_sid(ctx.tenant.host, entra_sid)
    sso.cache.discard_where(
        ctx.tenant.host,
        lambda state: state.session is not None and state.session.entra_sid == entra_sid,
    )
    return ended
