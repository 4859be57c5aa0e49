"""Public-path matching and Host parsing, by the contract's rules."""

from __future__ import annotations

import pytest

from sidecar.paths import matches_prefix
from sidecar.tenants import BadHost, parse_host

PUBLIC = ("/assets/", "/public")


@pytest.mark.parametrize(
    ("raw", "public"),
    [
        ("/assets/app.css", True),
        ("/assets/app.css?v=1", True),
        ("/public", True),
        ("/assets/caf%C3%A9.png", True),
        ("/admin?x=/assets/", False),
        ("/admin#/assets/", False),
        ("/assets/../admin", False),
        ("/assets/./app.css", False),
        ("/assets%2f..%2fadmin", False),
        ("/assets%2F..%2Fadmin", False),
        ("/assets/%2e%2e/admin", False),
        ("/assets/%252e%252e/admin", False),
        ("/assets\\..\\admin", False),
        ("/assets/%5c..%5cadmin", False),
        ("/assets/x;jsessionid=1", False),
        ("/ASSETS/app.css", False),
        ("/Assets/app.css", False),
        ("/assets/%FF", False),
        ("/admin", False),
        ("assets/app.css", False),
    ],
)
def test_public_path_rule(raw: str, public: bool) -> None:
    assert matches_prefix(raw, PUBLIC) is public


@pytest.mark.parametrize(
    ("values", "name", "port"),
    [
        (["desk.contoso.com"], "desk.contoso.com", None),
        (["DESK.Contoso.com."], "desk.contoso.com", None),
        (["desk.contoso.com:8443"], "desk.contoso.com", "8443"),
        (["[::1]:8080"], "[::1]", "8080"),
    ],
)
def test_host_is_normalised(values: list[str], name: str, port: str | None) -> None:
    host = parse_host(values)
    assert (host.name, host.port) == (name, port)


@pytest.mark.parametrize(
    "values", [[], [""], ["a.test", "a.test"], ["a.test/x"], ["a.test:port"], ["a b"], ["."]]
)
def test_bad_host_headers_are_refused(values: list[str]) -> None:
    with pytest.raises(BadHost):
        parse_host(values)
