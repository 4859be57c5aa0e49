"""Reading the YAML text of a config: duplicate keys refused, errors said in plain words.

PyYAML keeps the last of two equal keys silently, so a second `tenants:` (or a
second `client_secret:`) would replace the first without a word; here each one
is a problem naming both lines. A syntax error names its line and column and
says what is wrong in the terms an operator edits with (a tab, an unclosed
quote), not the scanner's.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node


class YamlProblems(Exception):
    """The text is not a usable YAML document; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that records every duplicate key of a mapping instead of keeping the last."""

    duplicates: list[str]

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[object, int] = {}
            for key_node, _ in node.value:
                try:
                    key = self.construct_object(key_node, deep=True)
                    hash(key)
                except (ConstructorError, TypeError):
                    continue  # the base class reports an unusable key itself
                line = key_node.start_mark.line + 1
                if key in seen:
                    self.duplicates.append(
                        f"line {line}: duplicate key {key!r} (first at line {seen[key]}): "
                        "YAML would keep only the last one; remove or merge one of them"
                    )
                else:
                    seen[key] = line
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def _plain_words(error: yaml.MarkedYAMLError) -> str:
    """What went wrong, in the words of someone editing the file."""
    problem = error.problem or ""
    context = error.context or ""
    if "'\\t'" in problem or "\\t" in problem:
        return "a tab character: YAML indents with spaces only"
    if "quoted scalar" in context:
        opened = error.context_mark
        where = f" (opened at line {opened.line + 1}, column {opened.column + 1})" if opened else ""
        if "end of stream" in problem:
            return f"a quoted string is never closed{where}"
        return f"a quoted string is not closed where it should be{where}"
    if "flow sequence" in context or "flow mapping" in context:
        bracket = "[" if "sequence" in context else "{"
        opened = error.context_mark
        where = f" (opened at line {opened.line + 1}, column {opened.column + 1})" if opened else ""
        return f"a '{bracket}' is never closed, or a value in it is malformed{where}"
    if "mapping values are not allowed" in problem:
        return "a ': ' inside a value: quote the value, or fix the indentation of this line"
    if "expected <block end>" in problem or "did not find expected key" in problem:
        return "the indentation of this line does not line up with the lines above it"
    if "found character" in problem and "cannot start any token" in problem:
        return f"{problem}: quote the value"
    return problem or "not valid YAML"


def load_yaml(text: str) -> Any:
    """The one document of ``text`` (None when empty); raises YamlProblems with every
    duplicate key, the syntax error with its line and column, or several documents."""
    documents = load_all_yaml(text)
    if len(documents) > 1:
        raise YamlProblems(
            ["(file): several YAML documents (separated by ---): a config file holds one"]
        )
    return documents[0] if documents else None


def load_all_yaml(text: str) -> list[Any]:
    """Every document of a multi-document text (a Kubernetes manifest), same rules."""
    documents: list[Any] = []
    try:
        # The reader refuses control characters as soon as it is made.
        loader = _StrictLoader(text)
        loader.duplicates = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            documents.append(loader.get_data())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise YamlProblems([f"(file): not valid YAML: {where}{_plain_words(exc)}"]) from None
    except yaml.reader.ReaderError as exc:
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise YamlProblems(
            [
                f"(file): not valid YAML: line {line}, column {column}: a control character "
                f"(code {code:#x}), which YAML text may not hold"
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblems([f"(file): not valid YAML: {exc}"]) from None
    loader.dispose()
    if loader.duplicates:
        raise YamlProblems([f"(file): {line}" for line in loader.duplicates])
    return documents
