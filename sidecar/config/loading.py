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

from sidecar.config import yaml_text
from sidecar.config.messages import describe
from sidecar.config.model import Config, TenantConfig, cross_field_problems
from sidecar.config.rules import checked_here, document_problems
from sidecar.config.yaml_text import YamlProblems
from sidecar.oidc.credentials import FEDERATED_TOKEN_ENV
from sidecar.pages.branding import LogoError, read_logo

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Fields that may be given as `<name>_file: /path` (a mounted Kubernetes Secret).
SECRET_FIELDS = frozenset({"client_secret", "password", "secret_keys", "redis_url"})
# A client certificate's PEM certificate and key (sso.client_certificate), given as
# certificate_file / private_key_file, are read the same way.
CERTIFICATE_FIELDS = frozenset({"certificate", "private_key"})
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


# What stands in for a secret file that --skip-secret-files left unread: long enough for
# every rule on secrets, and shaped like nothing a warning looks for.
UNREAD_SECRET = "unread-secret-file-" + "0" * 32


def _read_secret_files(
    node: Any, path: list[str | int], problems: list[str], unread: list[str] | None = None
) -> Any:
    """Secret files read into their fields. With ``unread`` (a list), a file that does not
    exist on this machine is not a problem: its field path and file are appended to it and
    a stand-in value is checked instead."""
    if isinstance(node, list):
        return [_read_secret_files(v, [*path, i], problems, unread) for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        key = str(key)
        base = key.removesuffix("_file")
        if key.endswith("_file") and base in SECRET_FIELDS | CERTIFICATE_FIELDS:
            where = field_path([*path, key])
            if base in node:
                problems.append(f"{where}: give either {base} or {key}, not both")
                continue
            if not isinstance(value, str):
                problems.append(f"{where}: must be a file path")
                continue
            if unread is not None and not Path(value).exists():
                unread.append(f"{where}: {value}")
                content = f"redis://{UNREAD_SECRET}" if base == "redis_url" else UNREAD_SECRET
            else:
                content = ""
            try:
                content = content or _read_text(value)
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
            out[key] = _read_secret_files(value, [*path, key], problems, unread)
        else:
            out[key] = value
    return out


def _federated_token_defaults(document: Any, env: Mapping[str, str], problems: list[str]) -> None:
    """``federated_token_file: ""`` names the file the Azure workload identity webhook
    announces in $AZURE_FEDERATED_TOKEN_FILE (contract: Client credentials)."""
    tenants = document.get("tenants") if isinstance(document, dict) else None
    for index, tenant in enumerate(tenants if isinstance(tenants, list) else ()):
        sso = tenant.get("sso") if isinstance(tenant, dict) else None
        if isinstance(sso, dict) and sso.get("federated_token_file") == "":
            path = env.get(FEDERATED_TOKEN_ENV, "")
            if path:
                sso["federated_token_file"] = path
            else:
                del sso["federated_token_file"]  # reported here, not again by the model
                problems.append(
                    f"tenants[{index}].sso.federated_token_file: empty, which means "
                    f"${FEDERATED_TOKEN_ENV}, but that environment variable is not set "
                    '(is the pod labelled azure.workload.identity/use: "true"?)'
                )


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
    error: ValidationError,
    already: list[str],
    rules: list[str],
    prefix: tuple[str | int, ...] = (),
) -> list[str]:
    """pydantic's errors as lines in the operator's words, minus the echoes of problems
    reported already (by the document's cross-field rules too). ``prefix``: where the
    validated part sits in the document (a tenant validated on its own)."""
    reported = [p.split(": ", 1)[0].removesuffix("_file") for p in already]
    reported_messages = {p.split(": ", 1)[-1] for p in rules}
    details = error.errors(include_url=False, include_input=False)
    # describe() reads the field's rules off the model: located from the document's top.
    details = [{**item, "loc": (*prefix, *item["loc"])} for item in details] if prefix else details
    items = [(field_path(item["loc"]), item["type"], describe(Config, item)) for item in details]
    problems = []
    for path, kind, message in items:
        if checked_here(message) or message in reported_messages:
            continue
        if any(_echoes(path, r) for r in reported):
            continue  # e.g. an unreadable secret file is not also "missing"
        if kind == "credential" and any(r.startswith(path + ".") for r in reported):
            continue  # "needs exactly one credential" only because its file was unreadable
        if kind == "too_short" and any(
            p.startswith(path + "[") for p in [*(i[0] for i in items), *reported]
        ):
            continue  # "tenants: at least 1 item" only because tenants[0] was invalid
        problems.append(f"{path}: {message}")
    return problems


