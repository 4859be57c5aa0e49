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
from sidecar.keys import DerivedKeys
from sidecar.upstream import HeadBlock

ASSERTION_LIFETIME = 300
REUSE_FOR = 60
_CACHE_SIZE = 10_000


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
    # The signer's header sets for this very object, by (issuer, audience): the hot
    # path finds them without hashing and comparing identities field by field
    # (3,200 instructions a signed-in request, `make bench-instructions`).
    _signed: dict[tuple[str, str], IdentityHeaders] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def userinfo(self) -> dict[str, str | None]:
        return {
            "user": self.user_key,
            "oid": self.oid,
            "tid": self.tid,
            "email": self.email,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "name": self.name,
        }


@dataclass(frozen=True, slots=True)
class IdentityHeaders:
    """The desk's identity headers: as fields (WebSocket handshakes) and as head lines
    serialised once (every other request; the precomputed header set of issue 6)."""

    signed_at: float
    fields: CIMultiDict[str]
    block: HeadBlock


class AssertionSigner:
    """Signs assertions and builds the desk's header set, both reused for a minute."""

    def __init__(self, keys: DerivedKeys) -> None:
        self._keys = keys
        self._cache: OrderedDict[tuple[object, ...], IdentityHeaders] = OrderedDict()

    def headers(self, identity: Identity, *, issuer: str, audience: str) -> IdentityHeaders:
        """The identity headers with a fresh enough assertion (the caller must not edit them)."""
        now = time.time()
        memo = identity._signed.get((issuer, audience))
        if memo is not None and now - memo.signed_at < REUSE_FOR:
            return memo
        # An equal identity of an earlier sign-in state (the sign-in cache renews its
        # entries every few seconds) reuses what was signed for it.
        cache_key = (identity, issuer, audience)
        cached = self._cache.get(cache_key)
        if cached is not None and now - cached.signed_at < REUSE_FOR:
            identity._signed[(issuer, audience)] = cached
            return cached
        fields = identity_headers(identity, self._sign(identity, issuer, audience, now))
        built = IdentityHeaders(now, fields, HeadBlock.of(fields))
        identity._signed[(issuer, audience)] = built
        self._cache[cache_key] = built
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return built

    def _sign(self, identity: Identity, issuer: str, audience: str, now: float) -> str:
        issued = int(now)
        claims = {
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
    out[h.IDENTITY] = assertion
    return out
