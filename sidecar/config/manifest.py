"""The sidecar config inside a Kubernetes ConfigMap manifest (`check-config` on it).

An operator reviewing a change has the manifest at hand (`configmap.yaml`, or
the whole `kubectl kustomize` output), not the file the pod will see: every
`*.yaml`/`*.yml` key of every ConfigMap in it is checked as a config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sidecar.config.yaml_text import YamlProblems, load_all_yaml

# `kind: ConfigMap` in any YAML or JSON spelling. A text without it is a config file,
# and is not parsed here: this parser builds every node in Python (PyYAML, for its
# exact problem positions), many times slower than the config's own parser on a
# config of thousands of tenants.
_CONFIG_MAP_KIND = re.compile(r"""["']?kind["']?\s*:\s*["']?ConfigMap\b""")


@dataclass(frozen=True)
class EmbeddedConfig:
    label: str  # e.g. "ConfigMap ticketlog-sso-config, key config.yaml"
    text: str


def embedded_configs(text: str) -> list[EmbeddedConfig] | None:
    """The configs held by the ConfigMaps of a manifest; None when the text holds no
    ConfigMap (it is then a config file itself). Raises YamlProblems for bad YAML."""
    if not _CONFIG_MAP_KIND.search(text):
        return None
    try:
        documents = load_all_yaml(text)
    except YamlProblems:
        if "kind: ConfigMap" not in text:
            return None  # a plain config file: its own parse reports the problem
        raise
    maps = [d for d in documents if isinstance(d, dict) and d.get("kind") == "ConfigMap"]
    if not maps:
        return None
    found = []
    for config_map in maps:
        name = str((config_map.get("metadata") or {}).get("name", "?"))
        data = config_map.get("data") or {}
        for key, value in data.items():
            if str(key).endswith((".yaml", ".yml")) and isinstance(value, str):
                found.append(EmbeddedConfig(f"ConfigMap {name}, key {key}", value))
    return found
