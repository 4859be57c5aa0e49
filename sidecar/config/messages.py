"""Validation errors in the operator's words: no library jargon, a suggestion for a typo.

pydantic describes a problem in terms of Python types ("Input should be a valid
tuple"); an operator editing YAML needs to know what to write instead. Each
error kind the config can produce gets a sentence here; a field name that is
not known gets the closest known name (or the list of names allowed there).
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

# Fields that may be given as `<name>_file`; kept in step with loading.SECRET_FIELDS.
_FILE_FORMS = frozenset({"client_secret", "password", "secret_keys", "redis_url"})


def _plural(count: object, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _choices(expected: object) -> str:
    """pydantic's "'memory' or 'redis'" as "memory, redis"."""
    text = str(expected).replace("' or '", ", ").replace("', '", ", ")
    return text.strip("'")


def _sentence(error: ErrorDetails) -> str | None:
    """The operator's sentence for an error kind, or None to keep the validator's own message."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    sentences = {
        "missing": "required field is missing",
        "tuple_type": "must be a list (e.g. [a, b], or one '- item' a line)",
        "list_type": "must be a list (e.g. [a, b], or one '- item' a line)",
        "too_short": f"needs at least {_plural(ctx.get('min_length', 1), 'entry')}",
        "too_long": f"takes at most {_plural(ctx.get('max_length', 1), 'entry')}",
        "string_type": "must be text",
        "int_type": "must be a whole number",
        "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "model_type": "must be a block of fields (name: value lines)",
        "model_attributes_type": "must be a block of fields (name: value lines)",
        "dict_type": "must be a block of fields (name: value lines)",
        "literal_error": f"must be one of: {_choices(ctx.get('expected', ''))}",
        "greater_than": f"must be greater than {ctx.get('gt')}",
        "greater_than_equal": f"must be at least {ctx.get('ge')}",
        "less_than": f"must be less than {ctx.get('lt')}",
        "less_than_equal": f"must be at most {ctx.get('le')}",
        "ip_v4_network": "not an IP address or CIDR network",
        "ip_v6_network": "not an IP address or CIDR network",
        "ip_any_network": "not an IP address or CIDR network",
        "string_too_short": "must not be empty",
    }
    return sentences.get(kind)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class inside an annotation such as `SsoConfig | None` or `tuple[T, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_of(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, tuple, list):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def model_at(root: type[BaseModel], location: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose fields are valid at ``location`` (list indexes skipped)."""
    model: type[BaseModel] | None = root
    for part in location:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        model = _model_of(field.annotation) if field is not None else None
    return model


def known_names(model: type[BaseModel]) -> list[str]:
    """The YAML keys a block accepts: field names (or their aliases) and `*_file` forms."""
    names = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        names.append(key)
        if key in _FILE_FORMS:
            names.append(f"{key}_file")
    return names


def unknown_field(root: type[BaseModel], location: tuple[int | str, ...]) -> str:
    """'unknown field' with the closest known name, or the names allowed there."""
    name = str(location[-1]) if location else ""
    model = model_at(root, location[:-1])
    if model is None:
        return "unknown field"
    names = known_names(model)
    close = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)
    if close:
        return f"unknown field (did you mean {close[0]}?)"
    return "unknown field (the fields allowed here: " + ", ".join(names) + ")"


def describe(root: type[BaseModel], error: ErrorDetails) -> str:
    """One error as the operator reads it (without the field path)."""
    if error["type"] == "extra_forbidden":
        return unknown_field(root, tuple(error["loc"]))
    sentence = _sentence(error)
    if sentence is not None:
        return sentence
    # The project's own validators raise readable messages; pydantic prefixes those
    # raised as ValueError with "Value error, ".
    return error["msg"].removeprefix("Value error, ")
