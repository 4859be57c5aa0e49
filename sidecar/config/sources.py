"""Where the config comes from: one file, or a directory of files that together form it.

`-c DIR` (contract: "Reload, and files the config names"): every `*.yaml` and
`*.yml` directly in DIR, in name order, names starting with `.` skipped (the
`..data` and `..2026_...` entries of a Kubernetes projected volume). Exactly one
file holds server, session, signup and email; any file may hold a `tenants`
list, and the lists are joined. Every problem names its file, and a host given in
two files names both.

The loader also returns every file the config names (`*_file` fields), so that
the watcher can reload when a mounted Secret is rotated.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.config.loading import ConfigError, load_yaml, validate_document
from sidecar.config.model import Config

# Sections only the main file may hold.
MAIN_SECTIONS = ("server", "session", "signup", "email")
CONFIG_SUFFIXES = (".yaml", ".yml")
# A file named by the config that is read at each use, not at load: never watched.
_READ_AT_USE = frozenset({"federated_token_file"})

_TENANT_REF = re.compile(r"tenants\[(\d+)\]")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


# What a file looked like when it was read: device, inode, size and modification
# time, the target's (a symlink is followed), so a Kubernetes symlink swap counts as
# a change; None when it cannot be read.
FileState = tuple[int, int, int, int] | None
Signature = tuple[tuple[str, FileState], ...]


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    source: Path  # what -c named: a file or a directory
    # Every file the config names (`*_file`), read at load: watched with the source.
    named_files: tuple[str, ...]
    # The source and the named files as they were just before they were read.
    signature: Signature


def file_state(path: str | Path) -> FileState:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def files_signature(paths: Iterable[str | Path]) -> Signature:
    return tuple((str(path), file_state(path)) for path in paths)


def source_signature(source: Path) -> Signature:
    """The config file, or the directory's config files (a file added or removed counts)."""
    if source.is_dir():
        try:
            return files_signature([source, *config_files(source)])
        except OSError:
            return ((str(source), None),)
    return files_signature([source])


def current_signature(loaded: LoadedConfig) -> Signature:
    """The signature the source and the named files of ``loaded`` have now."""
    return source_signature(loaded.source) + files_signature(loaded.named_files)


def config_files(directory: Path) -> list[Path]:
    """The files of a config directory, in name order (hidden entries skipped)."""
    return sorted(
        entry
        for entry in directory.iterdir()
        if not entry.name.startswith(".")
        and entry.name.endswith(CONFIG_SUFFIXES)
        # A projected volume's files are links: followed. A dangling one is kept, so
        # that reading it fails loudly instead of its tenants quietly going missing.
        and (entry.is_file() or (entry.is_symlink() and not entry.is_dir()))
    )


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a config is read.

    Reading allocates hundreds of thousands of objects that all live on; each
    allocation burst would start a collection that walks them all again, both
    slowing the load and pausing the event loop's thread as long as the walk
    takes. Nothing read here forms garbage cycles: reference counting frees it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load(
    path: str | Path, env: Mapping[str, str] | None = None, *, unread: list[str] | None = None
) -> LoadedConfig:
    """The config at ``path`` (a file or a directory); ConfigError lists every problem.
    ``unread``: secret files not on this machine are listed there instead of being a
    problem (check-config --skip-secret-files; loading.validate_document)."""
    with collector_paused():
        return _load(Path(path), env, unread)


def _load(
    source: Path, env: Mapping[str, str] | None, unread: list[str] | None = None
) -> LoadedConfig:
    before = source_signature(source)
    if source.is_dir():
        documents = _read_directory(source)
    else:
        documents = [(None, _read_document(source, None))]
        if not isinstance(documents[0][1], dict):
            raise ConfigError(
                ["(file): the config must be a YAML mapping with server, session and tenants"]
            )
    named = tuple(dict.fromkeys(f for _, d in documents for f in named_files(d, env)))
    # Taken before the named files are read: a rotation during the load is seen next time.
    signature = before + files_signature(named)
    if source.is_dir():
        config = _join_directory(source, documents, env, unread)
    else:
        config = validate_document(documents[0][1], env, unread=unread)
    return LoadedConfig(config, source, named, signature)


def _read_document(file: Path, label: str | None) -> Any:
    """The parsed YAML of one file; problems carry ``label: `` in front (directory form)."""
    prefix = f"{label}: " if label else ""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError([f"{prefix}(file): cannot read {file}: {reason}"]) from None
    try:
        return load_yaml(text)
    except ConfigError as exc:
        raise ConfigError([prefix + problem for problem in exc.problems]) from None


