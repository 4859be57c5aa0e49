"""The example configurations of config/ pass `check-config`, run as an operator runs it.

Each example is checked whole: its environment variables are set, and the secret files
it names are written (with a real certificate where it names one) into a temporary
directory that stands in for the pod's mounted Secrets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.config.loading import parse_config
from sidecar.dev.certificates import self_signed
from sidecar.dev.demo import DEMO_CLIENT_ID, DEMO_CONFIG, DEMO_HOST, demo_environment
from tests.helpers import SESSION_KEY

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "config"

#: Where the multi-tenant example expects its mounted Secrets.
SECRETS = "/var/run/secrets/ticketlog-sso"
AZURE_TOKENS = "/var/run/secrets/azure/tokens"


def check_config(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "check-config", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, **env},
        check=False,
    )


def write_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    certificate = self_signed(f"TicketLog SSO {name}", days=365)
    certificate_file = directory / f"{name}.crt"
    private_key_file = directory / f"{name}.key"
    certificate_file.write_text(certificate.certificate_pem)
    private_key_file.write_text(certificate.private_key_pem)
    return certificate_file, private_key_file


def single_tenant(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    env = {"SESSION_KEY": SESSION_KEY, "CONTOSO_CLIENT_SECRET": "contoso~client-secret-value"}
    return EXAMPLES / "single-tenant.yaml", env


def multi_tenant(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    secrets = tmp_path / "ticketlog-sso"
    tokens = tmp_path / "azure-tokens"
    secrets.mkdir()
    tokens.mkdir()
    (secrets / "redis-url").write_text("redis://redis:6379/0\n")
    (secrets / "session-keys").write_text(f"{SESSION_KEY}\n{SESSION_KEY[::-1]}\n")
    (secrets / "smtp-password").write_text("smtp-password\n")
    (secrets / "fabrikam-client-secret").write_text("fabrikam~newer\nfabrikam~older\n")
    write_certificate(secrets, "contoso")
    (tokens / "azure-identity-token").write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl\n")
    # The file as shipped, its Secret mounts moved to where this test wrote them.
    text = (EXAMPLES / "multi-tenant.yaml").read_text(encoding="utf-8")
    assert SECRETS in text
    assert AZURE_TOKENS in text
    text = text.replace(SECRETS, str(secrets)).replace(AZURE_TOKENS, str(tokens))
    config = tmp_path / "multi-tenant.yaml"
    config.write_text(text, encoding="utf-8")
    return config, {}


def demo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    certificate_file, private_key_file = write_certificate(tmp_path, "demo")
    env = demo_environment(
        desk_url="http://127.0.0.1:3000",
        emulator_url="http://127.0.0.1:8400",
        public_port=8080,
        admin_port=9090,
        certificate_file=str(certificate_file),
        private_key_file=str(private_key_file),
    )
    return EXAMPLES / "demo.yaml", env


Example = Callable[[Path], tuple[Path, dict[str, str]]]

#: Every file of config/, and how to check it.
CHECKED: dict[str, Example] = {
    "single-tenant.yaml": single_tenant,
    "multi-tenant.yaml": multi_tenant,
    "demo.yaml": demo,
}

#: What check-config says per example: the tenants, and per SSO host the credential kind.
EXPECTED: dict[str, tuple[str, dict[str, str]]] = {
    "single-tenant.yaml": ("1 tenant", {"desk.contoso.com": "client secret"}),
    "multi-tenant.yaml": (
        "4 tenants",
        {
            "desk.contoso.com": "certificate",
            "help.fabrikam.com": "client secret",
            "support.northwind.com": "federated",
        },
    ),
    "demo.yaml": ("1 tenant", {DEMO_HOST: "certificate"}),
}

#: The warnings each example is expected to draw (the demo is a development setup).
WARNINGS: dict[str, tuple[str, ...]] = {
    "single-tenant.yaml": (),
    "multi-tenant.yaml": (),
    "demo.yaml": ("session.store: memory", "sso.authority: http://", "email.backend: console"),
}


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir()) == sorted(CHECKED)


@pytest.mark.parametrize("name", sorted(CHECKED))
def test_the_example_passes_check_config(name: str, tmp_path: Path) -> None:
    config, env = CHECKED[name](tmp_path)
    result = check_config(config, env)
    assert result.returncode == 0, result.stderr
    tenants, sso = EXPECTED[name]
    assert f"{config}: valid ({tenants})\n" in result.stdout
    for host, credential in sso.items():
        assert f"{host}: Entra ID sign-in" in result.stdout
        assert f"Redirect URI (Web): https://{host}/.sso/callback" in result.stdout
        block = result.stdout.split(f"{host}: Entra ID sign-in", 1)[1]
        credential_line = next(line for line in block.splitlines() if "Credential:" in line)
        assert credential in credential_line
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == len(WARNINGS[name]), result.stderr
    for expected, line in zip(WARNINGS[name], warnings, strict=True):
        assert expected in line


def test_a_broken_example_fails_check_config(tmp_path: Path) -> None:
    # The check above would notice an example going stale: an unknown field is an error.
    config, env = single_tenant(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text(config.read_text() + "unknown_section: {}\n")
    result = check_config(broken, env)
    assert result.returncode == 2
    assert "unknown_section" in result.stderr


def test_the_demo_runs_the_file_in_config() -> None:
    assert (EXAMPLES / "demo.yaml").read_text(encoding="utf-8") == DEMO_CONFIG


def test_the_demo_config_names_the_demo_host_and_app(tmp_path: Path) -> None:
    _, env = demo(tmp_path)
    config = parse_config(DEMO_CONFIG, env)
    (tenant,) = config.tenants
    assert tenant.host == DEMO_HOST
    assert tenant.sso is not None
    assert tenant.sso.client_id == DEMO_CLIENT_ID
    assert str(config.server.listen).endswith(":8080")
