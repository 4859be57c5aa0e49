"""The record format every stored record shares (sidecar/store/records.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sidecar.store.records import RecordFormat


@dataclass(frozen=True)
class Note:
    text: str
    tags: tuple[str, ...] = ()
    author: str | None = None


def _rename_body(data: dict[str, object]) -> dict[str, object]:
    data["text"] = data.pop("body")
    return data


NOTES = RecordFormat(
    Note, version=2, upgrades={0: _rename_body}, check=lambda n: isinstance(n.text, str)
)


def test_a_record_is_written_with_its_version_and_read_back() -> None:
    raw = NOTES.encode(Note("hello", author="ann"))
    assert json.loads(raw) == {"v": 2, "text": "hello", "tags": [], "author": "ann"}
    assert NOTES.decode(raw) == Note("hello", tags=[], author="ann")  # type: ignore[arg-type]


def test_a_record_from_before_versioning_is_upgraded() -> None:
    assert NOTES.decode(b'{"body": "old"}') == Note("old")


def test_a_record_from_a_newer_release_is_read_without_the_fields_it_added() -> None:
    assert NOTES.decode(b'{"v": 3, "text": "new", "pinned": true}') == Note("new")


def test_an_unreadable_record_is_none() -> None:
    for raw in (b"", b"not json", b"[1]", b'{"v": 2}', b'{"v": "2", "text": "x"}',
                b'{"v": 2, "text": 5}', b'{"v": -1, "text": "x"}'):  # fmt: skip
        assert NOTES.decode(raw) is None, raw
