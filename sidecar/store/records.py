"""One format for every record the sidecar keeps in the store or in a sealed cookie.

A record is a frozen dataclass written as a JSON object with a version field,
``{"v": 2, ...fields}``. Two rules keep replicas of different releases able to
read each other's records during a rolling deploy, and keep an upgrade from
logging everyone out:

* **Reading an older record**: a field it lacks takes the dataclass default, and
  an upgrade step registered for its version may rename or reshape fields first.
  Records written before versioning have no ``v`` and are version 0.
* **Reading a newer record**: fields this release does not know are ignored.
  A release may therefore add fields freely. Changing what an existing field
  means requires a new field name instead.

A record that cannot be read (not JSON, a required field missing, a field of the
wrong type) decodes to None, and every caller treats None as "no such record":
the sidecar fails closed and never guesses.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

R = TypeVar("R")

#: The field that carries a record's version; no record field may use this name.
VERSION_FIELD = "v"

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


class RecordFormat(Generic[R]):
    """How one kind of record (a dataclass) is written and read."""

    def __init__(
        self,
        record: type[R],
        *,
        version: int,
        upgrades: Mapping[int, Upgrade] | None = None,
        check: Callable[[R], bool] | None = None,
    ) -> None:
        """`upgrades[n]` turns a version-n record's fields into version n+1's.
        `check` refuses a decoded record whose field types are wrong (JSON gives back
        only what it was given, so a hand-edited or truncated record is caught here)."""
        if not dataclasses.is_dataclass(record):
            raise TypeError(f"{record.__name__} is not a dataclass")
        names = {f.name for f in dataclasses.fields(record) if f.init}
        if VERSION_FIELD in names:
            raise TypeError(f"{record.__name__} may not have a field named {VERSION_FIELD!r}")
        self.record = record
        self.version = version
        self._fields = frozenset(names)
        self._upgrades = dict(upgrades or {})
        self._check = check

    def encode(self, value: R) -> bytes:
        fields = {
            f.name: getattr(value, f.name)
            for f in dataclasses.fields(value)  # type: ignore[arg-type]
            if f.init
        }
        return json.dumps({VERSION_FIELD: self.version, **fields}).encode()

    def decode(self, raw: bytes | str) -> R | None:
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        version = data.pop(VERSION_FIELD, 0)
        if not isinstance(version, int) or version < 0:
            return None
        try:
            while version < self.version:
                upgrade = self._upgrades.get(version)
                if upgrade is not None:
                    data = upgrade(data)
                version += 1
            value = self.record(**{k: v for k, v in data.items() if k in self._fields})
        except (TypeError, ValueError, KeyError):
            return None
        if self._check is not None and not self._check(value):
            return None
        return value
