"""The example configurations pass `check-config`, run as an operator runs it: those of
config/ (single files and a config directory) and the files deploy/k8s turns into the
sidecar's ConfigMap.

Each example is checked whole: its environment variables are set, and the secret files
it names are written (with a real certificate where it names one) into a temporary
directory that stands in for the pod's mounted Secrets.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.config.loading import parse_config
from sidecar.dev.certificates import self_signed
from sidecar.dev.demo import DEMO_CLIENT_ID, DEMO_CONFIG, DEMO_HOST, demo_environment
from tests.deploy import k8s
from tests.helpers import REPO, SESSION_KEY, repository_files

EXAMPLES = REPO / "config"

#: Where the examples expect the pod's mounted Secrets and its projected token.
SECRETS = "/var/run/secrets/ticketlog-sso"
AZURE_TOKENS = "/var/run/secrets/azure/tokens"

Example = Callable[[Path], tuple[Path, dict[str, str]]]


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


def mounted_secrets(tmp_path: Path) -> dict[str, str]:
    """Every secret file the examples name, written under TMP_PATH: {pod path: here}."""
    secrets = tmp_path / "ticketlog-sso"
    tokens = tmp_path / "azure-tokens"
    secrets.mkdir()
    tokens.mkdir()
    (secrets / "redis-url").write_text("redis://redis:6379/0\n")
    (secrets / "session-keys").write_text(f"{SESSION_KEY}\n{SESSION_KEY[::-1]}\n")
    (secrets / "smtp-password").write_text("smtp-password\n")
    (secrets / "fabrikam-client-secret").write_text("fabrikam~newer\nfabrikam~older\n")
    (secrets / "contoso-client-secret").write_text("contoso~client-secret-value\n")
    write_certificate(secrets, "contoso")
    (tokens / "azure-identity-token").write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl\n")
    return {SECRETS: str(secrets), AZURE_TOKENS: str(tokens)}


def with_mounts_moved(source: Path, target: Path, mounts: dict[str, str]) -> Path:
    """The file as shipped, its Secret mounts moved to where this test wrote them."""
    text = source.read_text(encoding="utf-8")
    assert any(mount in text for mount in mounts), f"{source} names no mounted secret"
    for mount, here in mounts.items():
        text = text.replace(mount, here)
    target.write_text(text, encoding="utf-8")
    return target


def multi_tenant(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    mounts = mounted_secrets(tmp_path)
    config = with_mounts_moved(EXAMPLES / "multi-tenant.yaml", tmp_path / "multi.yaml", mounts)
    return config, {}


def directory(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The directory as shipped, each of its files with the mounts moved."""
    mounts = mounted_secrets(tmp_path)
    config_dir = tmp_path / "directory"
    config_dir.mkdir()
    for file in (EXAMPLES / "directory").iterdir():
        if SECRETS in file.read_text(encoding="utf-8"):
            with_mounts_moved(file, config_dir / file.name, mounts)
        else:
            shutil.copyfile(file, config_dir / file.name)
    return config_dir, {}


def kubernetes(relative: str) -> Example:
    """A config file of deploy/k8s, as the pod reads it from its ConfigMap."""

    def example(tmp_path: Path) -> tuple[Path, dict[str, str]]:
        mounts = mounted_secrets(tmp_path)
        return with_mounts_moved(REPO / relative, tmp_path / "config.yaml", mounts), {}

    return example


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


BASE = "deploy/k8s/base/config.yaml"
WORKLOAD_IDENTITY = "deploy/k8s/overlays/workload-identity/config.yaml"

#: Every example, by its path in the repository, and how to check it.
CHECKED: dict[str, Example] = {
    "config/single-tenant.yaml": single_tenant,
    "config/multi-tenant.yaml": multi_tenant,
    "config/directory": directory,
    "config/demo.yaml": demo,
    BASE: kubernetes(BASE),
    WORKLOAD_IDENTITY: kubernetes(WORKLOAD_IDENTITY),
}

