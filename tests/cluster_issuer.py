"""A Kubernetes cluster's service-account token issuer, as Entra sees it: an OpenID
discovery document and a JWKS on a real loopback server, and projected tokens signed with
its key (what kubelet writes into the pod's token file)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.helpers import serve_app

NAMESPACE = "ticketlog"
SERVICE_ACCOUNT = "ticketlog-sso"
SUBJECT = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
AUDIENCE = "api://AzureADTokenExchange"


@dataclass
class ClusterIssuer:
    url: str
    key: RSAKey

    def token(
        self,
        *,
        subject: str = SUBJECT,
        audience: str = AUDIENCE,
        lifetime: float = 3600,
        issued: float | None = None,
        issuer: str | None = None,
    ) -> str:
        now = int(time.time() if issued is None else issued)
        claims = {
            "iss": issuer or self.url,
            "sub": subject,
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": int(now + lifetime),
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": NAMESPACE, "serviceaccount": {"name": SERVICE_ACCOUNT}},
        }
        return jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)


@asynccontextmanager
async def cluster_issuer() -> AsyncIterator[ClusterIssuer]:
    key = RSAKey.generate_key(2048, parameters={"use": "sig"}, auto_kid=True)
    holder: dict[str, str] = {}

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": holder["url"],
                "jwks_uri": f"{holder['url']}/openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response({"keys": [key.as_dict(private=False)]})

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/openid/v1/jwks", jwks)
    async with serve_app(app) as url:
        holder["url"] = url
        yield ClusterIssuer(url, key)
