"""The command line as an operator meets it: --version, help with examples, exit codes,
an address in use, and the demo's ports; each run as the real program in a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from bench.procs import free_port
from sidecar.version import sidecar_version
from tests.deploy import k8s
from tests.helpers import SESSION_KEY

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [
    ["serve"],
    ["check-config"],
    ["check-entra"],
    ["accounts"],
    ["accounts", "list"],
    ["accounts", "show"],
    ["accounts", "delete"],
    ["demo"],
]


def run(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_version_prints_the_installed_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ticketlog-sso {sidecar_version()}"
    assert sidecar_version() == "0.1.0"  # pyproject.toml's version, as installed


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0
    assert f"usage: ticketlog-sso {' '.join(command)}" in result.stdout
    assert "examples:\n  ticketlog-sso " + command[0] in result.stdout


def test_usage_errors_and_invalid_configs_have_distinct_exit_codes(tmp_path: Path) -> None:
    for args in (["serve", "--bogus"], ["frobnicate"], ["accounts", "show", "--host", "h"], []):
        result = run(*args)
        assert result.returncode == 64, (args, result.stderr)
        assert "usage: ticketlog-sso" in result.stderr
        assert "Traceback" not in result.stderr
    bad = tmp_path / "config.yaml"
    bad.write_text("tenants: []\n")
    result = run("check-config", "-c", str(bad))
    assert result.returncode == 2
    assert "tenants: needs at least 1 entry" in result.stderr


def _config(tmp_path: Path, listen: str, admin_listen: str) -> Path:
    path = tmp_path / "config.yaml"
    document = {
        "server": {"listen": listen, "admin_listen": admin_listen},
        "session": {"store": "memory", "secret_keys": [SESSION_KEY]},
        "tenants": [{"host": "desk.example.test", "upstream": "http://127.0.0.1:9"}],
    }
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def taken_port() -> object:
    """A port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield holder.getsockname()[1]


@pytest.mark.parametrize("which", ["listen", "admin_listen"])
def test_serve_on_an_address_in_use_says_so_in_one_line(
    tmp_path: Path, taken_port: int, which: str
) -> None:
    addresses = {"listen": f"127.0.0.1:{free_port()}", "admin_listen": f"127.0.0.1:{free_port()}"}
    addresses[which] = f"127.0.0.1:{taken_port}"
    config = _config(tmp_path, **addresses)
    result = run("serve", "-c", str(config))
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"ticketlog-sso: cannot listen on 127.0.0.1:{taken_port}: address already in use"
    ]


def test_demo_on_an_address_in_use_says_so_in_one_line(taken_port: int) -> None:
    result = run("demo", "--port", str(taken_port), "--admin-port", str(free_port()))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[-1] == (
        f"ticketlog-sso demo: cannot listen on 127.0.0.1:{taken_port}: address already in use"
    )
    assert "Traceback" not in result.stderr


def _port_pair() -> int:
    """A free port P whose admin companion P + 1010 is free too."""
    while True:
        port = free_port()
        if port + 1010 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1010))
            except OSError:
                continue
        return port


def test_make_demo_port_moves_the_admin_port_too() -> None:
    port = _port_pair()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "demo", f"PORT={port}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port + 1010}/healthz") as answer:
                    body = json.load(answer)
            except OSError:
                time.sleep(0.2)
        assert body == {"status": "ok"}
    finally:
        os.killpg(process.pid, 2)
        out, _ = process.communicate(timeout=15)
    assert f"http://desk.localhost:{port}/" in out
    assert f"http://127.0.0.1:{port + 1010}/metrics" in out


def test_demo_says_how_to_get_it_where_it_is_not_installed(tmp_path: Path) -> None:
    """The production image leaves sidecar/dev out; `ticketlog-sso demo` explains."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _NoDev:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sidecar.dev' or name.startswith('sidecar.dev.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, _NoDev())\n"
    )
    result = run("demo", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1
    assert "not part of this installation" in result.stderr
    assert "make demo" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_logs_each_config_warning_at_start(tmp_path: Path) -> None:
    """The memory store's consequence is said by serve too, not only by check-config."""
    admin = free_port()
    config = _config(tmp_path, f"127.0.0.1:{free_port()}", f"127.0.0.1:{admin}")
    process = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "serve", "-c", str(config)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz"):
                    break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
    finally:
        process.send_signal(2)
        _, err = process.communicate(timeout=30)
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    (warning,) = [e for e in events if e["event"] == "config_warning"]
    assert warning["level"] == "warning"
    assert warning["field"] == "session.store"
    assert "first-login account" in warning["message"]
    assert process.returncode == 0


def test_check_config_reads_a_rendered_kustomization_on_standard_input() -> None:
    """`kubectl kustomize deploy/k8s/base | ticketlog-sso check-config -c -`"""
    rendered = yaml.safe_dump_all(k8s.render(k8s.BASE))
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "check-config", "-c", "-", "--skip-secret-files"],
        input=rendered,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "- (ConfigMap ticketlog-sso-config, key config.yaml): valid (1 tenant)" in result.stdout
    assert "https://desk.contoso.com/.sso/callback" in result.stdout
