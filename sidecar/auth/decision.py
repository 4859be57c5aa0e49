"""The access decision: may a request reach the desk, and as whom.

One function, two entry points: the proxy pipeline renders a decision by
forwarding or refusing the request itself (sidecar.middleware.session), and
`/.sso/auth` renders it as the answer a gateway acts on
(sidecar.auth.forward_auth). Both therefore share the tenant's public and
logout paths, the session, the signup state and the identity, by construction.

The request judged is given by its target, method and headers: in proxy mode
the request itself, in forward-auth mode the one the gateway describes.
A store that does not answer raises StoreUnavailable (fail closed: 503).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from aiohttp import web

from sidecar import sign_in
from sidecar.auth.context import SsoServices
from sidecar.paths import normalized_path, under_prefix
from sidecar.request_scope import RequestScope
from sidecar.responses import navigates
from sidecar.sign_in import SignInState
from sidecar.tenants import Tenant


class Verdict(Enum):
    ALLOW = "allow"  # to the desk; as ctx.identity when `signed_in`
    LOGIN = "login"  # no session: sign in first
    SIGNUP = "signup"  # a session without a verified account: the signup screen first


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    signed_in: bool = False  # ALLOW with an identity (ctx.identity holds it)
    # The sign-in holds for `session.cache_ttl`: complete, and nothing to do on this path.
    lasting: bool = False
    desk_logout: bool = False  # a logout path: the session ends as the request goes on
    state: SignInState | None = None  # SIGNUP: what the signup screen shows


# The decisions that carry nothing of the request are made once, not per request.
ANONYMOUS = Decision(Verdict.ALLOW)  # a public path or an SSO-less tenant
SIGNED_IN = Decision(Verdict.ALLOW, signed_in=True, lasting=True)
# A changed email claim awaiting verification: allowed with the verified address
# (not a navigation), but not for long: the next navigation is held at the screen.
SIGNED_IN_EMAIL_PENDING = Decision(Verdict.ALLOW, signed_in=True)
AT_DESK_LOGOUT = Decision(Verdict.ALLOW, signed_in=True, desk_logout=True)
NEEDS_LOGIN = Decision(Verdict.LOGIN)


class Judged(Protocol):
    """The request judged, for the little the decision reads of it besides its target (is
    it a navigation?): the proxied request itself, or the one a gateway describes
    (sidecar.auth.forward_auth.Original). Read only when needed, so the hot path reads
    neither the method nor the headers."""

    @property
    def method(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


def decide_now(ctx: RequestScope, sso: SsoServices, target: str, judged: Judged) -> Decision | None:
    """decide() when no store read is needed (an SSO-less tenant, a public path, no
    cookie, a cached sign-in), else None. A plain function: the proxy's hot path makes
    no coroutine for it."""
    tenant = ctx.tenant
    if not tenant.has_sso:
        return ANONYMOUS
    path = _matching_path(tenant, target)
    if under_prefix(path, tenant.public_paths):
        return ANONYMOUS
    state = sign_in.resolve(ctx, sso)
    if state is None:
        return None
    if state.complete and not tenant.logout_paths:
        # What _given decides for every cached sign-in on such a tenant, without the call:
        # the signed-in requests the sidecar proxies most.
        ctx.identity = state.identity
        return SIGNED_IN
    return _given(ctx, state, path, judged)


async def decide(
    request: web.Request, ctx: RequestScope, sso: SsoServices, target: str, judged: Judged
) -> Decision:
    """The decision for the request to `target` (origin-form path and query) of
    ctx.tenant, signed in by the session cookie on ctx (the strip step read it)."""
    known = decide_now(ctx, sso, target, judged)
    if known is not None:
        return known
    state = await sign_in.load(request, shared=True)
    return _given(ctx, state, _matching_path(ctx.tenant, target), judged)


def _matching_path(tenant: Tenant, target: str) -> str | None:
    """What public and logout paths match: the decoded, dot-resolved path (sidecar.paths),
    computed only for a tenant that has such paths."""
    return normalized_path(target) if tenant.public_paths or tenant.logout_paths else None


def _given(ctx: RequestScope, state: SignInState, path: str | None, judged: Judged) -> Decision:
    """The decision for a request that is not public, given its sign-in state."""
    if state.session is None:
        return NEEDS_LOGIN
    if state.account is None or (
        state.email_change_pending and navigates(judged.method, judged.headers)
    ):
        # A changed email claim holds navigations at the screen until the new address
        # is verified; other requests keep the verified address meanwhile.
        return Decision(Verdict.SIGNUP, state=state)
    ctx.identity = state.identity
    logout_paths = ctx.tenant.logout_paths
    if logout_paths and under_prefix(path, logout_paths):
        return AT_DESK_LOGOUT
    return SIGNED_IN_EMAIL_PENDING if state.email_change_pending else SIGNED_IN
