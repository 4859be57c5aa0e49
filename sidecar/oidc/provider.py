"""One customer's Entra tenant, seen from the relying party.

Framework-free: the web layer calls these coroutines and maps the errors of
``sidecar.oidc.errors`` onto pages; all HTTP goes through the
``aiohttp.ClientSession`` passed in. Flow: authorization-code with PKCE and a
confidential client, per entra-reference §2-§3; the client authenticates with the tenant's
``ClientCredential`` (a secret, a certificate assertion or a federated token).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from ._http import request_json
from ._singleflight import SingleFlight
from .credentials import ClientCredential, ClientSecrets
from .discovery import (
    ProviderMetadata,
    discovery_url,
    is_custom_domain,
    normalize_authority,
    parse_metadata,
    validate_tenant,
)
from .errors import InvalidIdToken, OidcError, ProviderRejected
from .events import FetchObserver, ignore_fetch
from .idtoken import Expectations, IdTokenClaims, parse_compact, verify_id_token
from .jwks import JwksCache

__all__ = [
    "SCOPE",
    "AuthorizationRequest",
    "EntraProvider",
    "IdTokenClaims",
    "TokenResult",
]

log = logging.getLogger(__name__)

#: Learn [SCOPES]: openid for the ID token, profile for oid and names, email for
#: the (optional, unverified) email claim. No offline_access: no refresh tokens.
SCOPE = "openid profile email"

# Learn [CODE]: a server can only read query and form_post responses; the
# fragment never leaves the browser.
_RESPONSE_MODES = frozenset({"query", "form_post"})


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and what the login transaction must remember.

    ``state``, ``nonce`` and ``code_verifier`` are secrets of this sign-in: keep
    them where only the browser that started it can hand them back to the
    callback, never in a log line. The sidecar keeps nothing server-side: it
    seals them into an encrypted cookie per attempt (sidecar/auth/login_transaction.py).
    """

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class TokenResult:
    id_token_claims: IdTokenClaims
    #: Index of the credential (secret or certificate) Entra accepted (0 = newest).
    secret_index: int


