"""The development Entra emulator with an app that trusts certificates and a cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from sidecar.dev.certificates import DevCertificate, self_signed
from sidecar.dev.entra import EmulatedApp, EntraEmulator, sample_tenant
from sidecar.dev.entra_assertions import FederatedCredential
from tests.cluster_issuer import SUBJECT, ClusterIssuer, cluster_issuer
from tests.helpers import serve_app
from tests.world import PUBLIC_BASE, TENANT_ID

TOKEN_PATH = f"/{TENANT_ID}/oauth2/v2.0/token"


@dataclass
class Setup:
    emulator: EntraEmulator
    url: str
    cluster: ClusterIssuer
    registered: DevCertificate  # uploaded to the app
    stranger: DevCertificate  # never uploaded
    token_file: Path
    http: aiohttp.ClientSession

    @property
    def app(self) -> EmulatedApp:
        return self.emulator.tenants[0].apps[0]

    @property
    def token_endpoint(self) -> str:
        return self.url + TOKEN_PATH

    def write_token(self, token: str) -> None:
        # kubelet's atomic writer: a new file renamed over the old name.
        fresh = self.token_file.with_suffix(".new")
        fresh.write_text(token)
        fresh.replace(self.token_file)

    async def token_request(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        body = {"grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"}
        async with self.http.post(self.token_endpoint, data={**body, **form}) as response:
            return response.status, await response.json()


@asynccontextmanager
async def entra_with_credentials(tmp_path: Path) -> AsyncIterator[Setup]:
    emulator = EntraEmulator([sample_tenant(PUBLIC_BASE)])
    registered, stranger = self_signed("registered"), self_signed("stranger")
    async with (
        cluster_issuer() as cluster,
        serve_app(emulator.make_app()) as url,
        aiohttp.ClientSession() as http,
    ):
        app = emulator.tenants[0].apps[0]
        app.certificates.append(registered.certificate)
        app.federated_credentials.append(FederatedCredential(issuer=cluster.url, subject=SUBJECT))
        token_file = tmp_path / "azure-identity-token"
        token_file.write_text(cluster.token())
        yield Setup(emulator, url, cluster, registered, stranger, token_file, http)
