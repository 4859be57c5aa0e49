"""Configs with N SSO tenants, as one file or as a config directory.

    .venv/bin/python -m bench.tenant_configs N OUT [--directory] [--per-file 100]

Each tenant is what a TicketLog Pro customer's entry looks like: a custom
domain, the desk upstream, public and logout paths, and an Entra sso block
with a client secret read from a file (as a mounted Secret is). The main part
(server, session, email) is the same for every N, so the runs differ only in
the number of tenants.
"""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

import yaml

SESSION_KEY = "bench-session-key-" + "x" * 32


def tenant_entry(index: int, upstream: str, secret_file: Path) -> dict[str, Any]:
    """One SSO customer; its client secret in a file of its own (a mounted Secret)."""
    client_id = uuid.UUID(int=index + 1)
    return {
        "host": f"desk{index}.customer{index}.test",
        "upstream": upstream,
        "plan": "pro",
        "name": f"Customer {index} service desk",
        "public_paths": ["/assets/", "/favicon.ico"],
        "logout_paths": ["/logout"],
        "sso": {
            "tenant": f"customer{index}.onmicrosoft.com",
            "client_id": str(client_id),
            "client_secret_file": str(secret_file),
        },
    }


def main_document(listen: str, admin_listen: str) -> dict[str, Any]:
    return {
        "server": {"listen": listen, "admin_listen": admin_listen},
        "session": {"store": "memory", "secret_keys": [SESSION_KEY]},
        "email": {"backend": "console"},
    }


def write_config(
    out: Path,
    count: int,
    *,
    directory: bool,
    upstream: str = "http://127.0.0.1:9",
    listen: str = "127.0.0.1:0",
    admin_listen: str = "127.0.0.1:1",
    per_file: int = 100,
    extra: list[dict[str, Any]] | None = None,
) -> Path:
    """Write the config to ``out`` (a file, or a directory when ``directory``); returns
    the path to give to `-c`. ``extra`` tenants come first (e.g. one with a real desk)."""
    secrets_dir = out.parent / (out.name + ".secrets")
    secrets_dir.mkdir(parents=True, exist_ok=True)
    tenants = list(extra or [])
    for i in range(count - len(tenants)):
        secret_file = secrets_dir / f"customer{i}"
        secret_file.write_text(f"bench-client-secret-value-{i}\n")
        tenants.append(tenant_entry(i, upstream, secret_file))
    main = main_document(listen, admin_listen)
    if not directory:
        out.write_text(dump({**main, "tenants": tenants}))
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / "00-main.yaml").write_text(dump(main))
    for start in range(0, len(tenants), per_file):
        chunk = tenants[start : start + per_file]
        name = out / f"tenants-{start // per_file:05d}.yaml"
        name.write_text(dump({"tenants": chunk}))
    return out


def dump(document: Any) -> str:
    """YAML text, written by libyaml (PyYAML's own emitter needs minutes for 100,000)."""
    return yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--directory", action="store_true")
    parser.add_argument("--per-file", type=int, default=100)
    args = parser.parse_args()
    path = write_config(args.out, args.count, directory=args.directory, per_file=args.per_file)
    print(path)


if __name__ == "__main__":
    main()
