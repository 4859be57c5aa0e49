"""`-c DIR`: the main file plus tenant files, joined in name order; problems name their file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.cli import main
from sidecar.config import sources
from sidecar.config.loading import ConfigError

KEY = "x" * 40
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
MAIN: dict[str, Any] = {
    "server": {"listen": "127.0.0.1:8080", "admin_listen": "127.0.0.1:9090"},
    "session": {"store": "memory", "secret_keys": [KEY]},
    "email": {"backend": "console"},
}


def tenant(host: str, **extra: Any) -> dict[str, Any]:
    return {"host": host, "upstream": "http://127.0.0.1:3000", **extra}


def sso_tenant(host: str, client_id: str = CLIENT_ID) -> dict[str, Any]:
    return tenant(
        host,
        plan="pro",
        sso={"tenant": "contoso.com", "client_id": client_id, "client_secret": "s3cr3t-value"},
    )


def write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        sources.load(path, env={})
    return info.value.problems


def test_tenant_files_are_joined_in_name_order(tmp_path: Path) -> None:
    config_dir = tmp_path / "tenants.d"
    write(config_dir / "00-main.yaml", MAIN)
    write(config_dir / "b-fabrikam.yml", {"tenants": [tenant("desk.fabrikam.com")]})
    write(config_dir / "a-contoso.yaml", {"tenants": [sso_tenant("desk.contoso.com")]})
    write(config_dir / "c-both.yaml", {"tenants": [tenant("one.test"), tenant("two.test")]})
    (config_dir / "notes.txt").write_text("not a config file")
    (config_dir / "README.md").write_text("# nor this")
    loaded = sources.load(config_dir, env={})
    assert [t.host for t in loaded.config.tenants] == [
        "desk.contoso.com",
        "desk.fabrikam.com",
        "one.test",
        "two.test",
    ]
    assert loaded.config.server.listen == "127.0.0.1:8080"


def test_hidden_entries_of_a_projected_volume_are_skipped(tmp_path: Path) -> None:
    # What Kubernetes mounts for a ConfigMap: the files are links into `..data`, which
    # links to a timestamped directory; the hidden entries themselves are never read.
    config_dir = tmp_path / "config"
    version = config_dir / "..2026_12_03_08_00_00.000000001"
    write(version / "main.yaml", MAIN)
    write(version / "contoso.yaml", {"tenants": [tenant("desk.contoso.com")]})
    os.symlink(version.name, config_dir / "..data")
    for name in ("main.yaml", "contoso.yaml"):
        os.symlink(f"..data/{name}", config_dir / name)
    write(config_dir / ".editor-backup.yaml", {"tenants": [tenant("hidden.test")]})
    loaded = sources.load(config_dir, env={})
    assert [t.host for t in loaded.config.tenants] == ["desk.contoso.com"]


def test_a_problem_names_its_file_and_field_path(tmp_path: Path) -> None:
    config_dir = tmp_path / "tenants.d"
    write(config_dir / "main.yaml", {**MAIN, "tenants": [tenant("desk.main.test")]})
    write(
        config_dir / "contoso.yaml",
        {"tenants": [sso_tenant("desk.contoso.com", client_id="not-a-guid")]},
    )
    write(config_dir / "fabrikam.yaml", {"tenants": [tenant("ok.test"), tenant("x", upstream=1)]})
    assert problems(config_dir) == [
        f"{config_dir}/contoso.yaml: tenants[0].sso.client_id: not a GUID "
        "(the Application (client) ID from Entra)",
        f"{config_dir}/fabrikam.yaml: tenants[1].upstream: must be an http(s) URL",
    ]


def test_a_host_in_two_files_names_both(tmp_path: Path) -> None:
    config_dir = tmp_path / "tenants.d"
    write(config_dir / "main.yaml", MAIN)
    write(config_dir / "a.yaml", {"tenants": [tenant("one.test"), tenant("Desk.Contoso.com")]})
    write(config_dir / "b.yaml", {"tenants": [tenant("desk.contoso.com.")]})
    assert problems(config_dir) == [
        f"{config_dir}/b.yaml: tenants[0].host: duplicate host 'desk.contoso.com' "
        f"(also {config_dir}/a.yaml: tenants[1])"
    ]


def test_only_one_file_holds_the_main_sections(tmp_path: Path) -> None:
    config_dir = tmp_path / "conf"
    write(config_dir / "a.yaml", {"server": MAIN["server"], "tenants": [tenant("one.test")]})
    write(config_dir / "b.yaml", {"session": MAIN["session"], "email": MAIN["email"]})
    write(config_dir / "c.yaml", {"session": MAIN["session"]})
    found = problems(config_dir)
    assert (
        f"{config_dir}/c.yaml: session: also in {config_dir}/b.yaml; "
        "server, session, signup and email belong in one file"
    ) in found
    assert (
        f"{config_dir}: server, session, signup and email belong in one file, "
        f"found in {config_dir}/a.yaml and {config_dir}/b.yaml"
    ) in found


def test_no_main_file_and_unknown_sections_are_named(tmp_path: Path) -> None:
    config_dir = tmp_path / "conf"
    write(config_dir / "tenants.yaml", {"tenants": [tenant("one.test")], "tenant": []})
    found = problems(config_dir)
    assert f"{config_dir}: session: required field is missing" in found
    assert f"{config_dir}/tenants.yaml: tenant: unknown field (did you mean tenants?)" in found


def test_broken_yaml_names_its_file_and_never_quotes_it(tmp_path: Path) -> None:
    config_dir = tmp_path / "conf"
    write(config_dir / "main.yaml", {**MAIN, "tenants": [tenant("one.test")]})
    (config_dir / "bad.yaml").write_text("tenants:\n  - host: a.test\n    client_secret: [oops\n")
    (config_dir / "twice.yaml").write_text("tenants: []\ntenants: []\n")
    (config_dir / "list.yaml").write_text("- host: a.test\n")
    found = problems(config_dir)
    # What is wrong and where, in words (the reader of sidecar/config/yaml_text.py).
    assert found[0].startswith(f"{config_dir}/bad.yaml: (file): not valid YAML: line ")
    assert found[1] == f"{config_dir}/list.yaml: (file): must be a YAML mapping (tenants: [...])"
    assert found[2].startswith(f"{config_dir}/twice.yaml: (file): line 2: duplicate key 'tenants'")
    assert len(found) == 3
    assert "oops" not in "\n".join(found)


def test_an_empty_directory_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path) == [f"{tmp_path}: no *.yaml or *.yml file in the directory"]


def test_every_command_takes_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "conf"
    write(config_dir / "main.yaml", MAIN)
    write(config_dir / "contoso.yaml", {"tenants": [sso_tenant("desk.contoso.com")]})
    assert main(["check-config", "-c", str(config_dir)]) == 0
    out = capsys.readouterr().out
    assert f"{config_dir}: valid (1 tenant)" in out
    assert "https://desk.contoso.com/.sso/callback" in out
    assert "s3cr3t-value" not in out
    monkeypatch.setenv("TICKETLOG_SSO_CONFIG", str(config_dir))
    # accounts needs a shared store: the directory was read, and the memory store refused.
    assert main(["accounts", "list", "--host", "desk.contoso.com"]) == 2
    assert "store: memory" in capsys.readouterr().out
    write(config_dir / "broken.yaml", {"tenants": [tenant("bad host")]})
    for argv in (["check-config"], ["serve"], ["check-entra"]):
        assert main(argv) == 2
        assert f"{config_dir}/broken.yaml: tenants[0].host: not a host name" in (
            capsys.readouterr().err
        )


def test_the_loader_lists_every_file_the_config_names(tmp_path: Path) -> None:
    secret = tmp_path / "secrets" / "contoso"
    secret.parent.mkdir()
    secret.write_text("s3cr3t-value\n")
    config_dir = tmp_path / "conf"
    write(config_dir / "main.yaml", MAIN)
    entry = sso_tenant("desk.contoso.com")
    del entry["sso"]["client_secret"]
    entry["sso"]["client_secret_file"] = "${SECRETS}/contoso"
    write(config_dir / "contoso.yaml", {"tenants": [entry]})
    loaded = sources.load(config_dir, env={"SECRETS": str(secret.parent)})
    assert loaded.named_files == (str(secret),)
    sso = loaded.config.tenants[0].sso
    assert sso is not None
    assert sso.client_secret[0].get_secret_value() == "s3cr3t-value"


def test_a_dangling_link_is_an_error_not_missing_tenants(tmp_path: Path) -> None:
    config_dir = tmp_path / "conf"
    write(config_dir / "main.yaml", {**MAIN, "tenants": [tenant("one.test")]})
    (config_dir / "contoso.yaml").symlink_to(tmp_path / "gone" / "contoso.yaml")
    [problem] = problems(config_dir)
    assert problem.startswith(f"{config_dir}/contoso.yaml: (file): cannot read ")
    assert problem.endswith("No such file or directory")


def test_skip_secret_files_checks_a_directory_and_names_each_unread_file_s_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_dir = tmp_path / "tenants.d"
    main_file = {**MAIN, "session": {"store": "memory", "secret_keys_file": "/nowhere/keys"}}
    write(config_dir / "00-main.yaml", main_file)
    contoso = sso_tenant("desk.contoso.com")
    del contoso["sso"]["client_secret"]
    contoso["sso"]["client_secret_file"] = "/nowhere/contoso"
    write(config_dir / "b-contoso.yaml", {"tenants": [tenant("one.test"), contoso]})
    assert main(["check-config", "-c", str(config_dir)]) == 2
    assert "cannot read /nowhere/contoso" in capsys.readouterr().err

    assert main(["check-config", "-c", str(config_dir), "--skip-secret-files"]) == 0
    out = capsys.readouterr().out
    assert "00-main.yaml: session.secret_keys_file: /nowhere/keys" in out
    assert "b-contoso.yaml: tenants[1].sso.client_secret_file: /nowhere/contoso" in out

    # What can be checked still is, and still names its file.
    contoso["sso"]["client_id"] = "nope"
    write(config_dir / "b-contoso.yaml", {"tenants": [tenant("one.test"), contoso]})
    assert main(["check-config", "-c", str(config_dir), "--skip-secret-files"]) == 2
    assert "b-contoso.yaml: tenants[1].sso.client_id: not a GUID" in capsys.readouterr().err