_YAML_POSITION = re.compile(r"at line (\d+), column (\d+)")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TENANT_INDEX = re.compile(r"^tenants\[(\d+)\]")


def load_yaml(raw_text: str) -> Any:
    """The YAML document (YAML 1.2), or ConfigError naming what is wrong and where.

    yaml-rs parses in native code (a 10,000-tenant file in a fraction of the time of
    PyYAML's), with a key given twice in one mapping an error. Text it refuses, or that is
    not one mapping, is read again by the PyYAML reader of ``yaml_text``, whose messages
    say in words what is wrong (a tab, an unclosed quote, both lines of a duplicate key,
    several documents); the native parser's own message quotes the offending line, which
    may hold a secret, so of it only the position is passed on.
    """
    native = ""
    if _CONTROL_CHARACTER.search(raw_text) is None:  # the native parser lets some through
        try:
            document = yaml_rs.loads(
                raw_text, duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error
            )
        except yaml_rs.YAMLDecodeError as exc:
            native = str(exc)
        else:
            if isinstance(document, dict):
                return document
    try:
        explained = yaml_text.load_yaml(raw_text)
    except YamlProblems as problems:
        raise ConfigError(problems.problems) from None
    if not native:
        return explained  # not a mapping: the caller says so
    position = _YAML_POSITION.search(native)
    if native.startswith("duplicate mapping key"):
        where = " (a key is given twice in one mapping)"
    elif position:
        where = f" at line {position.group(1)}, column {position.group(2)}"
    else:
        where = ""
    raise ConfigError([f"(file): not valid YAML 1.2{where}"])


def _validate_tenants_one_by_one(
    document: dict[str, Any], problems: list[str], rules: list[str]
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
            found = _validation_problems(exc, earlier.get(index, []), rules, ("tenants", index))
            problems.extend(found)
    return {**document, "tenants": validated}, refused


def parse_config(
    raw_text: str, env: Mapping[str, str] | None = None, *, unread: list[str] | None = None
) -> Config:
    """Validate the YAML text of a config file; raises ConfigError with every problem.
    ``unread``: see _read_secret_files (check-config --skip-secret-files)."""
    document = load_yaml(raw_text)
    if not isinstance(document, dict):
        raise ConfigError(
            ["(file): the config must be a YAML mapping with server, session and tenants"]
        )
    return validate_document(document, env, unread=unread)


def validate_document(
    document: dict[str, Any],
    env: Mapping[str, str] | None = None,
    *,
    unread: list[str] | None = None,
) -> Config:
    """Validate a parsed config document; raises ConfigError with every problem."""
    env = os.environ if env is None else env
    problems: list[str] = []
    document = _interpolate(document, [], env, problems)
    rules = [f"{path}: {message}" for path, message in document_problems(document)]
    document = _read_secret_files(document, [], problems, unread)
    _federated_token_defaults(document, env, problems)
    problems.extend(f"{path}: {message}" for path, message in branding_file_problems(document))
    document, refused = _validate_tenants_one_by_one(document, problems, rules)
    config: Config | None = None
    try:
        config = Config.model_validate(document)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, problems, rules))
    problems.extend(rules)
    if refused:
        config = None  # the rules across tenants need the whole list, with its indexes
    if config is not None:
        problems.extend(f"{path}: {message}" for path, message in cross_field_problems(config))
    problems = list(dict.fromkeys(problems))  # a rule the model checks too is said once
    if problems or config is None:
        raise ConfigError(problems)
    return config


def branding_file_problems(document: Any) -> list[tuple[str, str]]:
    """Each tenant's logo file must be readable, a PNG or SVG, and at most 64 KiB.

    Judged on the document before validation, so it is reported together with every
    other problem of the file; a value that is not a .png or .svg path is left to the
    model, which says so.
    """
    problems: list[tuple[str, str]] = []
    tenants = document.get("tenants") if isinstance(document, dict) else None
    for index, tenant in enumerate(tenants if isinstance(tenants, list) else []):
        branding = tenant.get("branding") if isinstance(tenant, dict) else None
        logo = branding.get("logo_file") if isinstance(branding, dict) else None
        if not isinstance(logo, str) or not logo.lower().endswith((".png", ".svg")):
            continue
        try:
            read_logo(logo)
        except LogoError as exc:
            problems.append((f"tenants[{index}].branding.logo_file", str(exc)))
    return problems


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError([f"(file): cannot read {path}: {reason}"]) from None
    return parse_config(text, env)
