"""Reading deploy/k8s without a cluster: YAML documents, a tiny kustomize, the sidecar config.

The renderer understands exactly what deploy/k8s uses (``resources`` files and
directories, ``patches`` by ``path`` as strategic-merge patches, ``configMapGenerator``
from files, its names kept as written) and refuses anything else, so a kustomization
that outgrows it fails loudly here instead of being checked half-rendered.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
KUSTOMIZATIONS = [BASE, *OVERLAYS]
# Applied on its own where the Prometheus Operator runs (its kinds are not core ones).
MONITORING = K8S / "monitoring"
# Examples only: in no kustomization, so `kubectl apply -k` never overwrites real Secrets.
EXAMPLES = K8S / "examples"

SIDECAR = "sso-sidecar"
DESK = "desk"
DESK_DEPLOYMENT = "ticketlog-desk"
CONFIG_KEY = "config.yaml"

Doc = dict[str, Any]

# Strategic-merge keys of the lists deploy/k8s patches (everything else is replaced).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
}
_SUPPORTED_KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "patches",
    "configMapGenerator",
    "generatorOptions",
}
_SUPPORTED_GENERATOR_KEYS = {"name", "files", "behavior", "options"}


def load_documents(path: Path) -> list[Doc]:
    """Every non-empty YAML document of a file."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml"))


def kustomization(directory: Path) -> Doc:
    (doc,) = load_documents(directory / "kustomization.yaml")
    return doc


def patch_files() -> set[Path]:
    return {
        (directory / entry["path"]).resolve()
        for directory in KUSTOMIZATIONS
        for entry in kustomization(directory).get("patches", [])
    }


def generator_files(directory: Path) -> dict[str, Path]:
    """The files a kustomization's configMapGenerator reads: {ConfigMap key: file}."""
    found = {}
    for generator in kustomization(directory).get("configMapGenerator", []):
        for entry in generator.get("files", []):
            name, _, file = entry.rpartition("=")
            found[name or Path(file).name] = directory / file
    return found


def config_files() -> list[Path]:
    """Every sidecar config a kustomization turns into a ConfigMap (its YAML keys, as
    `check-config` reads a ConfigMap)."""
    return sorted(
        file
        for directory in KUSTOMIZATIONS
        for data_key, file in generator_files(directory).items()
        if data_key.endswith((".yaml", ".yml"))
    )


def key(doc: Doc) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    """A strategic-merge patch as kustomize applies it, for the cases deploy/k8s uses."""
    if isinstance(patch, dict):
        if any(str(k).startswith("$") for k in patch):
            raise NotImplementedError(f"patch directives are not supported here: {sorted(patch)}")
        if not isinstance(target, dict):
            return copy.deepcopy(patch)
        merged = dict(target)
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            elif name in merged:
                merged[name] = strategic_merge(merged[name], value, name)
            else:
                merged[name] = copy.deepcopy(value)
        return merged
    if isinstance(patch, list) and isinstance(target, list):
        merge_key = _MERGE_KEYS.get(field)
        if field == "ports" and all(isinstance(i, dict) for i in patch + target):
            merge_key = "containerPort" if all("containerPort" in i for i in target) else "port"
        if merge_key is None:
            return copy.deepcopy(patch)
        # As kubectl's strategic merge orders them: the patch's items first (merged into
        # their namesakes), then the target's other items in their own order.
        keys = [item.get(merge_key) for item in patch]
        merged_items = []
        for item in patch:
            existing = next((t for t in target if t.get(merge_key) == item.get(merge_key)), None)
            merged_items.append(
                strategic_merge(existing, item) if existing is not None else copy.deepcopy(item)
            )
        rest = [copy.deepcopy(t) for t in target if t.get(merge_key) not in keys]
        return merged_items + rest
    return copy.deepcopy(patch)


def render(directory: Path) -> list[Doc]:
    """What `kubectl kustomize DIRECTORY` gives, for the features deploy/k8s uses."""
    spec = kustomization(directory)
    unsupported = set(spec) - _SUPPORTED_KUSTOMIZATION_KEYS
    if unsupported:
        raise NotImplementedError(
            f"{directory}: tests/deploy/k8s.py does not render {sorted(unsupported)}"
        )
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        docs.extend(render(path) if path.is_dir() else load_documents(path))
    _generate_config_maps(directory, spec, docs)
    for entry in spec.get("patches", []):
        if set(entry) != {"path"}:
            raise NotImplementedError(f"{directory}: only `patches: - path: FILE` is rendered")
        for patch in load_documents(directory / entry["path"]):
            matches = [i for i, doc in enumerate(docs) if key(doc) == key(patch)]
            if len(matches) != 1:
                raise AssertionError(f"{directory}: patch {key(patch)} matches {len(matches)}")
            docs[matches[0]] = strategic_merge(docs[matches[0]], patch)
    return docs


