"""`check-config` and `check-entra` for certificate and federated credentials: what an
operator reads, against the real emulator and a real cluster issuer on loopback."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.cli import main
from sidecar.commands.check_entra import check_entra
from sidecar.dev.certificates import DevCertificate, self_signed
from sidecar.oidc.credentials import load_certificate
from tests.cluster_issuer import AUDIENCE, SUBJECT
from tests.credentials.support import Setup, entra_with_credentials
from tests.helpers import config_from
from tests.world import CLIENT_ID, HOST, world_config


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with entra_with_credentials(tmp_path) as made:
        yield made


def write_pair(tmp_path: Path, made: DevCertificate, name: str) -> dict[str, str]:
    (tmp_path / f"{name}.crt").write_text(made.certificate_pem)
    (tmp_path / f"{name}.key").write_text(made.private_key_pem)
    return {"certificate_file": str(tmp_path / f"{name}.crt"),
            "private_key_file": str(tmp_path / f"{name}.key")}  # fmt: skip


def document(setup: Setup, **credential: Any) -> dict[str, Any]:
    doc = world_config(desk_url="http://127.0.0.1:9", emulator_url=setup.url, smtp_port=2525)
    sso = doc["tenants"][0]["sso"]
    del sso["client_secret"]
    sso.update(credential)
    doc["tenants"] = doc["tenants"][:1]
    return doc


async def run(doc: dict[str, Any], *never: str) -> tuple[int, str]:
    out = io.StringIO()
    status = await check_entra(config_from(doc), host=None, out=out)
    text = out.getvalue()
    for secret in never:
        # SECURITY: neither a private key nor a token ever reaches the output.
        assert secret not in text
    return status, text


def key_body(made: DevCertificate) -> str:
    return made.private_key_pem.splitlines()[1]


async def test_check_entra_certificate_accepted(setup: Setup, tmp_path: Path) -> None:
    doc = document(setup, client_certificate=write_pair(tmp_path, setup.registered, "a"))
    status, text = await run(doc, key_body(setup.registered))
    assert status == 0, text
    assert (
        f"{HOST}: client ID and certificate accepted (certificate 1 of 1 (SHA-1 thumbprint " in text
    )


async def test_check_entra_certificate_not_uploaded(setup: Setup, tmp_path: Path) -> None:
    doc = document(setup, client_certificate=write_pair(tmp_path, setup.stranger, "s"))
    status, text = await run(doc, key_body(setup.stranger))
    assert status == 1
    sha1 = load_certificate(
        setup.stranger.certificate_pem, setup.stranger.private_key_pem, now=time.time()
    ).sha1_thumbprint
    assert (
        f"{HOST}: FAILED: Entra does not know the certificate that signed the client assertion (AADSTS700027"
        in text
    )
    assert (
        "upload the certificate (the .crt/.pem, public part only) under Certificates & secrets → Certificates"
        in text
    )
    assert sha1 in text


async def test_check_entra_certificate_rotation(setup: Setup, tmp_path: Path) -> None:
    doc = document(setup, client_certificate=[write_pair(tmp_path, setup.stranger, "new"),
                                              write_pair(tmp_path, setup.registered, "old")])  # fmt: skip
    status, text = await run(doc, key_body(setup.stranger), key_body(setup.registered))
    assert status == 0, text
    assert "client ID and certificate accepted (certificate 2 of 2" in text
    assert "warning: certificate 1 of 2 (SHA-1 thumbprint " in text
    assert "(newer) refused: Entra does not know the certificate" in text
    assert "sign-in works only with certificate 2 of 2" in text


async def test_check_entra_no_certificate_accepted(setup: Setup, tmp_path: Path) -> None:
    # Both entries unknown to Entra (the uploaded one was removed there).
    setup.app.certificates.clear()
    doc = document(
        setup,
        client_certificate=[
            write_pair(tmp_path, setup.stranger, "new"),
            write_pair(tmp_path, setup.registered, "old"),
        ],
    )
    status, text = await run(doc, key_body(setup.stranger), key_body(setup.registered))
    assert status == 1
    assert f"{HOST}: FAILED: none of the 2 client certificates is accepted" in text
    for number in (1, 2):
        assert f"{HOST}:   certificate {number} of 2 (SHA-1 thumbprint " in text
        assert "): Entra does not know the certificate that signed the client assertion" in text
    assert text.count("AADSTS700027") == 2


async def test_check_entra_assertion_outside_validity(setup: Setup, tmp_path: Path) -> None:
    setup.emulator.clock = lambda: time.time() + 3600  # this host's clock is an hour behind
    doc = document(setup, client_certificate=write_pair(tmp_path, setup.registered, "a"))
    status, text = await run(doc)
    assert status == 1
    assert "FAILED: the client assertion is outside its validity time (AADSTS700024" in text
    assert "check this host's clock (NTP)" in text


async def test_check_entra_federated_accepted(setup: Setup) -> None:
    doc = document(setup, federated_token_file=str(setup.token_file))
    status, text = await run(doc, setup.token_file.read_text())
    assert status == 0, text
    assert (
        f"{HOST}: client ID and federated token accepted (federated token file {setup.token_file})"
        in text
    )


@pytest.mark.parametrize(
    ("token_kwargs", "code", "what"),
    [
        ({"issuer": "https://oidc.other-cluster.example/"}, 700211, "has this token's issuer"),
        ({"subject": "system:serviceaccount:default:default"}, 700213, "has this token's subject"),
        ({"audience": "api://SomethingElse"}, 700212, "has this token's audience"),
        ({}, 70021, "matches this token"),
    ],
)
async def test_check_entra_federated_mismatch_shows_the_tokens_claims(
    setup: Setup, token_kwargs: dict[str, str], code: int, what: str
) -> None:
    if code == 70021:
        setup.app.federated_credentials.clear()
    token = setup.cluster.token(**token_kwargs)
    setup.write_token(token)
    status, text = await run(document(setup, federated_token_file=str(setup.token_file)), token)
    assert status == 1
    assert f"{HOST}: FAILED: no federated credential on the app {what} (AADSTS{code}" in text
    assert f"Certificates & secrets → Federated credentials of app {CLIENT_ID}" in text
    issuer = token_kwargs.get("issuer", setup.cluster.url)
    subject = token_kwargs.get("subject", SUBJECT)
    audience = token_kwargs.get("audience", AUDIENCE)
    assert (
        f"the token in {setup.token_file} has issuer (iss) {issuer}, subject (sub) {subject}, "
        f"audience (aud) {audience}"
    ) in text


async def test_check_entra_federated_file_missing(setup: Setup, tmp_path: Path) -> None:
    doc = document(setup, federated_token_file=str(tmp_path / "nope"))
    status, text = await run(doc)
    assert status == 1
    assert f"FAILED: cannot read the federated token file {tmp_path / 'nope'}: No such file" in text
    assert "projected service-account token volume" in text


def check_config(
    tmp_path: Path, doc: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    status = main(["check-config", "-c", str(path)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def base(tmp_path: Path, **credential: Any) -> dict[str, Any]:
    doc = world_config(
        desk_url="http://127.0.0.1:9",
        emulator_url="https://login.microsoftonline.com",
        smtp_port=25,
    )
    sso = doc["tenants"][0]["sso"]
    del sso["client_secret"]
    sso.update(credential)
    return doc


def test_check_config_prints_thumbprints_and_expiry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = self_signed(days=400)
    loaded = load_certificate(made.certificate_pem, made.private_key_pem, now=time.time())
    status, out, _ = check_config(
        tmp_path, base(tmp_path, client_certificate=write_pair(tmp_path, made, "c")), capsys
    )
    assert status == 0, out
    assert (
        f"  certificate 1 of 1: SHA-256 thumbprint {loaded.sha256_thumbprint}, SHA-1 thumbprint "
        f"{loaded.sha1_thumbprint}, expires {loaded.not_after:%Y-%m-%d %H:%M} UTC (in 399 days)"
    ) in out
    assert "warning" not in out
    assert key_body(made) not in out


def test_check_config_warns_30_days_ahead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    soon, later = self_signed(days=20), self_signed(days=700)
    doc = base(
        tmp_path,
        client_certificate=[write_pair(tmp_path, later, "new"), write_pair(tmp_path, soon, "old")],
    )
    status, _, err = check_config(tmp_path, doc, capsys)
    assert status == 0
    # Warnings go to standard error, like every other check-config warning.
    warnings = [line for line in err.splitlines() if line.startswith(f"warning: {HOST}:")]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"warning: {HOST}: certificate 2 of 2 (SHA-1 thumbprint ")
    assert "expires in 19 days" in warnings[0]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            "mismatch",
            "tenants[0].sso.client_certificate[0]: private key does not match the certificate",
        ),
        ("expired", "tenants[0].sso.client_certificate[0]: certificate expired on "),
        (
            "both",
            "tenants[0].sso: needs exactly one of client_secret, client_certificate or federated_token_file (found client_secret and client_certificate)",
        ),
        (
            "none",
            "tenants[0].sso: needs exactly one of client_secret, client_certificate or federated_token_file",
        ),
        (
            "no key",
            "tenants[0].sso.client_certificate[0]: needs certificate_file and private_key_file (PEM); missing private_key_file",
        ),
    ],
)
def test_check_config_refuses_unusable_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str, problem: str
) -> None:
    import datetime as dt

    good, other = self_signed(), self_signed()
    pair = write_pair(tmp_path, good, "good")
    if edit == "mismatch":
        pair["private_key_file"] = write_pair(tmp_path, other, "other")["private_key_file"]
    elif edit == "expired":
        past = self_signed(days=1, starts=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
        pair = write_pair(tmp_path, past, "past")
    elif edit == "no key":
        del pair["private_key_file"]
    doc = base(tmp_path, client_certificate=pair) if edit != "none" else base(tmp_path)
    if edit == "both":
        doc["tenants"][0]["sso"]["client_secret"] = "a-secret-value"
    status, _out, err = check_config(tmp_path, doc, capsys)
    assert status == 2
    assert any(line.startswith(problem) for line in err.splitlines()), err
    assert key_body(good) not in err


def test_federated_token_file_empty_means_the_webhooks_variable(tmp_path: Path) -> None:
    from sidecar.config.loading import ConfigError, parse_config

    doc = base(tmp_path, federated_token_file="")
    config = parse_config(
        yaml.safe_dump(doc),
        env={"AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token"},
    )
    sso = config.tenants[0].sso
    assert sso is not None
    assert sso.federated_token_file == "/var/run/secrets/azure/tokens/azure-identity-token"
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(doc), env={})
    assert caught.value.problems == [
        "tenants[0].sso.federated_token_file: empty, which means $AZURE_FEDERATED_TOKEN_FILE, but "
        'that environment variable is not set (is the pod labelled azure.workload.identity/use: "true"?)'
    ]


def test_check_config_shows_the_federated_tokens_claims(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import base64
    import json

    claims = {"iss": "https://oidc.cluster.example/x", "sub": SUBJECT, "aud": [AUDIENCE], "exp": 1}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    (tmp_path / "token").write_text(f"eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln")
    status, out, _ = check_config(
        tmp_path, base(tmp_path, federated_token_file=str(tmp_path / "token")), capsys
    )
    assert status == 0
    assert (
        f"  Credential: federated token file {tmp_path / 'token'} (read at each token request)"
        in out
    )
    assert (
        f"  the app's federated credential must match: issuer https://oidc.cluster.example/x, "
        f"subject {SUBJECT}, audience {AUDIENCE}"
    ) in out
    assert "c2ln" not in out


async def test_serve_logs_a_certificate_that_expires_soon(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import aiohttp

    from sidecar.runtime import build_tenants

    soon, later = self_signed(days=12), self_signed(days=300)
    doc = base(
        tmp_path,
        client_certificate=[write_pair(tmp_path, later, "new"), write_pair(tmp_path, soon, "old")],
    )
    async with aiohttp.ClientSession() as http:
        with caplog.at_level(logging.WARNING, logger="ticketlog_sso"):
            build_tenants(config_from(doc), http)
    warned = [r for r in caplog.records if r.getMessage() == "client_certificate_expires_soon"]
    assert len(warned) == 1
    fields = warned[0].fields  # type: ignore[attr-defined]
    assert fields["tenant"] == HOST
    assert fields["certificate"].startswith("certificate 2 of 2 (SHA-1 thumbprint ")
    assert fields["days_left"] == 11
