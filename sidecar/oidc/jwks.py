"""Per-tenant cache of Entra's token-signing keys (the tenant's JWKS).

Rules, from entra-reference §4 (Learn [KEYS], [AT]) and the operator contract:

* keys are cached by ``kid``, fetched from the tenant's own ``jwks_uri``;
* a regular refresh happens when the keys are older than ``refresh_interval``
  (hourly), in the background, so no sign-in waits for it;
* a token whose ``kid`` is unknown may trigger a synchronous refetch (an
  emergency key roll-over), but at most once per
  ``unknown_kid_refetch_interval`` (the contract's one per minute), so a flood of
  forged tokens cannot turn the sidecar into an amplifier against Entra; the
  regular refreshes do not count against that budget;
* concurrent callers share one in-flight fetch;
* when a fetch fails, the last good keys stay in use.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from ._singleflight import SingleFlight
from .errors import InvalidIdToken, OidcError, ProviderUnavailable

__all__ = ["JwksCache", "SigningKey", "parse_jwks"]

log = logging.getLogger(__name__)

# NIST SP 800-131A: RSA below 2048 bits is not acceptable for signatures.
MIN_RSA_BITS = 2048
MAX_KEYS = 100


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key: RSAKey
    #: The JWKS entry's ``issuer`` (a concrete issuer or the ``{tenantid}``
    #: template). Learn [AT] "Validate the signing key issuer": a key with a
    #: concrete issuer may only sign tokens whose ``iss`` equals it.
    issuer: str | None


def parse_jwks(document: object) -> dict[str, SigningKey]:
    """Usable RSA signature keys of a JWK set, by ``kid``.

    Entries that are not RSA signature keys, or cannot be parsed, are skipped
    (and logged), never fatal: one odd entry must not take sign-in down.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ProviderUnavailable("jwks", "response is not a JWK set")
    keys: dict[str, SigningKey] = {}
    for index, entry in enumerate(document["keys"][:MAX_KEYS]):
        try:
            key = _parse_entry(entry)
        except _Skip as skip:
            log.warning("JWKS entry %d ignored: %s", index, skip)
            continue
        if key.kid in keys:
            # RFC 7517 §4.5: kids should be unique; with a duplicate there is no
            # telling which key the issuer means, so keep the first only.
            log.warning("JWKS entry %d ignored: duplicate kid %r", index, key.kid)
            continue
        keys[key.kid] = key
    return keys


class _Skip(Exception):
    pass


def _parse_entry(entry: object) -> SigningKey:
    if not isinstance(entry, Mapping):
        raise _Skip("not an object")
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise _Skip("missing or bad kid")
    if entry.get("kty") != "RSA":
        raise _Skip(f"kid {kid!r}: kty is not RSA")
    if entry.get("use", "sig") != "sig":
        raise _Skip(f"kid {kid!r}: use is not sig")
    if entry.get("alg", "RS256") != "RS256":
        raise _Skip(f"kid {kid!r}: alg is not RS256")
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise _Skip(f"kid {kid!r}: key_ops excludes verify")
    issuer = entry.get("issuer")
    if issuer is not None and not isinstance(issuer, str):
        raise _Skip(f"kid {kid!r}: issuer is not a string")
    n, e = entry.get("n"), entry.get("e")
    if not isinstance(n, str) or not isinstance(e, str):
        raise _Skip(f"kid {kid!r}: missing n or e")
    if _b64_bit_length(n) < MIN_RSA_BITS:
        raise _Skip(f"kid {kid!r}: RSA modulus shorter than {MIN_RSA_BITS} bits")
    try:
        # Only the public numbers are imported: x5c/x5t and any private members
        # a broken JWKS might carry are never used.
        rsa = RSAKey.import_key({"kty": "RSA", "n": n, "e": e}, {"kid": kid})
    except (JoseError, ValueError, TypeError) as exc:
        raise _Skip(f"kid {kid!r}: unparseable ({type(exc).__name__})") from exc
    return SigningKey(kid=kid, key=rsa, issuer=issuer)


def _b64_bit_length(value: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return 0
    return int.from_bytes(raw, "big").bit_length()


JwksFetcher = Callable[[], Coroutine[Any, Any, object]]


class JwksCache:
    """The signing keys of one tenant; see the module docstring for the rules."""

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_interval: float = 3600.0,
        unknown_kid_refetch_interval: float = 60.0,
        label: str = "",
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._refresh_interval = refresh_interval
        self._unknown_kid_interval = unknown_kid_refetch_interval
        self._label = label
        self._keys: dict[str, SigningKey] = {}
        self._loaded = False
        # Bumped by every successful fetch: lets a caller tell whether the keys
        # changed while it waited, so it does not refetch what it just got.
        self._generation = 0
        self._next_refresh_at = 0.0
        self._last_unknown_kid_fetch: float | None = None
        self._flight: SingleFlight[None] = SingleFlight(self._load)

    @property
    def keys(self) -> Mapping[str, SigningKey]:
        return dict(self._keys)

    async def get(self, kid: str) -> SigningKey:
        """The key with this ``kid``; InvalidIdToken("unknown kid") if Entra has none.

        Raises ProviderUnavailable/OidcError only when no keys could ever be
        loaded, or when an allowed unknown-kid refetch failed.
        """
        generation = self._generation
        if not self._loaded:
            await self._flight.run()
        elif self._clock() >= self._next_refresh_at:
            # Stale: refresh in the background, answer from the current keys.
            self._flight.start()

        key = self._keys.get(kid)
        if key is not None:
            return key

        if self._flight.running:
            await self._flight.wait()
            key = self._keys.get(kid)
            if key is not None:
                return key
        if self._generation != generation:
            # Keys were fetched after this token arrived: a refetch would
            # return the same set.
            raise InvalidIdToken("unknown kid")

        now = self._clock()
        last = self._last_unknown_kid_fetch
        if last is not None and now - last < self._unknown_kid_interval:
            raise InvalidIdToken("unknown kid")
        self._last_unknown_kid_fetch = now
        log.info("JWKS %s: unknown kid %r, fetching the key set again", self._label, kid[:64])
        await self._flight.run()
        key = self._keys.get(kid)
        if key is None:
            raise InvalidIdToken("unknown kid")
        return key

    async def refresh(self) -> None:
        """Fetch now (sharing any in-flight fetch); raises when it fails."""
        await self._flight.run()

    async def wait_idle(self) -> None:
        """Wait for an in-flight (e.g. background) fetch to finish."""
        await self._flight.wait()

    async def aclose(self) -> None:
        """Cancel a background fetch; call on shutdown."""
        await self._flight.aclose()

    async def _load(self) -> None:
        try:
            keys = parse_jwks(await self._fetch())
            if not keys:
                raise ProviderUnavailable("jwks", "no usable RS256 signing key")
        except OidcError as exc:
            # SECURITY/availability: keep the last good keys (Learn [KEYS]);
            # retry the regular refresh after the unknown-kid interval rather
            # than on every request while Entra is down.
            self._next_refresh_at = self._clock() + min(
                self._unknown_kid_interval, self._refresh_interval
            )
            log.warning(
                "JWKS %s: fetch failed (%s); keeping %d cached keys",
                self._label,
                exc,
                len(self._keys),
            )
            raise
        self._keys = keys
        self._loaded = True
        self._generation += 1
        self._next_refresh_at = self._clock() + self._refresh_interval
        log.debug("JWKS %s: loaded kids %s", self._label, sorted(keys))
