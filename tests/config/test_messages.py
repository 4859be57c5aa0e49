"""Config errors a person can act on: every problem at once, plain words, suggestions,
YAML errors with what and where, duplicate keys, and warnings that keep exit 0."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.cli import main
from sidecar.config.loading import ConfigError, parse_config
from tests.config.test_config import ENV, GOOD, edited, problems_of

JARGON = ("Input should", "should have at least", "Value error", "valid tuple", "{p", "!r}")


def _no_jargon(problems: list[str]) -> None:
    for problem in problems:
        for word in JARGON:
            assert word not in problem, problem


def test_sso_on_a_non_pro_plan_is_reported_with_a_bad_client_id_of_the_same_tenant() -> None:
    document = edited("tenants.0.plan", "standard")
    document["tenants"][0]["sso"]["client_id"] = "not-a-guid"
    problems = problems_of(document)
    assert "tenants[0].sso.client_id: not a GUID (the Application (client) ID from Entra)" in (
        problems
    )
    assert (
        "tenants[0].plan: sso is only offered on plan pro (this tenant's plan is 'standard')"
        in problems
    )
    assert len(problems) == 2, problems
    _no_jargon(problems)


def test_rules_across_fields_are_reported_beside_field_errors() -> None:
    document = copy.deepcopy(GOOD)
    document["tenants"][1]["host"] = "desk.contoso.com"  # a duplicate host...
    document["tenants"][1]["upstream"] = "ftp://nowhere"  # ...in a tenant with a bad field
    document["session"]["store"] = "redis"  # redis without an address...
    document["session"]["lifetime"] = "forever"  # ...beside a bad duration
    problems = problems_of(document)
    assert "tenants[1].host: duplicate host 'desk.contoso.com' (also tenants[0])" in problems
    assert any(p.startswith("tenants[1].upstream: must be an http") for p in problems)
    assert "session: store redis needs exactly one of redis_url or redis_sentinel" in problems
    assert any(p.startswith("session.lifetime: not a duration") for p in problems)
    assert len(problems) == len(set(problems)), problems


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("server.trusted_proxies", "10.0.0.0/8", "server.trusted_proxies: must be a list"),
        ("tenants", [], "tenants: needs at least 1 entry"),
        ("session.secret_keys", [], "session.secret_keys: needs at least 1 entry"),
        ("signup.max_attempts", 0, "signup.max_attempts: must be at least 1"),
        ("signup.max_attempts", "five", "signup.max_attempts: must be a whole number"),
        ("email.smtp.port", 70000, "email.smtp.port: must be less than 65536"),
        ("email.smtp.tls", "ssl", "email.smtp.tls: must be one of: starttls, implicit, none"),
        ("tenants.0.sso", "yes", "tenants[0].sso: must be a block of fields"),
        ("tenants.0.public_paths", "/assets/", "tenants[0].public_paths: must be a list"),
    ],
)
def test_no_library_jargon(path: str, value: Any, expected: str) -> None:
    document = copy.deepcopy(GOOD)
    document["signup"] = {}
    *parents, last = path.split(".")
    node: Any = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    problems = problems_of(document)
    assert any(p.startswith(expected) for p in problems), problems
    _no_jargon(problems)


@pytest.mark.parametrize(
    ("path", "wrong", "right"),
    [
        ("server", "lisen", "listen"),
        ("session", "secret_key", "secret_keys"),
        ("tenants.0", "public_path", "public_paths"),
        ("tenants.0.sso", "client_secrte_file", "client_secret_file"),
        ("email.smtp", "form", "from"),
    ],
)
def test_a_misspelt_field_suggests_the_right_one(path: str, wrong: str, right: str) -> None:
    document = edited(f"{path}.{wrong}", "x")
    where = path.replace(".0", "[0]")
    problems = problems_of(document)
    assert f"{where}.{wrong}: unknown field (did you mean {right}?)" in problems, problems


def test_an_unknown_field_with_no_near_name_lists_the_allowed_ones() -> None:
    document = copy.deepcopy(GOOD)
    document["signup"] = {"zebra": 1}
    problems = problems_of(document)
    assert problems == [
        "signup.zebra: unknown field (the fields allowed here: code_ttl, max_attempts, "
        "resend_cooldown, max_sends_per_hour, max_sends_per_hour_per_ip, "
        "allow_reserved_email_domains)"
    ]
    assert not any("contract" in p or "shared" in p for p in problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server:\n\tlisten: 0.0.0.0:8080\n", "line 2, column 1: a tab character"),
        (
            'tenants:\n  - host: "desk.contoso.com\n    upstream: x\n',
            "a quoted string is never closed (opened at line 2, column 11)",
        ),
        ("server: {listen: 0.0.0.0:8080\n", "a '{' is never closed"),
        (
            "server:\n  listen: 0.0.0.0:8080\x07\n",
            "line 2, column 23: a control character (code 0x7)",
        ),
        (
            "server:\n  listen: 0.0.0.0:8080\n admin_listen: 0.0.0.0:9090\n",
            "line 3, column 2: the indentation of this line",
        ),
    ],
)
def test_yaml_errors_say_what_and_where(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    (problem,) = info.value.problems
    assert problem.startswith("(file): not valid YAML: "), problem
    assert expected in problem


def test_duplicate_yaml_keys_are_errors_naming_both_lines() -> None:
    text = yaml.safe_dump(GOOD, sort_keys=False)
    text += "tenants:\n  - host: other.example.com\n    upstream: http://127.0.0.1:3000\n"
    text = text.replace("  plan: pro\n", "  plan: pro\n  plan: standard\n", 1)
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=ENV)
    problems = info.value.problems
    assert len(problems) == 2, problems
    assert any("duplicate key 'plan'" in p for p in problems)
    tenants_line = text.splitlines().index("tenants:") + 1
    last_line = len(text.splitlines()) - 2
    assert any(
        f"line {last_line}: duplicate key 'tenants' (first at line {tenants_line})" in p
        for p in problems
    ), problems


# -- warnings: exit 0 ----------------------------------------------------------------


def _check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: dict[str, Any], *extra: str
) -> tuple[int, str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    status = main(["check-config", "-c", str(path), *extra])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def contoso_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTOSO_SECRET", "s3cr3t-value")


@pytest.mark.usefixtures("contoso_secret")
def test_a_guid_shaped_client_secret_warns_without_showing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_id = "0f3c9a2e-5b7d-4e1a-9c8b-2d6e4f1a3b5c"
    status, out, err = _check(tmp_path, capsys, edited("tenants.0.sso.client_secret", secret_id))
    assert status == 0
    assert "warning: tenants[0].sso.client_secret[0]: looks like the secret's ID" in err
    assert secret_id not in out + err


@pytest.mark.usefixtures("contoso_secret")
def test_placeholders_console_mail_and_http_authority_warn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = edited("tenants.0.sso.client_secret", "REPLACE-ME-with-the-value")
    document["tenants"][0]["sso"]["authority"] = "http://login.example.test"
    document["email"] = {"backend": "console"}
    status, _, err = _check(tmp_path, capsys, document)
    assert status == 0
    assert "warning: tenants[0].sso.client_secret[0]: looks like a placeholder" in err
    assert "warning: tenants[0].sso.authority: http:// sends sign-in traffic unencrypted" in err
    assert "warning: email.backend: console writes verification codes to the log" in err
    assert "REPLACE-ME-with-the-value" not in err


@pytest.mark.usefixtures("contoso_secret")
def test_the_memory_store_warns_with_its_consequence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _check(tmp_path, capsys, GOOD)
    assert status == 0
    assert "warning: session.store: memory keeps" in err
    assert "first-login account" in err
    assert "lost at each restart or rollout" in err
    document = edited("session.store", "redis")
    document["session"]["redis_url"] = "redis://redis:6379/0"
    _, _, err = _check(tmp_path, capsys, document)
    assert "session.store" not in err


# -- manifests and secret files not on this machine -----------------------------------


def _config_map(document: dict[str, Any]) -> str:
    return yaml.safe_dump_all(
        [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "other"}},
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "ticketlog-sso-config"},
                "data": {"config.yaml": yaml.safe_dump(document), "README": "not a config"},
            },
        ]
    )


@pytest.mark.usefixtures("contoso_secret")
def test_check_config_reads_the_config_of_a_configmap_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "configmap.yaml"
    manifest.write_text(_config_map(GOOD))
    assert main(["check-config", "-c", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert f"{manifest} (ConfigMap ticketlog-sso-config, key config.yaml): valid (2 tenants)" in out
    assert "https://desk.contoso.com/.sso/callback" in out

    manifest.write_text(_config_map(edited("tenants.0.sso.client_id", "nope")))
    assert main(["check-config", "-c", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert "(ConfigMap ticketlog-sso-config, key config.yaml): invalid configuration" in err
    assert "tenants[0].sso.client_id: not a GUID" in err


def test_skip_secret_files_checks_the_rest_and_lists_what_it_did_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = copy.deepcopy(GOOD)
    del document["tenants"][0]["sso"]["client_secret"]
    document["tenants"][0]["sso"]["client_secret_file"] = "/var/run/secrets/nowhere/contoso"
    del document["session"]["secret_keys"]
    document["session"]["secret_keys_file"] = "/var/run/secrets/nowhere/keys"
    status, _, err = _check(tmp_path, capsys, document)
    assert status == 2
    assert "session.secret_keys_file: cannot read /var/run/secrets/nowhere/keys" in err

    status, out, err = _check(tmp_path, capsys, document, "--skip-secret-files")
    assert status == 0, err
    assert (
        "not checked (file not on this machine): session.secret_keys_file: "
        "/var/run/secrets/nowhere/keys" in out
    )
    assert "tenants[0].sso.client_secret_file: /var/run/secrets/nowhere/contoso" in out
    # The stand-in values never trigger a warning of their own.
    assert "placeholder" not in err
    assert "secret's ID" not in err

    # What can be checked still is.
    document["tenants"][0]["sso"]["client_id"] = "nope"
    status, _, err = _check(tmp_path, capsys, document, "--skip-secret-files")
    assert status == 2
    assert "tenants[0].sso.client_id: not a GUID" in err


def test_skip_secret_files_never_skips_the_config_file_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.yaml"
    assert main(["check-config", "-c", str(missing), "--skip-secret-files"]) == 2
    assert f"(file): cannot read {missing}: No such file or directory" in capsys.readouterr().err
