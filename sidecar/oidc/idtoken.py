"""Pure ID-token validation (OpenID Connect Core 1.0 §3.1.3.7, entra-reference §3).

Two steps, neither doing I/O, so they can be table-tested and fuzzed:

1. ``parse_compact`` checks the token's shape and JOSE header and yields the
   ``kid`` to look up in the tenant's JWKS;
2. ``verify_id_token`` verifies the signature with that key and checks the
   claims, returning them only when every check passed.

Anything wrong raises ``InvalidIdToken`` with a short fixed reason; no other
exception escapes (tests/oidc fuzz this with hypothesis).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jws import JWSRegistry

from .discovery import is_guid
from .errors import InvalidIdToken
from .jwks import SigningKey

__all__ = [
    "MAX_TOKEN_BYTES",
    "CompactToken",
    "Expectations",
    "IdTokenClaims",
    "parse_compact",
    "verify_id_token",
]

#: Entra ID tokens are 1-3 KiB; even with many optional claims far below this.
MAX_TOKEN_BYTES = 16 * 1024

# SECURITY: local allowlist, never the token's or the JWKS's say-so. RFC 8725
# §3.1/§2.1 ("alg: none", and HS256 verified with the RSA public key as the
# HMAC secret) and entra-reference §3 step 1 ("allow only RS256").
ALLOWED_ALGS = frozenset({"RS256"})

_B64URL = re.compile(r"[A-Za-z0-9_-]*")

# joserfc's verifier, restricted to RS256. Its own header-size cap (512 bytes)
# is raised because size is already capped as a whole, and an ignored x5c
# header must not change the outcome.
_REGISTRY = JWSRegistry(algorithms=sorted(ALLOWED_ALGS), strict_check_header=False)
_REGISTRY.max_header_length = MAX_TOKEN_BYTES
_REGISTRY.max_payload_length = MAX_TOKEN_BYTES
_REGISTRY.max_signature_length = 1024


@dataclass(frozen=True)
class IdTokenClaims:
    """The claims the sidecar uses, after validation.

    Only ``tid`` and ``oid`` identify the user (Learn [IDREF], [CLAIMSVAL]);
    ``email`` and ``preferred_username`` are mutable and unverified, for display
    and prefill only, and ``email`` counts as domain-verified only when
    ``email_domain_verified`` (``xms_edov``) is true (Learn [MIGEMAIL]).
    """

    tid: str
    oid: str
    sub: str
    sid: str | None
    email: str | None
    email_domain_verified: bool | None
    given_name: str | None
    family_name: str | None
    name: str | None
    preferred_username: str | None
    login_hint: str | None
    iat: int
    exp: int
    #: The values of the app roles assigned to the user (Learn "Add app roles"); None when
    #: the token has no ``roles`` claim (Entra leaves it out when none is assigned).
    roles: tuple[str, ...] | None = None

    @property
    def user_key(self) -> str:
        """``{oid}.{tid}``, the contract's user key (MSAL's home account id form)."""
        return f"{self.oid}.{self.tid}"


@dataclass(frozen=True)
class Expectations:
    """What a token must say, from configuration and the tenant's discovery document."""

    authority: str  # normalised, no trailing slash
    issuer: str  # the discovery document's issuer
    tenant_id: str  # the GUID in that issuer
    client_id: str
    leeway: float = 300.0  # contract: at most 5 minutes of clock skew
    max_iat_age: float = 3600.0  # contract: iat no older than 1 hour


@dataclass(frozen=True)
class CompactToken:
    """A token whose shape and header passed; its signature is not yet verified."""

    raw: str
    header: Mapping[str, Any]
    kid: str


