"""Config loading: every broken file gets its own clear message with the field path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.cli import main
from sidecar.config.loading import ConfigError, parse_config

KEY = "x" * 40
GOOD: dict[str, Any] = {
    "server": {
        "listen": "0.0.0.0:8080",
        "admin_listen": "0.0.0.0:9090",
        "shared_domains": ["ticketlog.app"],
    },
    "session": {"store": "memory", "secret_keys": [KEY], "lifetime": "12h", "idle_timeout": "1h"},
    "email": {
        "backend": "smtp",
        "smtp": {"host": "smtp.example.com", "from": "TicketLog <no-reply@example.com>"},
    },
    "tenants": [
        {
            "host": "desk.contoso.com",
            "upstream": "http://127.0.0.1:3000",
            "plan": "pro",
            "public_paths": ["/assets/"],
            "sso": {
                "tenant": "contoso.com",
                "client_id": "11111111-2222-3333-4444-555555555555",
                "client_secret": "${CONTOSO_SECRET}",
            },
        },
        {"host": "acme.ticketlog.app", "upstream": "http://127.0.0.1:3001"},
    ],
}
ENV = {"CONTOSO_SECRET": "s3cr3t-value"}


def problems_of(document: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(document), env=ENV if env is None else env)
    return info.value.problems


def edited(path: str, value: Any) -> dict[str, Any]:
    """A copy of GOOD with one field set (value None deletes it); path like tenants.0.sso.client_id."""
    document = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node: Any = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is None:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return document


def test_good_config_loads_with_durations_secrets_and_normalised_hosts() -> None:
    document = edited("tenants.0.host", "Desk.Contoso.COM.")
    config = parse_config(yaml.safe_dump(document), env=ENV)
    assert config.session.lifetime == 12 * 3600
    assert config.tenants[0].host == "desk.contoso.com"
    assert config.tenants[0].sso is not None
    assert config.tenants[0].sso.client_secret[0].get_secret_value() == "s3cr3t-value"
    # Secrets never print: not in repr, str or a dump of the model.
    assert "s3cr3t-value" not in repr(config)
    assert "s3cr3t-value" not in str(config.model_dump())
    assert KEY not in repr(config)


BROKEN = [
    ("session.secret_keys", None, "session.secret_keys: required field is missing"),
    ("tenants", None, "tenants: required field is missing"),
    ("server.listen", 8080, "server.listen: must be HOST:PORT"),
    ("session.lifetime", "12 hours", "session.lifetime: not a duration"),
    ("server.shutdown_grace", "-5s", "server.shutdown_grace: not a duration"),
    ("signup", {"max_attempts": "five"}, "signup.max_attempts: must be a whole number"),
    ("session.store", "postgres", "session.store: must be one of: memory, redis"),
    (
        "session.store",
        "redis",
        "session: store redis needs exactly one of redis_url or redis_sentinel",
    ),
    ("session.secret_keys", ["short"], "session.secret_keys: key 0 is shorter than 32 bytes"),
    (
        "tenants.0.plan",
        "standard",
        "tenants[0].plan: sso is only offered on plan pro (this tenant's plan is 'standard')",
    ),
    ("tenants.0.sso.client_id", "not-a-guid", "tenants[0].sso.client_id: not a GUID"),
    (
        "tenants.0.sso.tenant",
        "Contoso Ltd",
        "tenants[0].sso.tenant: must be the tenant's primary domain",
    ),
    (
        "tenants.0.upstream",
        "ftp://127.0.0.1/",
        "tenants[0].upstream: must be an http:// or https:// URL",
    ),
    (
        "tenants.0.public_paths",
        ["assets/"],
        "tenants[0].public_paths: every path must start with '/'",
    ),
    ("tenants.0.host", "https://desk.contoso.com/", "tenants[0].host: not a host name"),
    (
        "tenants.0.sso.authority",
        "login.microsoftonline.com",
        "tenants[0].sso.authority: must be an http",
    ),
    ("tenants.0.sso.colour", "blue", "tenants[0].sso.colour: unknown field"),
    (
        "server.trusted_proxies",
        ["10.0.0.0/8", "everyone"],
        "server.trusted_proxies: not an IP address",
    ),
    ("server.admin_listen", "0.0.0.0:8080", "server: admin_listen must differ from listen"),
    ("tenants.1.host", "desk.contoso.com", "tenants[1].host: duplicate host 'desk.contoso.com'"),
    ("email", None, "email: required when a tenant has sso"),
    ("email.smtp", None, "email: backend smtp needs an smtp block"),
]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    BROKEN,
    ids=[b[2].split(":")[0] + "|" + b[2][-20:] for b in BROKEN],
)
def test_broken_config_names_the_field(path: str, value: Any, expected: str) -> None:
    problems = problems_of(edited(path, value))
    assert any(p.startswith(expected) for p in problems), problems


def test_sso_on_a_shared_domain_host_is_refused() -> None:
    document = edited("tenants.0.host", "contoso.ticketlog.app")
    assert any(
        p.startswith("tenants[0].sso: SSO needs a custom domain") for p in problems_of(document)
    )


def test_unset_environment_variable_is_an_error_not_an_empty_string() -> None:
    problems = problems_of(GOOD, env={})
    assert problems == [
        "tenants[0].sso.client_secret: environment variable CONTOSO_SECRET is not set"
    ]


def test_every_problem_is_reported_at_once() -> None:
    document = edited("tenants.0.sso.client_id", "nope")
    document["session"]["lifetime"] = "forever"
    document["server"]["listen"] = "nowhere"
    problems = problems_of(document)
    assert len(problems) == 3, problems


def test_secret_files_are_read_and_errors_never_show_content(tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("from-a-file\n")
    keys = tmp_path / "keys"
    keys.write_text(f"{'a' * 40}\n{'b' * 40}\n")
    document = copy.deepcopy(GOOD)
    del document["tenants"][0]["sso"]["client_secret"]
    document["tenants"][0]["sso"]["client_secret_file"] = str(secret)
    del document["session"]["secret_keys"]
    document["session"]["secret_keys_file"] = str(keys)
    config = parse_config(yaml.safe_dump(document), env={})
    sso = config.tenants[0].sso
    assert sso is not None
    assert [s.get_secret_value() for s in sso.client_secret] == ["from-a-file"]
    assert len(config.session.secret_keys) == 2

    document["tenants"][0]["sso"]["client_secret_file"] = str(tmp_path / "missing")
    problems = problems_of(document, env={})
    assert problems == [
        f"tenants[0].sso.client_secret_file: cannot read {tmp_path / 'missing'}: No such file or directory"
    ]


def test_check_config_prints_the_uris_to_register(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    monkeypatch.setenv("CONTOSO_SECRET", "s3cr3t-value")
    assert main(["check-config", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    for uri in (
        "https://desk.contoso.com/.sso/callback",
        "https://desk.contoso.com/.sso/frontchannel-logout",
        "https://desk.contoso.com/.sso/signed-out",
        "https://desk.contoso.com/",
    ):
        assert uri in out
    assert "acme.ticketlog.app: no sso block; the desk's own login is used" in out
    assert "s3cr3t-value" not in out


def test_check_config_and_serve_exit_2_on_an_invalid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(edited("tenants.0.sso.client_id", "abc")))
    monkeypatch.setenv("CONTOSO_SECRET", "s3cr3t-value")
    assert main(["check-config", "-c", str(path)]) == 2
    assert "tenants[0].sso.client_id: not a GUID" in capsys.readouterr().err
    monkeypatch.setenv("TICKETLOG_SSO_CONFIG", str(path))
    assert main(["serve"]) == 2
    assert "tenants[0].sso.client_id: not a GUID" in capsys.readouterr().err


def test_not_yaml_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server: [unclosed\n")
    assert main(["check-config", "-c", str(path)]) == 2
    assert "not valid YAML: line 2, column 1: a '[' is never closed" in capsys.readouterr().err
    assert main(["check-config", "-c", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_one_bad_tenant_is_not_also_reported_as_no_tenants() -> None:
    document = copy.deepcopy(GOOD)
    document["tenants"] = [document["tenants"][0]]
    document["tenants"][0]["sso"]["client_id"] = "nope"
    assert problems_of(document) == [
        "tenants[0].sso.client_id: not a GUID (the Application (client) ID from Entra)"
    ]


def test_unset_variable_in_a_secret_list_is_reported_once() -> None:
    document = copy.deepcopy(GOOD)
    document["session"]["secret_keys"] = ["${MISSING_KEY}"]
    assert problems_of(document) == [
        "session.secret_keys[0]: environment variable MISSING_KEY is not set"
    ]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            "tenants.0.sso.authority",
            "https://login.microsoftonline.com/?x=1",
            "tenants[0].sso.authority: authority",
        ),
        (
            "tenants.0.sso.tenant",
            "common",
            "tenants[0].sso.tenant: must be the tenant's primary domain",
        ),
        (
            "tenants.0.upstream",
            "http://127.0.0.1:3000/base",
            "tenants[0].upstream: must not have a path",
        ),
        (
            "tenants.0.upstream",
            "http://user:pw@127.0.0.1:3000",
            "tenants[0].upstream: must be scheme://host[:port]",
        ),
    ],
)
def test_what_serve_would_refuse_check_config_refuses_too(
    path: str, value: Any, expected: str
) -> None:
    problems = problems_of(edited(path, value))
    assert any(p.startswith(expected) for p in problems), problems