#: What check-config says per example: the tenants, and per SSO host the credential kind.
EXPECTED: dict[str, tuple[str, dict[str, str]]] = {
    "config/single-tenant.yaml": ("1 tenant", {"desk.contoso.com": "client secret"}),
    "config/multi-tenant.yaml": (
        "4 tenants",
        {
            "desk.contoso.com": "certificate",
            "help.fabrikam.com": "client secret",
            "support.northwind.com": "federated",
        },
    ),
    "config/directory": (
        "5 tenants",
        {
            "desk.contoso.com": "certificate",
            "help.fabrikam.com": "client secret",
            "it.fabrikam.com": "client secret",
        },
    ),
    "config/demo.yaml": ("1 tenant", {DEMO_HOST: "certificate"}),
    BASE: ("1 tenant", {"desk.contoso.com": "client secret"}),
    WORKLOAD_IDENTITY: ("1 tenant", {"desk.contoso.com": "federated"}),
}

#: The warnings each example is expected to draw (the demo is a development setup).
WARNINGS: dict[str, tuple[str, ...]] = {
    "config/single-tenant.yaml": (),
    "config/multi-tenant.yaml": (),
    "config/directory": (),
    "config/demo.yaml": (
        "session.store: memory",
        "sso.authority: http://",
        "email.backend: console",
    ),
    BASE: (),
    WORKLOAD_IDENTITY: (),
}


def test_every_example_is_checked() -> None:
    """Every entry of config/, and every config deploy/k8s turns into a ConfigMap."""
    shipped = [f"config/{p.name}" for p in EXAMPLES.iterdir()]
    shipped += [str(p.relative_to(REPO)) for p in k8s.config_files()]
    assert sorted(shipped) == sorted(CHECKED)


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


#: A path under config/ or deploy/k8s/ written out in a document, comment or help text.
EXAMPLE_PATH = re.compile(r"(?<![\w./$-])((?:deploy/k8s|config)/[\w.-]+(?:/[\w.-]+)*)")


def test_every_example_path_the_repository_names_exists() -> None:
    """What the docs, manifests and `--help` tell an operator to run or read is there."""
    readable = [
        path
        for path in repository_files()
        if path.relative_to(REPO).parts[0] != "tests"  # tests name made-up paths on purpose
        and (path.suffix in (".md", ".yaml", ".yml", ".py") or path.name == "Dockerfile")
    ]
    assert any(p.name == "reference.md" for p in readable)
    missing = [
        f"{path.relative_to(REPO)}:{number}: {match.group(1)}"
        for path in readable
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for match in EXAMPLE_PATH.finditer(line)
        if not (REPO / match.group(1).rstrip(".")).exists()
    ]
    assert not missing, "\n".join(missing)


def test_the_directory_joins_its_tenant_files_in_name_order(tmp_path: Path) -> None:
    config, env = directory(tmp_path)
    result = check_config(config, env)
    assert result.returncode == 0, result.stderr
    # After the summary line, one line per tenant begins unindented with its host.
    tenant_lines = [line for line in result.stdout.splitlines()[1:] if not line.startswith(" ")]
    assert [line.split(": ", 1)[0] for line in tenant_lines] == [
        "desk.contoso.com",  # contoso.yaml
        "help.fabrikam.com",  # fabrikam.yaml
        "it.fabrikam.com",
        "adatum.ticketlog.app",  # shared-domain.yaml (main.yaml holds no tenant)
        "litware.ticketlog.app",
    ]


def test_a_problem_in_the_directory_names_its_file(tmp_path: Path) -> None:
    config, env = directory(tmp_path)
    fabrikam = config / "fabrikam.yaml"
    fabrikam.write_text(
        fabrikam.read_text().replace("host: it.fabrikam.com", "host: desk.contoso.com")
    )
    result = check_config(config, env)
    assert result.returncode == 2
    assert (
        f"{config}/fabrikam.yaml: tenants[1].host: duplicate host 'desk.contoso.com' "
        f"(also {config}/contoso.yaml: tenants[0])"
    ) in result.stderr


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
