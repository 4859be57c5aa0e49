"""deploy/k8s: valid Kubernetes objects, locked down, and wired to the sidecar's contract.

Every manifest is validated (strictly: unknown fields fail) against the
Kubernetes schemas that the kubernetes-validate package ships, the base and every
overlay as rendered (tests/deploy/k8s.py), and the ConfigMap's sidecar config
passes `ticketlog-sso check-config` with the example Secret's placeholder files.
The monitoring objects (Prometheus Operator kinds) are checked against the pods
they scrape and the metrics the sidecar exports.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import promql_parser
import pytest
import yaml

from sidecar import cli
from sidecar.config.loading import parse_config
from sidecar.metrics import REGISTRY
from tests.deploy import k8s
from tests.deploy.k8s import DESK, SIDECAR, Doc

# Kubernetes 1.30 is the oldest the manifests need (the preStop `sleep` action);
# they are checked against a current release's schemas.
K8S_VERSION = "1.34"

_RENDERED = {directory: k8s.render(directory) for directory in k8s.KUSTOMIZATIONS}
_IDS = [str(d.relative_to(k8s.K8S)) for d in k8s.KUSTOMIZATIONS]


@pytest.fixture(params=k8s.KUSTOMIZATIONS, ids=_IDS)
def rendered(request: pytest.FixtureRequest) -> list[Doc]:
    return _RENDERED[request.param]


def _validate(doc: Doc, where: str) -> None:
    problem = None
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        problem = f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}"
    except kubernetes_validate.SchemaNotFoundError as exc:
        problem = exc.message
    if problem:
        pytest.fail(f"{where}: {problem}")


def _generated_from() -> set[Path]:
    """The files configMapGenerator turns into ConfigMaps (the sidecar's configs)."""
    return {
        file.resolve()
        for directory in k8s.KUSTOMIZATIONS
        for file in k8s.generator_files(directory).values()
    }


def _plain_manifest_files() -> list[Path]:
    """Files holding whole core objects: neither kustomizations, patches, the files
    ConfigMaps are generated from, nor the Prometheus Operator's kinds (checked below,
    by what they say)."""
    not_objects = k8s.patch_files() | _generated_from()
    return [
        p
        for p in k8s.manifest_files()
        if p.name != "kustomization.yaml"
        and p.resolve() not in not_objects
        and k8s.MONITORING not in p.parents
    ]


# -- the files themselves -------------------------------------------------------------


@pytest.mark.parametrize("path", _plain_manifest_files(), ids=lambda p: str(p.relative_to(k8s.K8S)))
def test_every_manifest_document_is_a_valid_kubernetes_object(path: Path) -> None:
    docs = k8s.load_documents(path)
    assert docs, f"{path}: no YAML document"
    for doc in docs:
        _validate(doc, str(path.relative_to(k8s.REPO)))


def test_rendered_base_and_overlays_are_valid_kubernetes_objects(rendered: list[Doc]) -> None:
    """Patches are partial objects: they are validated merged into what they patch."""
    keys = [k8s.key(doc) for doc in rendered]
    assert len(keys) == len(set(keys)), f"duplicate objects: {keys}"
    for doc in rendered:
        _validate(doc, "rendered")


@pytest.mark.parametrize("directory", k8s.KUSTOMIZATIONS, ids=_IDS)
def test_kustomization_names_files_that_exist(directory: Path) -> None:
    spec = k8s.kustomization(directory)
    assert spec["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert spec["kind"] == "Kustomization"
    assert spec.get("resources"), "a kustomization without resources"
    for entry in spec["resources"]:
        target = directory / entry
        assert target.is_file() or (target / "kustomization.yaml").is_file(), (
            f"{directory.name}/kustomization.yaml: resource {entry} does not exist"
        )
    for entry in spec.get("patches", []):
        assert (directory / entry["path"]).is_file(), f"patch {entry['path']} does not exist"
    for file in k8s.generator_files(directory).values():
        assert file.is_file(), f"configMapGenerator file {file.name} does not exist"


def _used_files() -> set[Path]:
    used = set(k8s.patch_files()) | _generated_from()
    for directory in [*k8s.KUSTOMIZATIONS, k8s.MONITORING]:
        used.add((directory / "kustomization.yaml").resolve())
        used.update((directory / e).resolve() for e in k8s.kustomization(directory)["resources"])
    return used


def test_every_yaml_file_is_used_by_a_kustomization() -> None:
    """No manifest lies beside the kustomizations unchecked and unapplied, except the
    examples, which are deliberately in none."""
    used = _used_files()
    unused = [
        p for p in k8s.manifest_files() if p.resolve() not in used and k8s.EXAMPLES not in p.parents
    ]
    assert not unused, f"not in any kustomization: {unused}"


def test_no_secret_is_applied_by_any_kustomization(rendered: list[Doc]) -> None:
    """`kubectl apply -k` never overwrites the operator's real Secrets with placeholders,
    and dropping the example file breaks no kustomization."""
    assert not k8s.by_kind(rendered, "Secret")
    assert k8s.example_secrets(), "the examples show the Secrets to create"
    assert not any(k8s.EXAMPLES in path.parents for path in _used_files())


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
@pytest.mark.parametrize("directory", k8s.KUSTOMIZATIONS, ids=_IDS)
def test_the_tiny_renderer_agrees_with_kubectl_kustomize(directory: Path) -> None:
    """Where kubectl is at hand, the renderer these tests rely on is checked against it."""
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    theirs = {k8s.key(d): d for d in yaml.safe_load_all(result.stdout) if d}
    ours = {k8s.key(d): d for d in _RENDERED[directory]}
    assert theirs == ours


# -- security ------------------------------------------------------------------------


def _workloads(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


def test_every_container_is_locked_down(rendered: list[Doc]) -> None:
    workloads = _workloads(rendered)
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        pod_security = pod.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True
        assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault"
        assert pod.get("automountServiceAccountToken") is False
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(flag), flag
        for c in k8s.containers(pod):
            where = f"{workload['metadata']['name']}/{c['name']}"
            security = c.get("securityContext", {})
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert not security.get("privileged"), where
            assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, where
            uid = security.get("runAsUser", pod_security.get("runAsUser"))
            assert isinstance(uid, int), where
            assert uid > 0, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not security.get("capabilities", {}).get("add"), where
            seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            resources = c.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), where
            image = c["image"]
            assert ":" in image.rsplit("/", 1)[-1], f"{where}: image without a tag"
            assert not image.endswith(":latest"), where
            for port in c.get("ports", []):
                assert "hostPort" not in port, where


def test_the_sidecar_runs_as_the_images_user() -> None:
    pod = k8s.desk_pod(_RENDERED[k8s.BASE])["spec"]
    security = k8s.container(pod, SIDECAR)["securityContext"]
    assert security["runAsUser"] == 10001
    assert security["runAsGroup"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001  # the secret files are group-readable
    (secrets,) = [v for v in pod["volumes"] if "secret" in v]
    assert secrets["secret"]["defaultMode"] == 0o440


def test_service_reaches_the_sidecars_public_port_only(rendered: list[Doc]) -> None:
    deployment = k8s.one(rendered, "Deployment", k8s.DESK_DEPLOYMENT)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    sidecar = k8s.container(deployment["spec"]["template"]["spec"], SIDECAR)
    services = [
        s
        for s in k8s.by_kind(rendered, "Service")
        if k8s.labels_match(s["spec"]["selector"], pod_labels)
    ]
    assert len(services) == 1
    (service,) = services
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    targets = [k8s.port_number(sidecar, p["targetPort"]) for p in service["spec"]["ports"]]
    assert targets == [k8s.port_number(sidecar, "http")]
    assert targets == [8080]
    config = yaml.safe_load(k8s.sidecar_config_text(rendered))
    assert config["server"]["listen"].rsplit(":", 1)[1] == "8080"
    assert config["server"]["admin_listen"].rsplit(":", 1)[1] == str(
        k8s.port_number(sidecar, "admin")
    )


def test_ingress_routes_the_tenant_hosts_over_tls_to_that_service(rendered: list[Doc]) -> None:
    config = yaml.safe_load(k8s.sidecar_config_text(rendered))
    tenant_hosts = {t["host"] for t in config["tenants"]}
    (ingress,) = k8s.by_kind(rendered, "Ingress")
    service = k8s.one(rendered, "Service", k8s.DESK_DEPLOYMENT)
    rule_hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    tls_hosts = {h for entry in ingress["spec"]["tls"] for h in entry["hosts"]}
    assert rule_hosts == tenant_hosts
    assert rule_hosts <= tls_hosts
    assert all(entry.get("secretName") for entry in ingress["spec"]["tls"])
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"] == {"name": "http"}


def test_probes_use_the_admin_port(rendered: list[Doc]) -> None:
    pod = k8s.desk_pod(rendered)["spec"]
    sidecar = k8s.container(pod, SIDECAR)
    admin = k8s.port_number(sidecar, "admin")
    assert admin == 9090
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert k8s.port_number(sidecar, sidecar[probe]["httpGet"]["port"]) == admin, probe
    assert sidecar["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}


def test_the_sidecar_starts_before_the_desk_and_stops_after_it(rendered: list[Doc]) -> None:
    """A native sidecar: an init container with restartPolicy Always (Kubernetes 1.29+)."""
    pod = k8s.desk_pod(rendered)["spec"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["name"] == SIDECAR
    assert sidecar["restartPolicy"] == "Always"
    assert [c["name"] for c in pod["containers"]] == [DESK]


def test_a_pod_is_not_ready_while_its_desk_does_not_answer(rendered: list[Doc]) -> None:
    """The desk listens on loopback, where kubelet cannot probe it: its readiness probe
    asks the sidecar's admin port, whose /readyz?desk=1 connects to the desk."""
    pod = k8s.desk_pod(rendered)["spec"]
    probe = k8s.container(pod, DESK)["readinessProbe"]["httpGet"]
    assert probe["path"] == "/readyz?desk=1"
    assert probe["port"] == k8s.port_number(k8s.container(pod, SIDECAR), "admin")


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return float(duration[:-1]) * units[duration[-1]]


def _pre_stop_sleep(c: Doc) -> int:
    return int(c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0))


DESK_STOP_SECONDS = 5  # what the desk's own stop is given, after its preStop pause


def test_termination_grace_covers_the_desk_pause_and_the_sidecar_drain(
    rendered: list[Doc],
) -> None:
    """Native sidecar order: the desk pauses in preStop while the ingress stops sending
    and requests in flight finish through the sidecar; it stops; then the sidecar gets
    SIGTERM and drains. The grace period covers all of it."""
    pod = k8s.desk_pod(rendered)["spec"]
    config = yaml.safe_load(k8s.sidecar_config_text(rendered))
    drain = _seconds(config["server"].get("shutdown_grace", "25s"))
    grace = pod["terminationGracePeriodSeconds"]
    desk_pause = _pre_stop_sleep(k8s.container(pod, DESK))
    # Requests the sidecar accepted just before the endpoint removal reached the
    # ingress get as long as a drain would give them, with the desk still up.
    assert desk_pause >= 5 + drain
    assert grace >= desk_pause + DESK_STOP_SECONDS + drain, "no time for the sidecar's drain"


def test_the_desk_is_reachable_only_through_the_sidecar(rendered: list[Doc]) -> None:
    pod = k8s.desk_pod(rendered)["spec"]
    desk = k8s.container(pod, DESK)
    assert not desk.get("ports"), "the desk declares ports: it must listen on loopback only"
    env = {e["name"]: e.get("value") for e in desk.get("env", [])}
    assert env.get("HOST") == "127.0.0.1"
    config = yaml.safe_load(k8s.sidecar_config_text(rendered))
    for tenant in config["tenants"]:
        assert k8s.is_loopback_url(tenant["upstream"]), tenant["upstream"]
        assert tenant["upstream"].endswith(f":{env['PORT']}")
    policies = k8s.by_kind(rendered, "NetworkPolicy")
    desk_labels = k8s.desk_pod(rendered)["metadata"]["labels"]
    (desk_policy,) = [
        p
        for p in policies
        if k8s.labels_match(p["spec"]["podSelector"]["matchLabels"], desk_labels)
    ]
    assert desk_policy["spec"]["policyTypes"] == ["Ingress"]
    allowed = [p["port"] for rule in desk_policy["spec"]["ingress"] for p in rule["ports"]]
    sidecar = k8s.container(pod, SIDECAR)
    assert sorted(allowed) == sorted(
        [k8s.port_number(sidecar, "http"), k8s.port_number(sidecar, "admin")]
    )
    # Every rule names its sources: none admits the whole cluster.
    assert all(rule.get("from") for rule in desk_policy["spec"]["ingress"])


def test_trusted_proxies_are_the_ingress_pod_network(rendered: list[Doc]) -> None:
    config = yaml.safe_load(k8s.sidecar_config_text(rendered))
    networks = [ipaddress.ip_network(n) for n in config["server"]["trusted_proxies"]]
    assert networks, "no trusted proxy: X-Forwarded-Proto from the ingress would be ignored"
    for network in networks:
        assert network.is_private, network
        assert network.prefixlen >= 8, f"{network} trusts far more than a pod network"


# -- the sidecar config and its secrets ----------------------------------------------------


def test_the_config_is_mounted_where_the_sidecar_reads_it(rendered: list[Doc]) -> None:
    config_path, config_map, _, _ = k8s.sidecar_mounts(rendered)
    assert config_path == Path("/etc/ticketlog-sso/config.yaml")  # the image's default too
    pod = k8s.desk_pod(rendered)["spec"]
    (volume,) = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == config_map]
    (mount,) = [
        m for m in k8s.container(pod, SIDECAR)["volumeMounts"] if m["name"] == volume["name"]
    ]
    # A directory mount (no subPath), so an edited ConfigMap reaches the running pod.
    assert "subPath" not in mount
    assert mount.get("readOnly") is True
    assert k8s.CONFIG_KEY in k8s.one(rendered, "ConfigMap", config_map)["data"]


def test_every_secret_file_of_the_config_is_a_key_of_the_example_secret(
    rendered: list[Doc],
) -> None:
    _, _, secret_dir, secret_name = k8s.sidecar_mounts(rendered)
    secrets = k8s.with_example_secrets(rendered)
    keys = set(k8s.secret_data(k8s.one(secrets, "Secret", secret_name)))
    config = yaml.safe_load(k8s.sidecar_config_text(rendered))
    fields = dict(k8s.secret_file_fields(config))
    assert {
        "session.secret_keys_file",
        "session.redis_url_file",
        "email.smtp.password_file",
    } <= set(fields)
    for tenant in config["tenants"]:
        if "sso" in tenant:
            # A client secret in the Secret, or the projected token (workload identity).
            credentials = {"client_secret_file", "client_certificate", "federated_token_file"}
            assert credentials & set(tenant["sso"]), tenant["host"]
    for field, path in fields.items():
        assert Path(path).parent == secret_dir, f"{field}: {path} is not under {secret_dir}"
        assert Path(path).name in keys, f"{field}: the Secret has no key {Path(path).name}"
    # No secret value is written in the config itself.
    for section, name in (("session", "secret_keys"), ("session", "redis_url")):
        assert name not in config["session"], f"{section}.{name} in the ConfigMap"


def test_example_secrets_hold_placeholders_only() -> None:
    for secret in k8s.example_secrets():
        for name, value in k8s.secret_data(secret).items():
            assert "REPLACE-ME" in value, f"{secret['metadata']['name']}.{name} looks real"


def test_check_config_accepts_the_configmap_with_the_example_secrets(
    rendered: list[Doc], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = k8s.local_sidecar_config(rendered, tmp_path)
    status = cli.main(["check-config", "-c", str(config)])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "https://desk.contoso.com/.sso/callback" in out
    # The example's placeholders are named, so none reaches a cluster unnoticed.
    assert "session.secret_keys[0]: looks like a placeholder" in err


def test_the_configmap_is_a_config_file_as_written_under_its_mounted_name(
    rendered: list[Doc],
) -> None:
    """No copy kept by hand: the ConfigMap holds one of the config files the tests check
    (tests/config/test_examples.py), under the name the pod mounts. An unhashed name lets
    an edited ConfigMap reload in place, where a new name would roll every pod (the
    renderer refuses a hashed one)."""
    _, config_map, _, _ = k8s.sidecar_mounts(rendered)
    assert config_map == "ticketlog-sso-config"
    texts = [file.read_text(encoding="utf-8") for file in k8s.config_files()]
    assert k8s.sidecar_config_text(rendered) in texts


@pytest.mark.parametrize("config", k8s.config_files(), ids=lambda p: str(p.relative_to(k8s.K8S)))
def test_check_config_reads_the_config_file_without_the_pods_files(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What an operator runs before `kubectl apply`: the file, without the pod's secrets."""
    assert cli.main(["check-config", "-c", str(config), "--skip-secret-files"]) == 0
    out, err = capsys.readouterr()
    assert f"{config}: valid (1 tenant)" in out
    assert "not checked (file not on this machine): session.redis_url_file" in out
    assert "session.store" not in err, "the deployment's store is one that keeps accounts"
    assert cli.main(["check-config", "-c", str(config)]) == 2
    assert "session.secret_keys_file: cannot read" in capsys.readouterr().err


def test_check_config_reads_the_rendered_manifest(rendered: list[Doc]) -> None:
    """`kubectl kustomize DIR | ticketlog-sso check-config -c - --skip-secret-files`"""
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "check-config", "-c", "-", "--skip-secret-files"],
        input=yaml.safe_dump_all(rendered),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=k8s.REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "- (ConfigMap ticketlog-sso-config, key config.yaml): valid (1 tenant)" in result.stdout
    assert "https://desk.contoso.com/.sso/callback" in result.stdout


# -- replicas and the session store ------------------------------------------------------


def _store(rendered: list[Doc]) -> str:
    return str(yaml.safe_load(k8s.sidecar_config_text(rendered))["session"]["store"])


def test_a_memory_store_runs_exactly_one_replica(rendered: list[Doc]) -> None:
    deployment = k8s.one(rendered, "Deployment", k8s.DESK_DEPLOYMENT)
    autoscalers = k8s.by_kind(rendered, "HorizontalPodAutoscaler")
    if _store(rendered) == "memory":
        assert deployment["spec"]["replicas"] == 1
        assert not autoscalers
    else:
        assert deployment["spec"]["replicas"] >= 2
        (hpa,) = autoscalers
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployment["metadata"]["name"],
        }
        assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"]
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def test_the_disruption_budget_covers_the_desk_pods(rendered: list[Doc]) -> None:
    (pdb,) = k8s.by_kind(rendered, "PodDisruptionBudget")
    labels = k8s.desk_pod(rendered)["metadata"]["labels"]
    assert k8s.labels_match(pdb["spec"]["selector"]["matchLabels"], labels)
    # Never a budget that blocks every drain (the single memory-store replica included).
    assert pdb["spec"].get("maxUnavailable") == 1


def test_the_default_layout_keeps_accounts_across_rollouts() -> None:
    """The base's store is Redis: a rollout never forgets users' first-login accounts."""
    assert _store(_RENDERED[k8s.BASE]) == "redis"


def test_overlays_use_the_base_config_unchanged() -> None:
    """Overlays never copy the config: a change to the base's ConfigMap reaches them all."""
    base_config = k8s.sidecar_config_text(_RENDERED[k8s.BASE])
    for overlay in k8s.OVERLAYS:
        if overlay.name == "workload-identity":
            continue  # swaps the tenant's credential, nothing else: test_workload_identity.py
        assert k8s.sidecar_config_text(_RENDERED[overlay]) == base_config, overlay.name
        assert not k8s.generator_files(overlay), f"{overlay}: a config of its own"
        for path in overlay.glob("*.yaml"):
            kinds = {d.get("kind") for d in k8s.load_documents(path)}
            assert "ConfigMap" not in kinds, f"{path}: a copy of the config"


def test_the_redis_url_names_the_bundled_redis_and_its_password(tmp_path: Path) -> None:
    overlay = k8s.with_example_secrets(_RENDERED[k8s.K8S / "overlays" / "bundled-redis"])
    config = parse_config(k8s.local_sidecar_config(overlay, tmp_path).read_text(), env={})
    assert config.session.redis_url is not None
    url = config.session.redis_url.get_secret_value()
    parts = urlsplit(url)
    service = k8s.one(overlay, "Service", parts.hostname or "")
    assert parts.port in [p["port"] for p in service["spec"]["ports"]]
    redis = k8s.one(overlay, "Deployment", parts.hostname or "")
    assert k8s.labels_match(
        service["spec"]["selector"], redis["spec"]["template"]["metadata"]["labels"]
    )
    (auth,) = [
        v["secret"]["secretName"]
        for v in redis["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    ]
    auth_conf = "".join(k8s.secret_data(k8s.one(overlay, "Secret", auth)).values())
    assert f"requirepass {parts.password}" in auth_conf.splitlines()
    # Redis is reachable from the desk pods only.
    (policy,) = [
        p
        for p in k8s.by_kind(overlay, "NetworkPolicy")
        if p["spec"]["podSelector"]["matchLabels"] == service["spec"]["selector"]
    ]
    sources = [
        src["podSelector"]["matchLabels"]
        for rule in policy["spec"]["ingress"]
        for src in rule["from"]
    ]
    assert sources == [{"app.kubernetes.io/name": k8s.DESK_DEPLOYMENT}]


# -- monitoring: the PodMonitor and the alerts ---------------------------------------------

_MONITORING = [
    doc
    for entry in k8s.kustomization(k8s.MONITORING)["resources"]
    for doc in k8s.load_documents(k8s.MONITORING / entry)
]
# Exported by the sidecar once client certificates are configured (client credentials).
_CERTIFICATE_EXPIRY = "ticketlog_sso_client_certificate_expiry_timestamp_seconds"


def _exported_metric_names() -> set[str]:
    names = set()
    suffixes = {
        "counter": ["_total"],
        "histogram": ["_bucket", "_count", "_sum"],
        "info": ["_info"],
    }
    for metric in REGISTRY.collect():
        names.add(metric.name)
        names.update(metric.name + suffix for suffix in suffixes.get(metric.type, []))
    return names


def _selected_metrics(node: object) -> list[str]:
    """Every metric name a PromQL expression selects."""
    if isinstance(node, promql_parser.VectorSelector):
        return [node.name]
    found = []
    for attribute in ("lhs", "rhs", "expr", "args", "vector_selector", "param"):
        child = getattr(node, attribute, None)
        for item in child if isinstance(child, list) else [child]:
            if item is not None:
                found.extend(_selected_metrics(item))
    return found


def test_the_pod_monitor_scrapes_the_sidecars_admin_port() -> None:
    (monitor,) = [d for d in _MONITORING if d["kind"] == "PodMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    pod = k8s.desk_pod(_RENDERED[k8s.BASE])
    assert k8s.labels_match(monitor["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    sidecar = k8s.container(pod["spec"], SIDECAR)
    assert k8s.port_number(sidecar, endpoint["port"]) == 9090


def test_the_alerts_cover_what_an_operator_must_know_and_use_real_metrics() -> None:
    (rule,) = [d for d in _MONITORING if d["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    for needed in (
        "TicketLogSSOStoreDown",
        "TicketLogSSOEntraFailingForTenant",
        "TicketLogSSOClientCredentialFailing",
        "TicketLogSSOClientCertificateExpiring",
        "TicketLogSSOSignInErrorRate",
        "TicketLogSSOConfigReloadRefused",
    ):
        assert needed in alerts, needed
    exported = _exported_metric_names() | {_CERTIFICATE_EXPIRY}
    for name, alert in alerts.items():
        expression = promql_parser.parse(alert["expr"])  # raises on a syntax error
        metrics = _selected_metrics(expression)
        assert metrics, f"{name}: selects no metric"
        for metric in metrics:
            assert metric in exported, f"{name}: {metric} is not a metric the sidecar exports"
        assert alert["labels"]["severity"] in ("warning", "critical"), name
        assert alert["annotations"]["summary"], name
