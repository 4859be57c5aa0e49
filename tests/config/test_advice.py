"""Placeholder warnings: the quick look over all the text never hides a placeholder."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidecar.config.advice import _PLACEHOLDER, _PLACEHOLDER_WORDS, config_warnings
from sidecar.config.loading import validate_document
from tests.config.test_config import ENV, edited

_PIECES = st.sampled_from(
    ["Replace", "-", "_", " ", "me", "ME", "change", "CHANGE", "todo", "FixMe", "<", ">", "a", "x"]
)


@given(st.lists(_PIECES | st.text(max_size=3), max_size=8).map("".join))
def test_every_placeholder_holds_one_of_the_words_looked_for(text: str) -> None:
    if _PLACEHOLDER.search(text):
        assert any(word in text.lower() for word in _PLACEHOLDER_WORDS)


def test_a_placeholder_in_any_tenant_is_named_by_its_field() -> None:
    document = edited("tenants.0.name", "Contoso desk")
    others = [
        {"host": f"desk{i}.example.com", "upstream": "http://127.0.0.1:3000"} for i in range(50)
    ]
    others[37]["name"] = "<your desk name>"
    index = len(document["tenants"]) + 37
    document["tenants"].extend(others)
    placeholders = [
        w for w in config_warnings(validate_document(document, ENV)) if "placeholder" in w
    ]
    assert placeholders == [
        f"tenants[{index}].name: looks like a placeholder from an example; put the real value"
    ]


def test_a_config_without_placeholders_has_no_such_warning() -> None:
    warnings = config_warnings(validate_document(edited("tenants.0.name", "Contoso"), ENV))
    assert not any("placeholder" in w for w in warnings)
