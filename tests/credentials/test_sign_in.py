"""A whole sign-in through the sidecar with each secretless credential kind: the emulator
verifies the assertion at code redemption as Entra does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sidecar.dev.certificates import self_signed
from sidecar.dev.entra import EntraEmulator, sample_tenant
from sidecar.dev.entra_assertions import FederatedCredential
from sidecar.oidc.credentials import load_certificate
from tests.auth.test_flow import desk_headers
from tests.cluster_issuer import SUBJECT, cluster_issuer
from tests.world import HOST, PUBLIC_BASE, open_world


def emulator() -> EntraEmulator:
    return EntraEmulator([sample_tenant(PUBLIC_BASE)], frontchannel_server_side=False)


async def scrape(world: Any) -> str:
    async with world.http.get(world.sidecar.admin_url + "/metrics") as response:
        return str(await response.text())


async def test_sign_in_with_a_rotated_certificate(tmp_path: Path) -> None:
    uploaded, pending = self_signed("uploaded", days=200), self_signed("pending", days=400)
    entra = emulator()
    entra.tenants[0].apps[0].certificates.append(uploaded.certificate)
    files = {}
    for name, made in (("pending", pending), ("uploaded", uploaded)):
        (tmp_path / f"{name}.crt").write_text(made.certificate_pem)
        (tmp_path / f"{name}.key").write_text(made.private_key_pem)
        files[name] = {"certificate_file": str(tmp_path / f"{name}.crt"),
                       "private_key_file": str(tmp_path / f"{name}.key")}  # fmt: skip

    def use_certificates(document: dict[str, Any]) -> None:
        sso = document["tenants"][0]["sso"]
        del sso["client_secret"]
        # Newest first: the pending certificate is not uploaded yet; the older one works.
        sso["client_certificate"] = [files["pending"], files["uploaded"]]

    async with open_world(edit=use_certificates, emulator=entra) as world:
        landing = await world.sign_up(world.browser("alice"), rd="/echo")
        assert desk_headers(landing.text)["X-TicketLog-Email"] == "alice@contoso.test"
        text = await scrape(world)
        # The metric carries the newest certificate's notAfter, whichever one signed.
        newest = load_certificate(pending.certificate_pem, pending.private_key_pem, now=time.time())
        sample = f'ticketlog_sso_client_certificate_expiry_timestamp_seconds{{host="{HOST}"}}'
        line = next(line for line in text.splitlines() if line.startswith(sample))
        assert float(line.rsplit(" ", 1)[1]) == newest.not_after.timestamp()
        # Entry 1 (the uploaded one) worked; the metric names it by its thumbprint's start.
        used = load_certificate(uploaded.certificate_pem, uploaded.private_key_pem, now=time.time())
        named = used.sha256_thumbprint[:12].lower()
        assert (
            f'ticketlog_sso_client_secret_index{{fingerprint="{named}",tenant="{HOST}"}} 1.0'
        ) in text
        # The code was redeemed with a client assertion, never a secret.
        assert ("POST", f"/{entra.tenants[0].tenant_id}/oauth2/v2.0/token") in entra.requests


async def test_sign_in_with_a_federated_token(tmp_path: Path) -> None:
    entra = emulator()
    token_file = tmp_path / "azure-identity-token"
    async with cluster_issuer() as cluster:
        entra.tenants[0].apps[0].federated_credentials.append(
            FederatedCredential(issuer=cluster.url, subject=SUBJECT)
        )
        token_file.write_text(cluster.token())

        def use_federation(document: dict[str, Any]) -> None:
            sso = document["tenants"][0]["sso"]
            del sso["client_secret"]
            sso["federated_token_file"] = str(token_file)

        async with open_world(edit=use_federation, emulator=entra) as world:
            landing = await world.sign_up(world.browser("alice"), rd="/echo")
            assert desk_headers(landing.text)["X-TicketLog-User"].startswith("6d5a4e1c-")
            # A token for another subject written in its place is used at the next sign-in
            # (and refused by Entra): the file is read again, never cached.
            token_file.write_text(cluster.token(subject="system:serviceaccount:x:y"))
            refused = await world.browser("bob").open("/")
            assert refused.status == 502
            assert "misconfigured" in refused.text
            token_file.write_text(cluster.token())
            again = await world.browser("bob").open("/")
            assert again.status == 200
            assert "/.sso/verify" in again.text or "signup" in again.text.lower()


async def test_a_missing_token_file_is_a_misconfiguration_page_not_a_crash(
    tmp_path: Path,
) -> None:
    entra = emulator()

    def use_federation(document: dict[str, Any]) -> None:
        sso = document["tenants"][0]["sso"]
        del sso["client_secret"]
        sso["federated_token_file"] = str(tmp_path / "not-projected-yet")

    async with open_world(edit=use_federation, emulator=entra) as world:
        page = await world.browser("alice").open("/")
        assert page.status == 502
        assert "misconfigured" in page.text
        assert "Traceback" not in page.text
        # Nothing was sent to Entra's token endpoint.
        assert not any(path.endswith("/token") for _, path in entra.requests)