def parse_compact(raw: object) -> CompactToken:
    """Check shape and JOSE header; no key material involved yet."""
    if not isinstance(raw, str):
        raise InvalidIdToken("not a string")
    # SECURITY: size cap before any decoding or parsing (resource exhaustion).
    if len(raw) > MAX_TOKEN_BYTES:
        raise InvalidIdToken("too large")
    # SECURITY: compact serialisation only (OIDC Core §2: the ID token is a JWT,
    # RFC 7519 §1: compact). A JSON-serialised JWS can carry several signatures
    # and unprotected headers; refusing it keeps one parse path.
    parts = raw.split(".")
    if len(parts) != 3:
        raise InvalidIdToken("not a compact JWS")
    if not all(p and _B64URL.fullmatch(p) for p in parts):
        # An empty third part is the unsigned "alg: none" form (RFC 7519 §6).
        raise InvalidIdToken("not a compact JWS")

    header = _json_object(parts[0], what="header")

    alg = header.get("alg")
    # SECURITY: exact, case-sensitive match against the local allowlist, so
    # "none", "None", "NONE", "HS256" and "ES256" are all refused before any key
    # is looked up (RFC 8725 §3.1; OIDC Core §3.1.3.7 step 7).
    if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
        raise InvalidIdToken("alg not allowed")
    # SECURITY: RFC 7515 §4.1.11 — an unknown critical extension must be
    # refused; we implement none, so any "crit" is refused. "b64" (RFC 7797
    # unencoded payload) changes what the signature covers: refused too.
    if "crit" in header:
        raise InvalidIdToken("crit header")
    if "b64" in header:
        raise InvalidIdToken("b64 header")
    if "enc" in header or "zip" in header:
        raise InvalidIdToken("not a JWS")
    # SECURITY: jwk/jku/x5c/x5u headers are ignored: the verification key comes
    # only from the tenant's JWKS, by kid (Learn [AT] "Validate the signature";
    # RFC 8725 §3.10). Trusting them would let anyone sign with their own key.
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidIdToken("missing kid")
    if len(kid) > 256:
        raise InvalidIdToken("bad kid")
    typ = header.get("typ")
    if typ is not None and not isinstance(typ, str):
        raise InvalidIdToken("bad typ")
    return CompactToken(raw=raw, header=header, kid=kid)


def verify_id_token(
    token: CompactToken,
    key: SigningKey,
    *,
    expected: Expectations,
    nonce: str,
    now: float,
) -> IdTokenClaims:
    """Verify the signature with ``key`` and check every claim; see module docstring."""
    if key.kid != token.kid:
        raise InvalidIdToken("unknown kid")
    try:
        # SECURITY: the key object is an RSAKey from the JWKS and the registry
        # allows RS256 only: an HS256 token can never be checked with the RSA
        # public key bytes as an HMAC secret (RFC 8725 §2.1, §3.1).
        obj = jws.deserialize_compact(token.raw, key.key, registry=_REGISTRY)
    except JoseError as exc:
        reason = "bad signature" if isinstance(exc, BadSignatureError) else "malformed JWS"
        raise InvalidIdToken(reason) from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidIdToken("malformed JWS") from exc

    claims = _json_object_bytes(obj.payload, what="payload")
    return _check_claims(claims, key=key, expected=expected, nonce=nonce, now=now)


def _check_claims(
    claims: Mapping[str, Any],
    *,
    key: SigningKey,
    expected: Expectations,
    nonce: str,
    now: float,
) -> IdTokenClaims:
    # OIDC Core §3.1.3.7 step 2 and entra-reference §3 step 2: iss exactly
    # equals the tenant discovery issuer. SECURITY: no prefix, case or
    # trailing-slash leniency (issuer confusion, Learn [AT] "Validate the issuer").
    iss = claims.get("iss")
    if not isinstance(iss, str) or iss != expected.issuer:
        raise InvalidIdToken("iss mismatch")

    # entra-reference §3 step 3, Learn [AT]/[MULTI]: tid is a GUID, equals the
    # configured tenant's GUID, and iss is exactly {authority}/{tid}/v2.0.
    tid = claims.get("tid")
    if not isinstance(tid, str) or not is_guid(tid):
        raise InvalidIdToken("tid missing or not a GUID")
    if tid != expected.tenant_id:
        raise InvalidIdToken("tid mismatch")
    if iss != f"{expected.authority}/{tid}/v2.0":
        raise InvalidIdToken("iss does not match tid")

    # Learn [AT] "Validate the signing key issuer": a key whose JWKS entry names
    # an issuer (or the {tenantid} template) may only sign for that issuer.
    if key.issuer is not None and key.issuer.replace("{tenantid}", tid) != iss:
        raise InvalidIdToken("key issuer mismatch")

    # OIDC Core §3.1.3.7 step 3: aud contains our client_id; step 4/5: with
    # several audiences azp must be present and be us; if azp is present at all
    # it must be us.
    aud = claims.get("aud")
    if isinstance(aud, str):
        audiences = [aud]
    elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        audiences = list(aud)
    else:
        raise InvalidIdToken("aud missing or malformed")
    if expected.client_id not in audiences:
        raise InvalidIdToken("aud mismatch")
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        raise InvalidIdToken("azp missing")
    if azp is not None and azp != expected.client_id:
        raise InvalidIdToken("azp mismatch")

    ver = claims.get("ver")
    # A v2.0 token must be checked against v2.0 metadata (Learn [AT]); the iss
    # check already implies it, this catches an inconsistent token.
    if ver is not None and ver != "2.0":
        raise InvalidIdToken("ver mismatch")

    # OIDC Core §3.1.3.7 steps 9-10 (exp, iat), RFC 7519 §4.1.5 (nbf); the
    # contract allows 5 minutes of skew and an iat at most 1 hour old.
    leeway = expected.leeway
    exp = _required_date(claims, "exp")
    iat = _required_date(claims, "iat")
    nbf = _numeric_date(claims, "nbf")
    if now > exp + leeway:
        raise InvalidIdToken("expired")
    if nbf is not None and nbf > now + leeway:
        raise InvalidIdToken("not yet valid")
    if iat > now + leeway:
        raise InvalidIdToken("iat in the future")
    if now - iat > expected.max_iat_age + leeway:
        raise InvalidIdToken("iat too old")

    # OIDC Core §3.1.3.7 step 11: nonce present and equal to the one we sent
    # (replay of a token issued for another sign-in). SECURITY: constant time.
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not token_nonce:
        raise InvalidIdToken("nonce missing")
    # surrogatepass: JSON "\ud800" escapes decode to lone surrogates.
    if not nonce or not hmac.compare_digest(_utf8(token_nonce), _utf8(nonce)):
        raise InvalidIdToken("nonce mismatch")

    # oid + tid is the user key (Learn [IDREF], [CLAIMSVAL]). oid is a GUID in
    # every v2.0 token; insisting on it keeps "{oid}.{tid}" unambiguous.
    oid = claims.get("oid")
    if not isinstance(oid, str) or not is_guid(oid):
        raise InvalidIdToken("oid missing or not a GUID")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidIdToken("sub missing")
    _require_unicode(sub, "sub")

    email = _opt_str(claims, "email")
    return IdTokenClaims(
        tid=tid,
        oid=oid,
        sub=sub,
        sid=_opt_str(claims, "sid"),
        email=email,
        # Learn [OPTREF]: xms_edov is only meaningful alongside email.
        email_domain_verified=_edov(claims.get("xms_edov")) if email is not None else None,
        given_name=_opt_str(claims, "given_name"),
        family_name=_opt_str(claims, "family_name"),
        name=_opt_str(claims, "name"),
        preferred_username=_opt_str(claims, "preferred_username"),
        login_hint=_opt_str(claims, "login_hint"),
        iat=int(iat),
        exp=int(exp),
        roles=_roles(claims),
    )


