"""The repository stands alone: a clone has every document its files point at."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO, repository_files

OUTSIDE = re.compile(r"\.\./shared|shared/docs|contract\.md|entra-reference\.md")
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def test_nothing_points_outside_the_repository() -> None:
    offenders = []
    for path in repository_files():
        if path.suffix in (".png", ".whl") or path == Path(__file__):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for match in OUTSIDE.finditer(line):
                # docs/entra-reference.md is the repository's own copy: links to it are fine.
                if match.group(0) == "entra-reference.md" and (
                    (path.parent / "entra-reference.md").is_file()
                    or "docs/entra-reference.md" in line
                ):
                    continue
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(
    "document",
    sorted(p for p in repository_files() if p.suffix == ".md"),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_relative_link_of_a_document_resolves(document: Path) -> None:
    for target, fragment in LINK.findall(document.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        linked = document.parent / target
        assert linked.exists(), f"{document.name}: {target} does not exist"
        if fragment and linked.suffix == ".md":
            assert fragment[1:] in _anchors(linked), f"{document.name}: {target}{fragment}"


def _anchors(document: Path) -> set[str]:
    """GitHub's anchors of a document's headings."""
    headings = re.findall(r"^#+ (.+)$", document.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
