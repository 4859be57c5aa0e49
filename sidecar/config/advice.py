"""Warnings: what a valid config allows but is probably a mistake.

`check-config` prints these and still exits 0; `serve` logs each one as a
`config_warning` event at start. Secret values are looked at, never shown.
"""

from __future__ import annotations

import re

from pydantic import SecretStr

from sidecar.config.model import GUID, Config

# Placeholders left over from an example (REPLACE-ME, CHANGE_ME, <your-secret>, TODO...).
_PLACEHOLDER = re.compile(
    r"replace[-_ ]?me|change[-_ ]?me|\bTODO\b|\bFIXME\b|<[a-z][a-z _-]*>", re.IGNORECASE
)

# What every match of _PLACEHOLDER holds, in lower case.
_PLACEHOLDER_WORDS = ("replace", "change", "todo", "fixme", "<")

MEMORY_STORE = (
    "memory keeps sessions, sign-ins in progress, verification codes and every "
    "user's first-login account in this process: all are lost at each restart or rollout "
    "(users go through signup again), and only one replica may run; use store redis "
    "beyond one-replica development"
)


def _strings(node: object, path: str) -> list[tuple[str, str]]:
    """Every text value of the config with its field path (secrets included, unwrapped)."""
    if isinstance(node, SecretStr):
        return [(path, node.get_secret_value())]
    if isinstance(node, str):
        return [(path, node)]
    if isinstance(node, dict):
        return [
            item
            for key, value in node.items()
            for item in _strings(value, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(node, list | tuple):
        return [
            item for index, value in enumerate(node) for item in _strings(value, f"{path}[{index}]")
        ]
    return []


def _texts(node: object) -> list[str]:
    """The text values of _strings, without their field paths."""
    texts: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, SecretStr):
            texts.append(item.get_secret_value())
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return texts


def config_warnings(config: Config) -> list[str]:
    """Each warning as `field path: message`, in the order of the file."""
    warnings: list[str] = []
    if config.session.store == "memory":
        warnings.append(f"session.store: {MEMORY_STORE}")
    dumped = config.model_dump(by_alias=True)
    # With thousands of tenants, the search below and naming each text's field path
    # cost a noticeable part of start-up: first a plain look over all the text at once
    # for the words a placeholder needs, which most configs do not hold anywhere.
    everything = "\n".join(_texts(dumped)).lower()
    if any(word in everything for word in _PLACEHOLDER_WORDS):
        for path, value in _strings(dumped, ""):
            if _PLACEHOLDER.search(value):
                warnings.append(
                    f"{path}: looks like a placeholder from an example; put the real value"
                )
    for index, tenant in enumerate(config.tenants):
        if tenant.sso is None:
            continue
        where = f"tenants[{index}].sso"
        for number, secret in enumerate(tenant.sso.client_secret):
            if GUID.match(secret.get_secret_value().strip()):
                warnings.append(
                    f"{where}.client_secret[{number}]: looks like the secret's ID (a GUID), not "
                    "its Value: Entra shows the Value once, next to the Secret ID, when the "
                    "secret is created (Certificates & secrets)"
                )
        if tenant.sso.authority.startswith("http://"):
            warnings.append(
                f"{where}.authority: http:// sends sign-in traffic unencrypted; only a local "
                "test identity provider should be reached that way"
            )
    email = config.email
    if email is not None and email.backend == "console" and config.sso_tenants:
        warnings.append(
            "email.backend: console writes verification codes to the log instead of mailing "
            "them: development only, never with real users' SSO tenants"
        )
    return warnings