class EntraProvider:
    def __init__(
        self,
        *,
        authority: str,
        tenant: str,
        client_id: str,
        http: aiohttp.ClientSession,
        credential: ClientCredential | None = None,
        client_secrets: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
        discovery_ttl: float = 3600,
        leeway: float = 300,
        max_iat_age: float = 3600,
        http_timeout: float = 10,
        on_fetch: FetchObserver | None = None,
    ) -> None:
        self._authority = normalize_authority(authority)
        self._tenant = validate_tenant(tenant.strip())
        if not client_id:
            raise ValueError("client_id is empty")
        if (credential is None) == (client_secrets is None):
            raise TypeError("give exactly one of credential or client_secrets")
        self._credential = credential or ClientSecrets(client_secrets or ())
        self._client_id = client_id
        self._http = http
        self._clock = clock
        self._discovery_ttl = discovery_ttl
        self._leeway = leeway
        self._max_iat_age = max_iat_age
        self._timeout = http_timeout
        # Metrics live in the web layer; without an observer of its own the provider
        # reports to the process-wide one (sidecar.oidc.events).
        self._on_fetch: FetchObserver = on_fetch or ignore_fetch
        self._discovery_url = discovery_url(self._authority, self._tenant)

        self._metadata: ProviderMetadata | None = None
        self._metadata_next_refresh = 0.0
        self._metadata_flight: SingleFlight[ProviderMetadata] = SingleFlight(self._load_metadata)
        # The clock drives the caches too, so tests can step through the
        # refresh and unknown-kid intervals without sleeping.
        self.keys = JwksCache(self._fetch_jwks, clock=clock, label=self._tenant)

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def authority(self) -> str:
        return self._authority

    @property
    def credential(self) -> ClientCredential:
        return self._credential

    def secret_fingerprint(self, index: int) -> str:
        """The fingerprint of credential entry ``index`` (never the value): what the
        rotation metric shows, so it names the secret actually in use."""
        return self._credential.fingerprint(index)

    # -- discovery ---------------------------------------------------------

    async def metadata(self) -> ProviderMetadata:
        """The tenant's discovery metadata, cached for ``discovery_ttl``.

        A cold cache waits for Entra (ProviderUnavailable, ProviderRejected for
        an unknown tenant, or InvalidDiscovery); afterwards a stale entry is
        refreshed in the background and the last good one stays in use when
        that fails (entra-reference §4 "Caching", by analogy with the keys).
        """
        current = self._metadata
        if current is None:
            return await self._metadata_flight.run()
        if self._clock() >= self._metadata_next_refresh:
            self._metadata_flight.start()
        return current

    async def _load_metadata(self) -> ProviderMetadata:
        try:
            document = await request_json(
                self._http,
                "GET",
                self._discovery_url,
                endpoint="discovery",
                request_timeout=self._timeout,
            )
            metadata = parse_metadata(document, authority=self._authority, tenant=self._tenant)
        except OidcError as exc:
            self._on_fetch(self._tenant, "discovery", "error")
            self._metadata_next_refresh = self._clock() + min(60.0, self._discovery_ttl)
            log.warning("discovery for tenant %s failed: %s", self._tenant, exc)
            raise
        self._on_fetch(self._tenant, "discovery", "ok")
        self._metadata = metadata
        self._metadata_next_refresh = self._clock() + self._discovery_ttl
        return metadata

    async def _fetch_jwks(self) -> object:
        metadata = await self.metadata()
        try:
            document = await request_json(
                self._http, "GET", metadata.jwks_uri, endpoint="jwks", request_timeout=self._timeout
            )
        except OidcError:
            self._on_fetch(self._tenant, "jwks", "error")
            raise
        self._on_fetch(self._tenant, "jwks", "ok")
        return document

    # -- sign-in -------------------------------------------------------------

    async def authorization_request(
        self,
        *,
        redirect_uri: str,
        response_mode: str = "query",
        prompt: str | None = None,
        login_hint: str | None = None,
    ) -> AuthorizationRequest:
        """Build the /authorize redirect (Learn [CODE] "Request an authorization code")."""
        if response_mode not in _RESPONSE_MODES:
            raise ValueError(
                f"response_mode {response_mode!r} is not one of {sorted(_RESPONSE_MODES)}"
            )
        metadata = await self.metadata()
        # SECURITY: 256 bits each from the OS CSPRNG. state binds the callback to
        # this browser's transaction (RFC 6749 §10.12, CSRF), nonce binds the ID
        # token to it (OIDC Core §3.1.2.1, replay), and PKCE binds the code to
        # this client (RFC 7636 §1, code interception/injection).
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        # RFC 7636 §4.1: 43-128 characters of [A-Za-z0-9-._~]; token_urlsafe(64)
        # gives 86 characters of that alphabet.
        code_verifier = secrets.token_urlsafe(64)
        params: dict[str, str] = {
            "client_id": self._client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "response_mode": response_mode,
            "state": state,
            "nonce": nonce,
            # RFC 7636 §4.2; Learn [CODE] recommends PKCE for confidential clients too.
            "code_challenge": str(create_s256_code_challenge(code_verifier)),
            "code_challenge_method": "S256",
        }
        if is_custom_domain(self._tenant):
            # entra-reference §2: domain_hint skips home-realm discovery and sends
            # federated users straight to their IdP. Only meaningful for a
            # custom domain; a GUID or *.onmicrosoft.com tells HRD nothing.
            params["domain_hint"] = self._tenant
        if prompt is not None:
            params["prompt"] = prompt
        if login_hint is not None:
            params["login_hint"] = login_hint
        return AuthorizationRequest(
            url=_with_query(metadata.authorization_endpoint, params),
            state=state,
            nonce=nonce,
            code_verifier=code_verifier,
        )

    @staticmethod
    def response_iss_valid(metadata: ProviderMetadata, iss: str | None) -> bool:
        """RFC 9207 §2.4: the callback's ``iss`` parameter, when sent, equals the issuer.

        Required when discovery sets ``authorization_response_iss_parameter_supported``
        (mix-up attack defence); the contract fails the callback otherwise.
        """
        if iss is None:
            return not metadata.authorization_response_iss_parameter_supported
        return iss == metadata.issuer

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> TokenResult:
        """Redeem the code (Learn [CODE] "Redeem a code for an access token").

        ProviderRejected carries Entra's error (e.g. invalid_grant for a
        redeemed, expired or PKCE-mismatched code); the ID token is validated
        before anything is returned.
        """
        body, index = await self._token_request(
            {
                "grant_type": "authorization_code",
                "client_id": self._client_id,
                "code": code,
                # Must be identical to the /authorize one (RFC 6749 §4.1.3).
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )
        raw = body.get("id_token")
        if not isinstance(raw, str) or not raw:
            raise InvalidIdToken("no id_token")
        # The access token (for Graph) is opaque to us and never used or kept
        # (entra-reference §3 "Response").
        claims = await self.validate_id_token(raw, nonce=nonce)
        return TokenResult(id_token_claims=claims, secret_index=index)

    async def validate_id_token(self, raw: str, *, nonce: str) -> IdTokenClaims:
        """Validate an ID token for this tenant; InvalidIdToken when refused."""
        # Shape and header first: garbage never costs a network round trip.
        token = parse_compact(raw)
        metadata = await self.metadata()
        key = await self.keys.get(token.kid)
        expected = Expectations(
            authority=self._authority,
            issuer=metadata.issuer,
            tenant_id=metadata.tenant_id,
            client_id=self._client_id,
            leeway=self._leeway,
            max_iat_age=self._max_iat_age,
        )
        return verify_id_token(token, key, expected=expected, nonce=nonce, now=self._clock())

    # -- sign-out --------------------------------------------------------------

    def end_session_url(
        self,
        metadata: ProviderMetadata,
        *,
        post_logout_redirect_uri: str,
        logout_hint: str | None,
    ) -> str:
        """Entra's end_session URL (entra-reference §6 "RP-initiated logout").

        ``logout_hint`` is the ``login_hint`` claim of the ID token, never a UPN.
        """
        endpoint = metadata.end_session_endpoint or (
            # The documented path (Learn [OIDC]) when discovery omits it.
            f"{self._authority}/{metadata.tenant_id}/oauth2/v2.0/logout"
        )
        params = {
            "client_id": self._client_id,
            "post_logout_redirect_uri": post_logout_redirect_uri,
        }
        if logout_hint:
            params["logout_hint"] = logout_hint
        return _with_query(endpoint, params)

    # -- operator checks ---------------------------------------------------------

    async def check_client_credentials(
        self, scope: str = "https://graph.microsoft.com/.default"
    ) -> int:
        """Prove client id and credential with a client-credentials request (RFC 6749 §4.4).

        Returns the index of the credential that worked; the token is discarded.
        Raises ProviderRejected (e.g. unauthorized_client/700016 for an app not
        in the tenant, invalid_client/7000215 or 7000222 for a secret, 700027 for
        a certificate, 700211-700213 for a federated token), ProviderUnavailable,
        or FederatedTokenUnreadable.
        """
        _, index = await self._token_request(
            {"grant_type": "client_credentials", "client_id": self._client_id, "scope": scope}
        )
        return index

    async def _token_request(self, form: Mapping[str, str]) -> tuple[dict[str, Any], int]:
        metadata = await self.metadata()
        credential = self._credential
        last = credential.count - 1
        for index in range(credential.count):
            authentication = await credential.authentication(
                index, client_id=self._client_id, token_endpoint=metadata.token_endpoint
            )
            try:
                body = await request_json(
                    self._http,
                    "POST",
                    metadata.token_endpoint,
                    endpoint="token",
                    request_timeout=self._timeout,
                    # The form (secret, assertion, code) never reaches a log.
                    form={**form, **authentication},
                )
            except ProviderRejected as exc:
                # Rotation: the list is newest first. Branch on the OAuth error,
                # not the AADSTS number (Learn [ERR] "Policy"). Client
                # authentication fails before the grant is looked at, so the
                # same code can be offered again with the next credential.
                if exc.error == "invalid_client" and index < last:
                    log.warning(
                        "tenant %s: client %s refused (%s); trying the next",
                        self._tenant,
                        credential.label(index),
                        f"AADSTS{exc.aadsts}" if exc.aadsts else exc.error,
                    )
                    continue
                raise
            if index > 0:
                log.warning(
                    "tenant %s: only client %s is accepted; replace the newer ones",
                    self._tenant,
                    credential.label(index),
                )
            return body, index
        raise AssertionError("unreachable: a credential has at least one entry")

    async def aclose(self) -> None:
        """Cancel background refreshes; call on shutdown (before closing the session)."""
        await self.keys.aclose()
        await self._metadata_flight.aclose()


def _with_query(url: str, params: Mapping[str, str]) -> str:
    """Append ``params`` to ``url``'s query (keeping one it already has, e.g. ?appid=)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
