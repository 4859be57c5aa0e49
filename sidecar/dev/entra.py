"""Development emulator of the Microsoft Entra ID v2.0 OIDC endpoints.

Development and test only: nothing in production code imports it. For every emulated tenant,
under its GUID and each of its domains, it serves the endpoints of entra-reference §1 with the
behaviour listed in that document's "Emulator checklist": discovery, JWKS, authorize (with an
account-picker page), token (authorization_code and client_credentials), logout with
front-channel logout, and Entra's error shapes (§5).

The issuer is built from the request's own origin, ``{scheme}://{host}/{tenant_id}/v2.0``, so
the emulator can listen on ``127.0.0.1`` on a random port and the relying party is configured
with that origin as its authority.

The implementation is split by endpoint: ``entra_authorize``, ``entra_token``,
``entra_logout``; ``entra_model`` (data), ``entra_errors`` (error shapes), ``entra_signing``
(keys, JWS) and ``entra_pages`` (HTML).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web

from sidecar import routes
from sidecar.dev import entra_authorize, entra_logout, entra_pages, entra_token
from sidecar.dev import entra_errors as err
from sidecar.dev.entra_model import (
    MULTI_TENANT_SEGMENTS,
    AccessTokenRecord,
    CodeGrant,
    EmulatedApp,
    EmulatedTenant,
    EmulatedUser,
    SignIn,
    issuer_for,
    origin_of,
    template_issuer,
)
from sidecar.dev.entra_signing import SigningKey

__all__ = [
    "EmulatedApp",
    "EmulatedTenant",
    "EmulatedUser",
    "EntraEmulator",
    "sample_tenant",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# entra-reference §1: discovery and keys are served with these headers.
_METADATA_HEADERS = {"Cache-Control": "max-age=86400, private", "Access-Control-Allow-Origin": "*"}


class EntraEmulator:
    """An in-process Entra ID v2.0 for development, tests and the demo.

    Test switches are plain attributes: ``id_token_hook``, ``token_response_hook``,
    ``available``, ``unassigned_error``/``unassigned_response`` and
    ``authorization_response_iss``. Observations: ``requests``, ``frontchannel_calls``,
    ``frontchannel_results``.
    """

    def __init__(
        self,
        tenants: list[EmulatedTenant],
        *,
        key_count: int = 2,
        code_lifetime: float = 60.0,
        frontchannel_server_side: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenants = tenants
        self.code_lifetime = code_lifetime
        self.frontchannel_server_side = frontchannel_server_side
        self.clock = clock  # codes, secret expiry and token times; tests may shift it

        # Called with (jose_header, claims) before signing; may mutate both.
        self.id_token_hook: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
        # Called with every successful /token JSON body; returns the body to send.
        self.token_response_hook: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.available = True  # False: every endpoint answers 503 (an Entra outage)
        # entra-reference §5: 50105 has been seen redirected as access_denied and as
        # interaction_required, and also left on Entra's own page; the RP must handle all.
        self.unassigned_error = "access_denied"
        self.unassigned_response: Literal["redirect", "page"] = "redirect"
        # RFC 9207 `iss` in the authorization response. Entra does not send it; turning it on
        # lets a relying party's check of it be tested (contract: /.sso/callback).
        self.authorization_response_iss = False

        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.frontchannel_calls: list[str] = []  # every front-channel logout URL issued
        self.frontchannel_results: list[tuple[str, int | str]] = []  # server-side outcomes

        # Internal state, shared with the entra_* endpoint modules.
        # entra-reference §4: there is always more than one key; one of them signs.
        self.signing_keys = [SigningKey.generate() for _ in range(max(1, key_count))]
        self.active_kid = self.signing_keys[0].kid
        self.codes: dict[str, CodeGrant] = {}
        self.access_tokens: dict[str, AccessTokenRecord] = {}
        self.browsers: dict[str, dict[str, SignIn]] = {}  # cookie -> tenant_id -> sign-in
        self._runner: web.AppRunner | None = None

    # ---- public conveniences ------------------------------------------------------------

    @property
    def kids(self) -> list[str]:
        """The kids currently published in the JWKS, oldest first."""
        return [k.kid for k in self.signing_keys]

    def rotate_keys(self, *, drop_old: bool = False) -> str:
        """Add a new RSA signing key, make it the active one and return its kid.

        entra-reference §4: keys roll with no guaranteed interval, "in an emergency...
        immediately"; ``drop_old`` removes every older key from the JWKS at once.
        """
        key = SigningKey.generate()
        self.signing_keys = [key] if drop_old else [*self.signing_keys, key]
        self.active_kid = key.kid
        return key.kid

    def tenant(self, ref: str) -> EmulatedTenant | None:
        """The tenant whose GUID, or one of whose domains, is ``ref`` (case-insensitive)."""
        ref = ref.lower()
        for tenant in self.tenants:
            if ref == tenant.tenant_id.lower() or ref in (d.lower() for d in tenant.domains):
                return tenant
        return None

    def knows_client(self, client_id: str) -> bool:
        return bool(client_id) and any(t.app(client_id) for t in self.tenants)

    @staticmethod
    def issuer(origin: str, tenant_id: str) -> str:
        """``{origin}/{tenant_id}/v2.0``: the issuer tokens of that tenant carry."""
        return issuer_for(origin, tenant_id)

    def default_app_and_user(self) -> tuple[EmulatedTenant, EmulatedApp, EmulatedUser]:
        """The first tenant, its first app and its first user who can sign in."""
        tenant = self.tenants[0]
        user = next(u for u in tenant.users if u.assigned and not u.declines_consent)
        return tenant, tenant.apps[0], user

    def sign_out_everyone(self) -> None:
        """Forget every browser's Entra session (prompt=none then answers login_required)."""
        self.browsers.clear()

    def make_app(self) -> web.Application:
        @web.middleware
        async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.requests.append((request.method, request.path))
            if not self.available:
                body = {
                    "error": "temporarily_unavailable",
                    "error_description": "Entra emulator: simulated outage (available=False)",
                }
                return web.json_response(body, status=503, headers={"Retry-After": "5"})
            try:
                return await handler(request)
            except err.EntraError as exc:
                return err.json_error(request, exc)
            except err.PageError as exc:
                return err.page_error(request, exc)

        app = web.Application(middlewares=[observe])
        router = app.router
        router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._discovery)
        router.add_get("/{tenant}/discovery/v2.0/keys", self._jwks)
        router.add_get("/{tenant}/oauth2/v2.0/authorize", self._authorize)
        router.add_post("/{tenant}/oauth2/v2.0/authorize", self._authorize)
        router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        router.add_get("/{tenant}/oauth2/v2.0/logout", self._logout)
        router.add_post("/{tenant}/oauth2/v2.0/logout", self._logout)
        router.add_get("/oidc/userinfo", self._userinfo)
        router.add_get("/error", self._error_lookup)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: a free port) and return the origin, i.e. the authority
        the relying party is configured with. Pair with ``stop()``."""
        if self._runner is not None:
            raise RuntimeError("EntraEmulator is already started")
        runner = web.AppRunner(self.make_app())
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        return f"http://{bound_host}:{bound_port}"

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ---- endpoints ----------------------------------------------------------------------

    def _issuer_for_path(self, request: web.Request) -> tuple[str, str]:
        """(issuer, endpoint base) for the tenant segment of the path."""
        origin = origin_of(request)
        segment = request.match_info["tenant"]
        if segment.lower() in MULTI_TENANT_SEGMENTS:
            # §1: common/organizations publish the literal `{tenantid}` template.
            return template_issuer(origin), f"{origin}/{segment.lower()}"
        tenant = self.tenant(segment)
        if tenant is None:
            raise err.EntraError(400, "invalid_tenant", *err.unknown_tenant(segment))
        # §1 (inference): a domain path advertises the GUID issuer, and GUID endpoints.
        return issuer_for(origin, tenant.tenant_id), f"{origin}/{tenant.tenant_id}"

    async def _discovery(self, request: web.Request) -> web.Response:
        issuer, base = self._issuer_for_path(request)
        # §1 "Real tenant-specific document": the same fields, in the same order.
        doc: dict[str, Any] = {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer,
            "request_uri_parameter_supported": False,
            # The real value is Graph's; the emulator's own keeps the demo offline.
            "userinfo_endpoint": f"{origin_of(request)}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": _CLAIMS_SUPPORTED,
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
        if self.authorization_response_iss:
            doc["authorization_response_iss_parameter_supported"] = True
        return web.json_response(doc, headers=_METADATA_HEADERS)

    async def _jwks(self, request: web.Request) -> web.Response:
        # §4: each key carries an issuer; a concrete one restricts it to that tenant's tokens.
        issuer, _ = self._issuer_for_path(request)
        keys = [k.public_jwk(issuer) for k in self.signing_keys]
        return web.json_response({"keys": keys}, headers=_METADATA_HEADERS)

    async def _authorize(self, request: web.Request) -> web.Response:
        return await entra_authorize.authorize(self, request)

    async def _token(self, request: web.Request) -> web.Response:
        return await entra_token.token(self, request)

    async def _logout(self, request: web.Request) -> web.Response:
        return await entra_logout.logout(self, request)

    async def _userinfo(self, request: web.Request) -> web.Response:
        return await entra_token.userinfo(self, request)

    async def _error_lookup(self, request: web.Request) -> web.Response:
        text = entra_pages.error_lookup(request.query.get("code", ""))
        return web.Response(text=text, content_type="text/html")


_CLAIMS_SUPPORTED = [
    "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
    "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
    "name", "tid", "ver", "at_hash", "c_hash", "email",
]  # fmt: skip


def sample_tenant(
    public_base: str,
    *,
    tenant_id: str = "6d5a4e1c-3b2a-4c1d-9e8f-7a6b5c4d3e2f",
    client_id: str = "11111111-2222-3333-4444-555555555555",
    client_secret: str = "dev~emulator-secret-value",
    domain: str = "contoso.test",
) -> EmulatedTenant:
    """A ready-made tenant for the demo and tests, registered for a sidecar host at
    ``public_base`` with the URIs the contract's ``check-config`` prints (callback,
    front-channel logout, signed-out), and one user per interesting case. Alice holds the
    app role Agent, Bob and Erin Requester, Frank none (the ID token then has no roles
    claim)."""
    base = public_base.rstrip("/")
    app = EmulatedApp(
        client_id=client_id,
        secrets={client_secret: None},
        redirect_uris=[base + routes.CALLBACK],
        logout_url=base + routes.FRONTCHANNEL_LOGOUT,
        post_logout_redirect_uris=[base + routes.SIGNED_OUT],
    )
    p = tenant_id[:8]
    users = [
        EmulatedUser("alice", f"{p}-0000-4000-8000-00000000a11c", "Alice Example", "Alice",
                     "Example", f"alice@{domain}", roles=["Agent"]),
        EmulatedUser("bob", f"{p}-0000-4000-8000-000000000b0b", "Bob NoMail", "Bob", "NoMail",
                     None, roles=["Requester"]),
        EmulatedUser("erin", f"{p}-0000-4000-8000-00000000e21e", "Erin Unverified", "Erin",
                     "Unverified", "erin@unverified.example", email_verified_domain=False,
                     roles=["Requester"]),
        EmulatedUser("frank", f"{p}-0000-4000-8000-00000000f2a4", "Frank NoRole", "Frank",
                     "NoRole", f"frank@{domain}"),
        EmulatedUser("carol", f"{p}-0000-4000-8000-00000000ca10", "Carol Unassigned", "Carol",
                     "Unassigned", f"carol@{domain}", assigned=False),
        EmulatedUser("dave", f"{p}-0000-4000-8000-00000000da7e", "Dave Declines", "Dave",
                     "Declines", f"dave@{domain}", declines_consent=True),
    ]  # fmt: skip
    onmicrosoft = domain.split(".")[0] + ".onmicrosoft.com"
    return EmulatedTenant(tenant_id, [domain, onmicrosoft], [app], users)