def _roles(claims: Mapping[str, Any]) -> tuple[str, ...] | None:
    # SECURITY: roles gate access (sso.allowed_roles); anything but an array of strings
    # is refused rather than read leniently (a string would be mistaken for its letters).
    value = claims.get("roles")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise InvalidIdToken("roles not an array of strings")
    for role in value:
        _require_unicode(role, "roles")
    return tuple(value)


def _required_date(claims: Mapping[str, Any], name: str) -> float:
    value = _numeric_date(claims, name)
    if value is None:
        raise InvalidIdToken(f"{name} missing")
    return value


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # RFC 7519 §2 NumericDate: a JSON number. bool is an int subclass in Python
    # and must not pass as one.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidIdToken(f"{name} not a number")
    if not math.isfinite(value) or abs(value) > 1e11:
        raise InvalidIdToken(f"{name} out of range")
    return float(value)


def _opt_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidIdToken(f"{name} not a string")
    _require_unicode(value, name)
    return value


def _require_unicode(value: str, name: str) -> None:
    # A JSON "\ud800" escape decodes to a lone surrogate, which no UTF-8 encoder
    # (header values, session JSON, the identity JWT) accepts; refuse it here
    # rather than fail later (RFC 8259 §8.2: such strings are not interoperable).
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidIdToken(f"{name} not valid Unicode") from exc


def _edov(value: object) -> bool | None:
    # Learn [OPTREF] documents a boolean; some tenants have been seen emitting
    # the strings "1"/"true". Anything else counts as not verified (fail closed).
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return False


def _utf8(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json_object(segment: str, *, what: str) -> dict[str, Any]:
    try:
        raw = _b64decode(segment)
    except (binascii.Error, ValueError) as exc:
        raise InvalidIdToken(f"{what} not base64url") from exc
    return _json_object_bytes(raw, what=what)


def _json_object_bytes(raw: bytes, *, what: str) -> dict[str, Any]:
    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidIdToken(f"{what} not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidIdToken(f"{what} not a JSON object")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # SECURITY: RFC 7515 §5.2 / RFC 7519 §4 — duplicate member names must be
    # rejected or resolved last-wins; parsers disagreeing on which wins is a
    # classic confusion, so refuse them outright.
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError("duplicate member")
        result[name] = value
    return result


def _no_constant(name: str) -> NoReturn:
    # NaN/Infinity are not JSON (RFC 8259 §6).
    raise ValueError("non-finite number")
