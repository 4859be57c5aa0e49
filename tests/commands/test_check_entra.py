"""`check-entra` against the real development Entra emulator on loopback: no mocks."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer

from bench.procs import free_port
from sidecar.commands.check_entra import check_entra, graph_default_scope
from sidecar.dev.entra import EmulatedApp, EntraEmulator, sample_tenant
from tests.helpers import SERVER_OPTIONS, config_from
from tests.world import CLIENT_ID, CLIENT_SECRET, HOST, PUBLIC_BASE, TENANT_ID, world_config

# What a customer pastes when they send the secret's ID instead of its Value.
SECRET_ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
NEW_SECRET = "new~rotated-secret-value-0123456789"
OTHER_CLIENT_ID = "99999999-2222-3333-4444-555555555555"


@dataclass
class Entra:
    emulator: EntraEmulator
    url: str

    @property
    def app(self) -> EmulatedApp:
        return self.emulator.tenants[0].apps[0]


@pytest.fixture
async def entra(aiohttp_server: AiohttpServer) -> Entra:
    emulator = EntraEmulator([sample_tenant(PUBLIC_BASE)])
    server = await aiohttp_server(emulator.make_app(), **SERVER_OPTIONS)
    return Entra(emulator, str(server.make_url("")))


def document(authority: str) -> dict[str, Any]:
    # The world's config: one SSO tenant (contoso.test in the emulator) and one SSO-less one.
    # Nothing here talks to the desk or the SMTP port.
    return world_config(desk_url="http://127.0.0.1:9", emulator_url=authority, smtp_port=2525)


def sso(doc: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = doc["tenants"][0]["sso"]
    return block


async def run(
    doc: dict[str, Any], host: str | None = None, *, secrets: tuple[str, ...] = ()
) -> tuple[int, str]:
    out = io.StringIO()
    status = await check_entra(config_from(doc), host=host, out=out)
    text = out.getvalue()
    # SECURITY: whatever happened, no secret the config holds is ever printed.
    for secret in (CLIENT_SECRET, NEW_SECRET, SECRET_ID, *secrets):
        assert secret not in text
    return status, text


def lines_of(text: str) -> list[str]:
    return text.splitlines()


async def test_all_good(entra: Entra) -> None:
    status, text = await run(document(entra.url))
    assert status == 0, text
    assert lines_of(text) == [
        f"{HOST}: tenant contoso.test resolves (tenant ID {TENANT_ID})",
        f"{HOST}: client ID and secret accepted (secret 1 of 1)",
        "plain.example.test: no sso block, nothing to check",
    ]
    # The check used the client-credentials grant, not a sign-in.
    assert ("POST", f"/{TENANT_ID}/oauth2/v2.0/token") in entra.emulator.requests


async def test_unknown_tenant(entra: Entra) -> None:
    doc = document(entra.url)
    sso(doc)["tenant"] = "fabrikam.test"
    status, text = await run(doc)
    assert status == 1
    assert f"{HOST}: FAILED: tenant fabrikam.test not found (AADSTS90002" in text
    assert "check the primary domain or tenant ID (and the cloud/authority" in text
    assert entra.url in text
    assert "client ID and secret not checked" in text
    assert "accepted" not in text
    # No token request was even attempted.
    assert not any(path.endswith("/token") for _, path in entra.emulator.requests)


async def test_unknown_tenant_id(entra: Entra) -> None:
    doc = document(entra.url)
    sso(doc)["tenant"] = "00000000-0000-4000-8000-000000000000"
    status, text = await run(doc)
    assert status == 1
    assert "tenant 00000000-0000-4000-8000-000000000000 not found (AADSTS90002" in text


async def test_wrong_client_id(entra: Entra) -> None:
    doc = document(entra.url)
    sso(doc)["client_id"] = OTHER_CLIENT_ID
    status, text = await run(doc)
    assert status == 1
    assert f"{HOST}: tenant contoso.test resolves (tenant ID {TENANT_ID})" in text
    assert (
        f"{HOST}: FAILED: application (client) ID {OTHER_CLIENT_ID} not found in tenant "
        "contoso.test (AADSTS700016, correlation ID "
    ) in text
    assert "check the client ID, and that the app is registered in this tenant" in text


async def test_secret_id_instead_of_value(entra: Entra) -> None:
    doc = document(entra.url)
    sso(doc)["client_secret"] = SECRET_ID
    status, text = await run(doc)
    assert status == 1
    assert f"{HOST}: FAILED: invalid client secret (AADSTS7000215" in text
    assert "you may have sent the secret's ID instead of its Value" in text
    assert "Certificates & secrets → the Value column, shown only once" in text


async def test_expired_secret(entra: Entra) -> None:
    entra.app.secrets[CLIENT_SECRET] = time.time() - 60
    status, text = await run(document(entra.url))
    assert status == 1
    assert f"{HOST}: FAILED: the client secret has expired (AADSTS7000222" in text
    assert "create a new secret and add it to client_secret (list form, newest first)" in text


async def test_rotation_newest_stale_older_works(entra: Entra) -> None:
    # The newest entry is expired; sign-in still works with the older one.
    entra.app.secrets[NEW_SECRET] = time.time() - 60
    doc = document(entra.url)
    sso(doc)["client_secret"] = [NEW_SECRET, CLIENT_SECRET]
    status, text = await run(doc)
    assert status == 0, text
    assert f"{HOST}: client ID and secret accepted (secret 2 of 2)" in text
    assert f"{HOST}: warning: secret 1 of 2 (newer) refused: the client secret has expired" in text
    assert "sign-in works only with secret 2 of 2" in text


async def test_rotation_newest_is_an_id(entra: Entra) -> None:
    doc = document(entra.url)
    sso(doc)["client_secret"] = [SECRET_ID, CLIENT_SECRET]
    status, text = await run(doc)
    assert status == 0, text
    assert "secret 1 of 2 (newer) refused: invalid client secret (AADSTS7000215" in text
    assert "secret's ID instead of its Value" in text


async def test_rotation_newest_works_older_can_go(entra: Entra) -> None:
    entra.app.secrets[NEW_SECRET] = None
    doc = document(entra.url)
    sso(doc)["client_secret"] = [NEW_SECRET, CLIENT_SECRET]
    status, text = await run(doc)
    assert status == 0, text
    assert f"{HOST}: client ID and secret accepted (secret 1 of 2)" in text
    assert "secret 2 of the list can be removed from client_secret" in text
    assert "warning" not in text


async def test_rotation_none_works(entra: Entra) -> None:
    entra.app.secrets[CLIENT_SECRET] = time.time() - 60
    doc = document(entra.url)
    sso(doc)["client_secret"] = [SECRET_ID, CLIENT_SECRET]
    status, text = await run(doc)
    assert status == 1
    assert f"{HOST}: FAILED: none of the 2 client secrets is accepted" in text
    assert f"{HOST}:   secret 1 of 2: invalid client secret (AADSTS7000215" in text
    assert f"{HOST}:   secret 2 of 2: the client secret has expired (AADSTS7000222" in text


async def test_entra_unreachable() -> None:
    authority = f"http://127.0.0.1:{free_port()}"
    status, text = await run(document(authority))
    assert status == 1
    assert f"{HOST}: FAILED: cannot reach Entra at {authority} (discovery endpoint" in text
    assert "check this host's network, DNS and outbound proxy" in text
    assert "client ID and secret not checked" in text


async def test_entra_outage(entra: Entra) -> None:
    entra.emulator.available = False
    status, text = await run(document(entra.url))
    assert status == 1
    assert f"{HOST}: FAILED: Entra at {entra.url} failed (discovery endpoint, HTTP 503)" in text


async def test_tenant_given_by_id_gets_a_note(entra: Entra) -> None:
    doc = document(entra.url)
    sso(doc)["tenant"] = TENANT_ID
    status, text = await run(doc)
    assert status == 0, text
    assert f"{HOST}: tenant {TENANT_ID} resolves (tenant ID {TENANT_ID})" in text
    assert (
        "note: tenant is given as a tenant ID (GUID); the customer's custom primary domain" in text
    )


@pytest.mark.parametrize("host", [HOST, HOST.upper() + "."])
async def test_one_host(entra: Entra, host: str) -> None:
    status, text = await run(document(entra.url), host)
    assert status == 0, text
    assert "plain.example.test" not in text
    assert f"{HOST}: client ID and secret accepted (secret 1 of 1)" in text


async def test_one_sso_less_host(entra: Entra) -> None:
    status, text = await run(document(entra.url), "plain.example.test")
    assert status == 0
    assert lines_of(text) == ["plain.example.test: no sso block, nothing to check"]
    assert entra.emulator.requests == []


async def test_unknown_host(entra: Entra) -> None:
    status, text = await run(document(entra.url), "nope.example.test")
    assert status == 2
    assert "nope.example.test: not a tenant host in this config" in text
    assert entra.emulator.requests == []


async def test_one_tenant_fails_the_others_still_checked(entra: Entra) -> None:
    doc = document(entra.url)
    broken: dict[str, Any] = {
        "host": "desk.fabrikam.test",
        "upstream": "http://127.0.0.1:9",
        "plan": "pro",
        "sso": {"tenant": "fabrikam.test", "client_id": CLIENT_ID, "client_secret": "x" * 20,
                "authority": entra.url},
    }  # fmt: skip
    doc["tenants"].insert(0, broken)
    status, text = await run(doc, secrets=("x" * 20,))
    assert status == 1
    assert "desk.fabrikam.test: FAILED: tenant fabrikam.test not found" in text
    assert f"{HOST}: client ID and secret accepted (secret 1 of 1)" in text
    assert lines_of(text)[-1] == "1 of 2 SSO tenants failed"


@pytest.mark.parametrize(
    ("authority", "scope"),
    [
        ("https://login.microsoftonline.com", "https://graph.microsoft.com/.default"),
        ("https://login.microsoftonline.us", "https://graph.microsoft.us/.default"),
        (
            "https://login.partner.microsoftonline.cn",
            "https://microsoftgraph.chinacloudapi.cn/.default",
        ),
        ("http://127.0.0.1:8000", "https://graph.microsoft.com/.default"),
    ],
)
def test_scope_follows_the_cloud(authority: str, scope: str) -> None:
    assert graph_default_scope(authority) == scope
