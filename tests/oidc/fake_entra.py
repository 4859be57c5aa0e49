"""A small, real Entra stand-in: an aiohttp app, served on 127.0.0.1 by aiohttp_server.

Serves per-tenant discovery, JWKS and token endpoints in Entra's shapes
(entra-reference §1, §3, §5), counts requests per endpoint, and can be switched
to failing modes. Only what the oidc tests need; the product's development
emulator lives in sidecar/dev.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from joserfc.jwk import RSAKey

from ._tokens import CLIENT_ID, TENANT_ID, mint, public_jwk, rsa_key


@dataclass
class IssuedCode:
    nonce: str
    code_challenge: str
    redirect_uri: str
    claims: dict[str, Any]


@dataclass
class FakeEntra:
    clock: Callable[[], float]
    tenant_id: str = TENANT_ID
    domains: tuple[str, ...] = ("contoso.com", "contoso.onmicrosoft.com")
    client_id: str = CLIENT_ID
    #: Secrets Entra accepts; anything else is 401 invalid_client / 7000215.
    secrets: set[str] = field(default_factory=lambda: {"current-secret"})
    #: Published signing keys; the first one signs.
    keys: list[RSAKey] = field(default_factory=lambda: [rsa_key("entra-1"), rsa_key("entra-2")])
    #: "ok" | "503" | "html" | "hang" | "redirect" | "garbage-jwks"
    mode: str = "ok"
    token_error: dict[str, Any] | None = None
    token_status: int = 400
    omit_id_token: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    codes: dict[str, IssuedCode] = field(default_factory=dict)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    authority: str = ""
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    # -- lifecycle: tests/oidc/conftest.py serves make_app() with aiohttp_server --------

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self.jwks)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self.token)
        app.router.add_get("/elsewhere", self.elsewhere)
        return app

    def release(self) -> None:
        """Let "hang" mode's requests end, so that the server can close."""
        self._release.set()

    # -- browser side, simulated -----------------------------------------------

    def authorize(self, params: dict[str, str], **claim_overrides: Any) -> str:
        """What /authorize would do after a successful sign-in: issue a code."""
        assert params["client_id"] == self.client_id
        assert params["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = IssuedCode(
            nonce=params["nonce"],
            code_challenge=params["code_challenge"],
            redirect_uri=params["redirect_uri"],
            claims=claim_overrides,
        )
        return code

    # -- endpoints ------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return f"{self.authority}/{self.tenant_id}/v2.0"

    async def _failure(self) -> web.Response | None:
        if self.mode == "503":
            return web.Response(status=503, text="Service Unavailable")
        if self.mode == "html":
            return web.Response(status=200, text="<html>sign in</html>", content_type="text/html")
        if self.mode == "hang":
            # Longer than any client timeout in the tests; released on release().
            await self._release.wait()
            return web.Response(status=504)
        if self.mode == "redirect":
            raise web.HTTPFound(f"{self.authority}/elsewhere")
        return None

    def _known_tenant(self, tenant: str) -> bool:
        return tenant.lower() == self.tenant_id or tenant.lower() in self.domains

    def _unknown_tenant(self, tenant: str) -> web.Response:
        return web.json_response(
            {
                "error": "invalid_tenant",
                "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                "error_codes": [90002],
                "timestamp": "2026-01-01 00:00:00Z",
                "trace_id": "trace-90002",
                "correlation_id": "corr-90002",
                "error_uri": "https://login.microsoftonline.com/error?code=90002",
            },
            status=400,
        )

    async def discovery(self, request: web.Request) -> web.StreamResponse:
        self.counts["discovery"] += 1
        if (failure := await self._failure()) is not None:
            return failure
        tenant = request.match_info["tenant"]
        if not self._known_tenant(tenant):
            return self._unknown_tenant(tenant)
        base = f"{self.authority}/{self.tenant_id}"
        return web.json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "issuer": self.issuer,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            }
        )

    async def jwks(self, request: web.Request) -> web.StreamResponse:
        self.counts["jwks"] += 1
        if (failure := await self._failure()) is not None:
            return failure
        if self.mode == "garbage-jwks":
            return web.json_response({"keys": [{"kty": "EC"}, "nope"]})
        return web.json_response(
            {
                "keys": [
                    public_jwk(k, issuer=f"{self.authority}/{{tenantid}}/v2.0") for k in self.keys
                ]
            }
        )

    async def elsewhere(self, request: web.Request) -> web.StreamResponse:
        self.counts["elsewhere"] += 1
        return web.json_response({"access_token": "stolen"})

    def _error(self, status: int, error: str, code: int) -> web.Response:
        return web.json_response(
            {
                "error": error,
                "error_description": f"AADSTS{code}: something.\r\nTrace ID: t\r\nCorrelation ID: c",
                "error_codes": [code],
                "timestamp": "2026-01-01 00:00:00Z",
                "trace_id": f"trace-{code}",
                "correlation_id": f"corr-{code}",
                "error_uri": f"https://login.microsoftonline.com/error?code={code}",
            },
            status=status,
        )

    async def token(self, request: web.Request) -> web.StreamResponse:
        self.counts["token"] += 1
        if (failure := await self._failure()) is not None:
            return failure
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.token_forms.append(form)
        if form.get("client_id") != self.client_id:
            return self._error(400, "unauthorized_client", 700016)
        if form.get("client_secret") not in self.secrets:
            return self._error(401, "invalid_client", 7000215)
        if self.token_error is not None:
            return web.json_response(self.token_error, status=self.token_status)
        if form.get("grant_type") == "client_credentials":
            return web.json_response(
                {"token_type": "Bearer", "expires_in": 3599, "access_token": "at"}
            )
        issued = self.codes.pop(form.get("code", ""), None)
        if issued is None:
            return self._error(400, "invalid_grant", 54005)
        if form.get("redirect_uri") != issued.redirect_uri:
            return self._error(400, "invalid_grant", 50148)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if challenge.rstrip(b"=").decode() != issued.code_challenge:
            return self._error(400, "invalid_grant", 501481)
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": "openid profile email",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": "opaque-graph-token",
        }
        if not self.omit_id_token:
            body["id_token"] = self.id_token(issued.nonce, **issued.claims)
        return web.json_response(body)

    def id_token(
        self, nonce: str, /, *, signing_key: RSAKey | None = None, **overrides: Any
    ) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "ver": "2.0",
            "iss": self.issuer,
            "aud": self.client_id,
            "tid": self.tenant_id,
            "oid": "9f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b",
            "sub": "pairwise-sub",
            "nonce": nonce,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "sid": "sid-1",
            "email": "megan@contoso.com",
            "xms_edov": True,
            "name": "Megan Bowen",
        }
        claims.update(overrides)
        return mint(claims, signing_key or self.keys[0])
