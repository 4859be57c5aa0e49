"""Property tests: parsers of untrusted input never raise unexpectedly and keep their invariants."""

from __future__ import annotations

from urllib.parse import unquote

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.auth.redirects import safe_redirect_target
from sidecar.config.loading import ConfigError, parse_config
from sidecar.cookies import split_cookies
from sidecar.headers import encode_header_value
from sidecar.paths import matches_prefix, normalized_path
from sidecar.secret_keys import DerivedKeys
from sidecar.tenants import BadHost, parse_host

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = DerivedKeys(["f" * 40, "g" * 40])
URL_PIECES = [*"/\\.%:;?#@ \t\r\n\x00aZ09-_~", "%2F", "%2e", "%5C", "%09", "//", "..", "é", "田"]
url_text = st.lists(st.sampled_from(URL_PIECES), max_size=30).map("".join)


@FAST
@given(st.lists(st.text(max_size=80), max_size=3))
def test_host_parsing_accepts_or_refuses_cleanly(values: list[str]) -> None:
    try:
        host = parse_host(values)
    except BadHost:
        return
    assert len(values) == 1
    assert host.name == host.name.lower()
    assert not host.name.endswith(".")
    assert ":" not in host.name or host.name.startswith("[")


@FAST
@given(st.one_of(st.none(), st.text(max_size=200), url_text))
def test_rd_is_always_a_same_host_path(rd: str | None) -> None:
    target = safe_redirect_target(rd)
    for form in (target, unquote(target), unquote(unquote(target))):
        assert form.startswith("/")
        assert not form.startswith("//")
        assert "\\" not in form
        assert not any(ord(c) < 0x21 or ord(c) == 0x7F for c in form)
    assert target == "/" or target == rd


@FAST
@given(url_text)
def test_public_path_match_implies_a_clean_path_under_the_prefix(raw: str) -> None:
    path = "/" + raw
    public = matches_prefix(path, ("/assets/",))
    normal = normalized_path(path)
    if public:
        assert normal is not None
        assert normal.startswith("/assets/")
        assert "/../" not in normal
        assert "/./" not in normal
        assert "?" not in path.split("?", 1)[0]


@FAST
@given(st.text(max_size=300))
def test_cookie_values_never_verify_unless_signed(value: str) -> None:
    session_id = KEYS.verify_cookie(value)
    if session_id is not None:
        assert (
            KEYS.sign_cookie(session_id) == value
            or DerivedKeys(["g" * 40]).sign_cookie(session_id) == value
        )


@FAST
@given(
    st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", max_size=60
    )
)
def test_signed_cookies_round_trip(session_id: str) -> None:
    if not session_id:
        return
    assert KEYS.verify_cookie(KEYS.sign_cookie(session_id)) == session_id


@FAST
@given(st.text(max_size=300))
def test_cookie_header_filtering_never_keeps_ours(header: str) -> None:
    for scheme, session in (("http", "x"), ("https", "y")):
        kept, ours = split_cookies([header, "tlsso=x; __Host-tlsso=y"], scheme)
        if "tlsso" not in header:  # else the header's own may come first
            assert ours["tlsso"] == session
        assert all(
            not p.split("=", 1)[0].strip().startswith(("tlsso", "__Host-tlsso"))
            for p in kept.split(";")
            if p
        )


COOKIE_PIECES = ["tlsso", "__Host-tlsso", "tlsso_tx_1", "sid", "=", ";", " ", '"', "v", "\t"]


def _pairs(header: str) -> list[str]:
    return [pair.strip() for pair in header.split(";") if pair.strip()]


@FAST
@given(st.lists(st.sampled_from(COOKIE_PIECES), max_size=12).map("".join))
def test_a_single_cookie_line_is_split_as_the_general_path_splits_it(header: str) -> None:
    # One line takes split_cookies' shortcuts; with a second, empty line it takes the loop.
    for scheme in ("http", "https"):
        kept, ours = split_cookies([header], scheme)
        general_kept, general_ours = split_cookies([header, ""], scheme)
        assert ours == general_ours
        assert _pairs(kept) == _pairs(general_kept)


@FAST
@given(st.text(max_size=100))
def test_header_values_are_printable_ascii_and_reversible(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates never come out of a validated ID token
    encoded = encode_header_value(value)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert unquote(encoded, errors="strict") == value


def config_problems(text: str) -> list[str]:
    """Every outcome is a config or a non-empty list of problems; nothing else escapes."""
    try:
        parse_config(text, env={})
    except ConfigError as exc:
        problems = exc.problems
    else:
        return []
    assert problems, "a refused config must say why"
    return problems


config_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@FAST
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "server": config_values,
            "session": config_values,
            "tenants": config_values,
            "signup": config_values,
            "email": config_values,
        },
    )
)
def test_config_loading_reports_problems_never_crashes(document: dict[str, object]) -> None:
    problems = config_problems(yaml.safe_dump(document))
    assert all(isinstance(p, str) and ": " in p for p in problems)


@FAST
@given(st.text(max_size=200))
def test_config_loading_survives_arbitrary_text(text: str) -> None:
    config_problems(text)
