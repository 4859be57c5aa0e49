"""What the desk is told about the user: identity headers and the signed assertion.

The assertion (`X-TicketLog-Identity`) is an ES256 JWT (RFC 7519) whose keys
are derived from `session.secret_keys` and published at `/.sso/jwks.json`, so
every replica signs with the same key and the desk can verify the sidecar sent
it. It lives at most 5 minutes (contract); a signed token is reused for a
minute per session, so a busy user does not cost a signature per request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from joserfc import jwt
from multidict import CIMultiDict

from sidecar import headers as h
from sidecar import routes
from sidecar.desk_wire import HeadBlock
from sidecar.request_scope import RequestScope
from sidecar.secret_keys import DerivedKeys

ASSERTION_LIFETIME = 300
REUSE_FOR = 60
_CACHE_SIZE = 10_000
_SITES_PER_IDENTITY = 4


@dataclass(frozen=True, slots=True)
class Identity:
    """A signed-in user with a verified account: everything the desk receives."""

    user_key: str
    oid: str
    tid: str
    email: str  # the account's verified address, never the raw claim
    given_name: str | None
    family_name: str | None
    name: str | None
    roles: tuple[str, ...] | None = None  # the ID token's app roles; None: no roles claim
    # The signer's header sets for this very object, by public host (each holds the
    # scheme it was made for): the hot path finds them without hashing and comparing
    # identities field by field, and without building a key.
    _signed: dict[str, IdentityHeaders] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def userinfo(self) -> dict[str, str | list[str] | None]:
        info: dict[str, str | list[str] | None] = {
            "user": self.user_key,
            "oid": self.oid,
            "tid": self.tid,
            "email": self.email,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "name": self.name,
        }
        if self.roles is not None:
            info["roles"] = list(self.roles)
        return info


@dataclass(frozen=True, slots=True)
class IdentityHeaders:
    """The desk's identity headers: as fields (WebSocket handshakes) and as head lines
    serialised once (every other request)."""

    fresh_until: float  # time.monotonic(): reused until then, then signed again
    scheme: str  # of the public origin it was made for (the issuer's)
    fields: CIMultiDict[str]
    block: HeadBlock


class AssertionSigner:
    """Signs assertions and builds the desk's header set, both reused for a minute."""

    def __init__(self, keys: DerivedKeys) -> None:
        self._keys = keys
        self._cache: OrderedDict[tuple[object, ...], IdentityHeaders] = OrderedDict()

    def headers_for(self, ctx: RequestScope) -> IdentityHeaders:
        """The identity headers of a signed-in request (ctx.identity), with a fresh enough
        assertion for its public origin. The caller must not edit them."""
        identity = ctx.identity
        assert identity is not None  # called for signed-in requests only
        # The public host names the tenant (the audience) and, with the scheme, the issuer.
        # Freshness is judged at the request's arrival: no clock read per request.
        try:
            memo = identity._signed[ctx.public_host]
            if ctx.started < memo.fresh_until and memo.scheme == ctx.scheme:
                return memo
        except KeyError:  # the first request of this sign-in state on this site
            pass
        return self._remembered(ctx, identity)

    def _remembered(self, ctx: RequestScope, identity: Identity) -> IdentityHeaders:
        """headers_for when the identity's own memo has none for this site, or a stale
        one, or one made for the other scheme: from the signer's cache, or signed now;
        remembered on the identity."""
        now = ctx.started
        # SECURITY: the public host carries the port the client sent, so a signed-in
        # client cycling ports could grow this memo without end: a few sites at most.
        if len(identity._signed) >= _SITES_PER_IDENTITY:
            identity._signed.clear()
        # An equal identity of an earlier sign-in state (the sign-in cache renews its
        # entries every few seconds) reuses what was signed for it.
        cache_key = (identity, ctx.scheme, ctx.public_host)
        built = self._cache.get(cache_key)
        if built is None or now >= built.fresh_until:
            issuer = ctx.public_origin + routes.ISSUER_PATH
            fields = identity_headers(identity, self._sign(identity, issuer, ctx.tenant.host))
            built = IdentityHeaders(now + REUSE_FOR, ctx.scheme, fields, HeadBlock.of(fields))
            self._cache[cache_key] = built
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        identity._signed[ctx.public_host] = built
        return built

    def _sign(self, identity: Identity, issuer: str, audience: str) -> str:
        issued = int(time.time())
        claims: dict[str, object] = {
            "iss": issuer,
            "aud": audience,
            "sub": identity.user_key,
            "email": identity.email,
            "given_name": identity.given_name,
            "family_name": identity.family_name,
            "name": identity.name,
            "oid": identity.oid,
            "tid": identity.tid,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME,
        }
        if identity.roles is not None:
            claims["roles"] = list(identity.roles)
        key = self._keys.active_signing_key
        return jwt.encode({"alg": "ES256", "typ": "JWT", "kid": key.kid}, claims, key)


def identity_headers(identity: Identity, assertion: str) -> CIMultiDict[str]:
    """The contract's headers; values percent-encoded (CR, LF, NUL never raw)."""
    out: CIMultiDict[str] = CIMultiDict()
    out[h.USER] = h.encode_header_value(identity.user_key)
    out[h.EMAIL] = h.encode_header_value(identity.email)
    for name, value in (
        (h.GIVEN_NAME, identity.given_name),
        (h.FAMILY_NAME, identity.family_name),
        (h.NAME, identity.name),
    ):
        out[name] = h.encode_header_value(value or "")
    if identity.roles is not None:
        out[h.ROLES] = h.encode_roles(identity.roles)
    out[h.IDENTITY] = assertion
    return out