def _generate_config_maps(directory: Path, spec: Doc, docs: list[Doc]) -> None:
    """configMapGenerator with files, as kustomize does it for deploy/k8s."""
    generators = spec.get("configMapGenerator", [])
    if not generators:
        return
    options = spec.get("generatorOptions", {})
    # A hashed name would roll the pods on every config edit instead of reloading; the
    # hash is not computed here, so a kustomization asking for one is refused.
    if set(options) != {"disableNameSuffixHash"} or options["disableNameSuffixHash"] is not True:
        raise NotImplementedError(f"{directory}: generatorOptions other than no name hash")
    for generator in generators:
        unsupported = set(generator) - _SUPPORTED_GENERATOR_KEYS
        if unsupported or set(generator.get("options", {})) - {"labels"}:
            raise NotImplementedError(f"{directory}: configMapGenerator {sorted(generator)}")
        name = generator["name"]
        data = {}
        for entry in generator["files"]:
            data_key, _, file = entry.rpartition("=")
            data[data_key or Path(file).name] = (directory / file).read_text(encoding="utf-8")
        labels = generator.get("options", {}).get("labels", {})
        behavior = generator.get("behavior", "create")
        matches = [i for i, doc in enumerate(docs) if key(doc) == ("ConfigMap", name)]
        if behavior == "create":
            assert not matches, f"{directory}: ConfigMap {name} generated twice"
            metadata: Doc = {"name": name, **({"labels": dict(labels)} if labels else {})}
            docs.append(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
            )
            continue
        if behavior not in ("replace", "merge") or len(matches) != 1:
            raise NotImplementedError(f"{directory}: configMapGenerator {name}: {behavior}")
        existing = copy.deepcopy(docs[matches[0]])
        existing["data"] = data if behavior == "replace" else {**existing.get("data", {}), **data}
        if labels:
            existing["metadata"]["labels"] = {**existing["metadata"].get("labels", {}), **labels}
        docs[matches[0]] = existing


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [doc for doc in docs if key(doc) == (kind, name)]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def containers(pod_spec: Doc) -> Iterator[Doc]:
    yield from pod_spec.get("initContainers", [])
    yield from pod_spec["containers"]


def container(pod_spec: Doc, name: str) -> Doc:
    """A container by name, a native sidecar (an init container) included."""
    (found,) = [c for c in containers(pod_spec) if c["name"] == name]
    return found


def example_secrets() -> list[Doc]:
    return [d for p in sorted(EXAMPLES.glob("*.yaml")) for d in load_documents(p)]


def with_example_secrets(docs: list[Doc]) -> list[Doc]:
    """What the cluster holds once the operator created the Secrets: a render plus the
    example Secrets (placeholders) the kustomizations leave out."""
    return [*docs, *example_secrets()]


def desk_pod(docs: list[Doc]) -> Doc:
    return one(docs, "Deployment", DESK_DEPLOYMENT)["spec"]["template"]


def port_number(container_doc: Doc, port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (found,) = [p for p in container_doc.get("ports", []) if p["name"] == port]
    return int(found["containerPort"])


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def secret_data(secret: Doc) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    data.update(secret.get("stringData", {}))
    return data


def sidecar_mounts(docs: list[Doc]) -> tuple[Path, str, Path, str]:
    """(config path, its ConfigMap, secret directory, its Secret) as the sidecar sees them."""
    pod = desk_pod(docs)["spec"]
    sidecar = container(pod, SIDECAR)
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_path = Path(
        next(e["value"] for e in sidecar["env"] if e["name"] == "TICKETLOG_SSO_CONFIG")
    )
    config_map = secret_dir = secret_name = None
    for mount in sidecar["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume and Path(mount["mountPath"]) == config_path.parent:
            config_map = volume["configMap"]["name"]
        if "secret" in volume:
            secret_dir, secret_name = Path(mount["mountPath"]), volume["secret"]["secretName"]
    assert config_map, "the sidecar mounts no ConfigMap beside its config path"
    assert secret_dir, "the sidecar mounts no Secret"
    assert secret_name
    return config_path, config_map, secret_dir, secret_name


def sidecar_config_text(docs: list[Doc]) -> str:
    config_path, config_map, _, _ = sidecar_mounts(docs)
    return one(docs, "ConfigMap", config_map)["data"][config_path.name]


# Not a mounted secret: the service-account token kubelet projects (workload identity).
PROJECTED_TOKEN_FIELD = "federated_token_file"


def secret_file_fields(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every `*_file` field of a config document: (field path, file path)."""
    if isinstance(node, dict):
        for name, value in node.items():
            where = f"{path}.{name}" if path else name
            if name == PROJECTED_TOKEN_FIELD:
                continue
            if name.endswith("_file"):
                yield where, value
            else:
                yield from secret_file_fields(value, where)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from secret_file_fields(value, f"{path}[{index}]")


def _rewrite_file_fields(node: Any, secret_dir: Path, local_dir: Path) -> Any:
    if isinstance(node, dict):
        out = {}
        for name, value in node.items():
            if name.endswith("_file") and name != PROJECTED_TOKEN_FIELD:
                out[name] = str(local_dir / Path(value).relative_to(secret_dir))
            else:
                out[name] = _rewrite_file_fields(value, secret_dir, local_dir)
        return out
    if isinstance(node, list):
        return [_rewrite_file_fields(v, secret_dir, local_dir) for v in node]
    return node


def local_sidecar_config(
    docs: list[Doc],
    workdir: Path,
    *,
    listen: str | None = None,
    admin_listen: str | None = None,
    secrets: dict[str, str] | None = None,
) -> Path:
    """The rendered ConfigMap's config, runnable here: the example Secret's keys (or
    SECRETS' values for some of them) written as files under WORKDIR/secrets and every
    `*_file` path pointed at them; optionally new listeners."""
    docs = docs if by_kind(docs, "Secret") else with_example_secrets(docs)
    _, _, secret_dir, secret_name = sidecar_mounts(docs)
    local_secrets = workdir / "secrets"
    local_secrets.mkdir(parents=True, exist_ok=True)
    values = {**secret_data(one(docs, "Secret", secret_name)), **(secrets or {})}
    for name, value in values.items():
        (local_secrets / name).write_text(value + "\n", encoding="utf-8")
    document = yaml.safe_load(sidecar_config_text(docs))
    document = _rewrite_file_fields(document, secret_dir, local_secrets)
    if listen:
        document["server"]["listen"] = listen
    if admin_listen:
        document["server"]["admin_listen"] = admin_listen
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return config


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
