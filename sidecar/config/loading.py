"""Reading the config file: YAML, `${ENV}` interpolation, `*_file` secrets, validation.

Every problem is collected and reported at once, each with its field path
(`tenants[1].sso.client_id: not a GUID`), and no network is touched: network
checks belong to /readyz and `check-entra`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml_rs
from pydantic import ValidationError

from sidecar.config.model import Config, TenantConfig, cross_field_problems

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Fields that may be given as `<name>_file: /path` (a mounted Kubernetes Secret).
SECRET_FIELDS = frozenset({"client_secret", "password", "secret_keys", "redis_url"})
# Secret fields that hold a list: their file holds one value a line.
LIST_SECRET_FIELDS = frozenset({"client_secret", "secret_keys"})


class ConfigError(Exception):
    """An invalid configuration; ``problems`` holds one line each, with field paths."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[str]]]:
        # Raised in the process that loads the config at start-up, re-raised in `serve`.
        return (ConfigError, (self.problems,))


def field_path(parts: tuple[str | int, ...] | list[str | int]) -> str:
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _interpolate(
    node: Any, path: list[str | int], env: Mapping[str, str], problems: list[str]
) -> Any:
    if not _has_reference(node):
        return node  # nothing to replace below: the common case, and 10,000 tenants are big
    if isinstance(node, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                problems.append(f"{field_path(path)}: environment variable {name} is not set")
                return match.group(0)  # left as written, so no second, misleading error follows
            return env[name]

        return _ENV_REF.sub(replace, node)
    if isinstance(node, dict):
        return {k: _interpolate(v, [*path, str(k)], env, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, [*path, i], env, problems) for i, v in enumerate(node)]
    return node


def _has_reference(node: Any) -> bool:
    """Whether any string in ``node`` holds `${`; iterative, since it visits every node."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "${" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _read_text(path: str) -> str:
    """A small file's UTF-8 text, read with plain system calls: with one secret file a
    tenant, 10,000 of them are read at each load."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8")


def _read_secret_files(node: Any, path: list[str | int], problems: list[str]) -> Any:
    if isinstance(node, list):
        return [_read_secret_files(v, [*path, i], problems) for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        key = str(key)
        base = key.removesuffix("_file")
        if key.endswith("_file") and base in SECRET_FIELDS:
            where = field_path([*path, key])
            if base in node:
                problems.append(f"{where}: give either {base} or {key}, not both")
                continue
            if not isinstance(value, str):
                problems.append(f"{where}: must be a file path")
                continue
            try:
                content = _read_text(value)
            except (OSError, UnicodeDecodeError) as exc:
                # The path is the operator's; the content is never shown.
                reason = (
                    exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
                )
                problems.append(f"{where}: cannot read {value}: {reason}")
                continue
            if base in LIST_SECRET_FIELDS:
                out[base] = [line.strip() for line in content.splitlines() if line.strip()]
            else:
                out[base] = content.rstrip("\r\n")
        elif isinstance(value, dict | list):
            out[key] = _read_secret_files(value, [*path, key], problems)
        else:
            out[key] = value
    return out


_MESSAGES = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field (check the spelling against the contract)",
}


def _echoes(path: str, reported: str) -> bool:
    """A pydantic error at ``path`` repeats a problem reported at ``reported``: the same
    field, a field inside it, or the list it is an item of (`secret_keys` for
    `secret_keys[0]`)."""
    return (
        path == reported
        or path.startswith((reported + ".", reported + "["))
        or reported.startswith(path + "[")
    )


def _validation_problems(
    error: ValidationError, already: list[str], prefix: tuple[str | int, ...] = ()
) -> list[str]:
    """pydantic's errors as lines, minus the echoes of problems reported already."""
    reported = [p.split(": ", 1)[0].removesuffix("_file") for p in already]
    items = [
        (field_path((*prefix, *item["loc"])), item["type"], item["msg"])
        for item in error.errors(include_url=False, include_input=False)
    ]
    problems = []
    for path, kind, msg in items:
        if any(_echoes(path, r) for r in reported):
            continue  # e.g. an unreadable secret file is not also "missing"
        if kind == "too_short" and any(
            p.startswith(path + "[") for p in [*(i[0] for i in items), *reported]
        ):
            continue  # "tenants: at least 1 item" only because tenants[0] was invalid
        # pydantic prefixes custom messages raised in validators with "Value error, ".
        message = _MESSAGES.get(kind, msg).removeprefix("Value error, ")
        problems.append(f"{path}: {message}")
    return problems


_YAML_POSITION = re.compile(r"at line (\d+), column (\d+)")
_TENANT_INDEX = re.compile(r"^tenants\[(\d+)\]")


def load_yaml(raw_text: str) -> Any:
    """The YAML document (YAML 1.2), or ConfigError naming where it stops being YAML.

    yaml-rs parses in native code (a 10,000-tenant file in a fraction of the time of
    PyYAML's). A key given twice in one mapping is an error, not a silent override.
    The parser's own message quotes the offending line, which may hold a secret: only
    the position is passed on.
    """
    try:
        return yaml_rs.loads(raw_text, duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error)
    except yaml_rs.YAMLDecodeError as exc:
        message = str(exc)
        position = _YAML_POSITION.search(message)
        if message.startswith("duplicate mapping key"):
            where = " (a key is given twice in one mapping)"
        elif position:
            where = f" at line {position.group(1)}, column {position.group(2)}"
        else:
            where = ""
        raise ConfigError([f"(file): not valid YAML{where}"]) from None


def _validate_tenants_one_by_one(
    document: dict[str, Any], problems: list[str]
) -> tuple[dict[str, Any], bool]:
    """Validate each tenant on its own: the document with the valid ones as models, and
    whether any was refused.

    One pydantic call over 10,000 tenants holds the GIL for its whole length, and a
    reload validates in a thread beside the event loop: tenant by tenant, requests
    keep being served in between.
    """
    tenants = document.get("tenants")
    if not isinstance(tenants, list):
        return document, False
    earlier: dict[int, list[str]] = {}  # problems already reported, by tenant
    for problem in problems:
        if match := _TENANT_INDEX.match(problem):
            earlier.setdefault(int(match.group(1)), []).append(problem)
    validated: list[Any] = []
    refused = False
    for index, tenant in enumerate(tenants):
        try:
            validated.append(TenantConfig.model_validate(tenant))
        except ValidationError as exc:
            refused = True
            found = _validation_problems(exc, earlier.get(index, []), ("tenants", index))
            problems.extend(found)
    return {**document, "tenants": validated}, refused


def parse_config(raw_text: str, env: Mapping[str, str] | None = None) -> Config:
    """Validate the YAML text of a config file; raises ConfigError with every problem."""
    document = load_yaml(raw_text)
    if not isinstance(document, dict):
        raise ConfigError(
            ["(file): the config must be a YAML mapping with server, session and tenants"]
        )
    return validate_document(document, env)


def validate_document(document: dict[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed config document; raises ConfigError with every problem."""
    env = os.environ if env is None else env
    problems: list[str] = []
    document = _interpolate(document, [], env, problems)
    document = _read_secret_files(document, [], problems)
    document, refused = _validate_tenants_one_by_one(document, problems)
    config: Config | None = None
    try:
        config = Config.model_validate(document)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, problems))
    if refused:
        config = None  # the rules across tenants need the whole list, with its indexes
    if config is not None:
        problems.extend(f"{path}: {message}" for path, message in cross_field_problems(config))
    if problems or config is None:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError([f"(file): cannot read {path}: {reason}"]) from None
    return parse_config(text, env)