@dataclass
class _Origins:
    """Which file each part of the joined document came from."""

    directory: str
    sections: dict[str, str]
    tenants: list[tuple[str, int]]  # per joined index: (file label, index in that file)

    @property
    def main(self) -> str:
        """The file holding server/session/signup/email (the directory when none does)."""
        found = [self.sections[s] for s in MAIN_SECTIONS if s in self.sections]
        return found[0] if found else self.directory

    def tenant(self, index: int) -> str:
        if index < len(self.tenants):
            label, local = self.tenants[index]
            return f"{label}: tenants[{local}]"
        return f"tenants[{index}]"

    def locate(self, problem: str) -> str:
        """`tenants[12].sso.client_id: ...` -> `tenants.d/b.yaml: tenants[2].sso.client_id: ...`"""
        path, sep, message = problem.partition(": ")
        head = re.split(r"[.\[]", path, maxsplit=1)[0]
        if head == "tenants" and (match := _TENANT_REF.match(path)):
            located = self.tenant(int(match.group(1))) + path[match.end() :]
            # "duplicate host ... (also tenants[3])": the other file too.
            message = _TENANT_REF.sub(lambda m: self.tenant(int(m.group(1))), message)
            return located + sep + message
        if head in self.sections:
            return f"{self.sections[head]}: {problem}"
        return f"{self.main if head in MAIN_SECTIONS else self.directory}: {problem}"


def _read_directory(directory: Path) -> list[tuple[str | None, Any]]:
    """Each config file of the directory: (its label in problems, its parsed document)."""
    files = config_files(directory)
    if not files:
        raise ConfigError([f"{directory}: no *.yaml or *.yml file in the directory"])
    problems: list[str] = []
    documents: list[tuple[str | None, Any]] = []
    for file in files:
        label = str(directory / file.name)
        try:
            document = _read_document(file, label)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if document is None:
            continue  # an empty file (or comments only) adds nothing
        if not isinstance(document, dict):
            problems.append(f"{label}: (file): must be a YAML mapping (tenants: [...])")
            continue
        documents.append((label, document))
    if problems:
        raise ConfigError(problems)
    return documents


def _join_directory(
    directory: Path,
    documents: list[tuple[str | None, Any]],
    env: Mapping[str, str] | None,
    unread: list[str] | None = None,
) -> Config:
    """One config from the directory's documents; every problem names its file."""
    problems: list[str] = []
    joined: dict[str, Any] = {}
    tenants: list[Any] = []
    origins = _Origins(str(directory), {}, [])
    for label, document in documents:
        assert label is not None
        for key, value in document.items():
            key = str(key)
            if key == "tenants":
                if not isinstance(value, list):
                    problems.append(f"{label}: tenants: must be a list of tenants")
                    continue
                tenants.extend(value)
                origins.tenants.extend((label, i) for i in range(len(value)))
            elif key in origins.sections:
                problems.append(
                    f"{label}: {key}: also in {origins.sections[key]}; server, session, "
                    "signup and email belong in one file"
                )
            else:
                origins.sections[key] = label
                joined[key] = value
    mains = sorted({origins.sections[s] for s in MAIN_SECTIONS if s in origins.sections})
    if len(mains) > 1:
        problems.append(
            f"{directory}: server, session, signup and email belong in one file, "
            f"found in {' and '.join(mains)}"
        )
    joined["tenants"] = tenants
    skipped: list[str] | None = None if unread is None else []
    try:
        config = validate_document(joined, env, unread=skipped)
    except ConfigError as exc:
        problems.extend(origins.locate(p) for p in exc.problems)
        raise ConfigError(problems) from None
    if unread is not None and skipped:
        unread.extend(origins.locate(entry) for entry in skipped)  # each names its file
    if problems:
        raise ConfigError(problems)
    return config


def named_files(document: Any, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Every file path the document names in a `*_file` field (a mounted Secret, a
    certificate, a logo), `${ENV}` references resolved where they can be."""
    found: list[str] = []
    stack = [document]
    while stack:  # iterative: it visits every node of 10,000 tenants
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str):
                    if value and str(key).endswith("_file") and key not in _READ_AT_USE:
                        found.append(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    for value in dict.fromkeys(reversed(found)):
        yield _resolve_env(value, env)


def _resolve_env(value: str, env: Mapping[str, str] | None) -> str:
    if "${" not in value:
        return value
    names = os.environ if env is None else env
    return _ENV_REF.sub(lambda m: names.get(m.group(1), m.group(0)), value)
