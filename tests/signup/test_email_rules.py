"""Typed email addresses and the tenant's allowed domains."""

from __future__ import annotations

import pytest

from sidecar.signup.email_rules import InvalidEmail, domain_allowed, normalize_typed_email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("evelyne@contoso.com", "evelyne@contoso.com"),
        ("  Evelyne.Martin@Contoso.COM \n", "Evelyne.Martin@contoso.com"),
        ("a+tag@sub.contoso.co.uk", "a+tag@sub.contoso.co.uk"),
        ("x@bücher.de", "x@xn--bcher-kva.de"),
    ],
)
def test_valid(raw: str, expected: str) -> None:
    assert normalize_typed_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "no-at-sign",
        "two@@contoso.com",
        "a b@contoso.com",
        "x@localhost",
        "Évelyne <e@contoso.com>",
        '"x@contoso.com"@evil.example',
        "x@[127.0.0.1]",
        "é@contoso.com",
        "x@contoso.com\r\nBcc: evil@example.com",
        "a" * 250 + "@contoso.com",
    ],
)
def test_invalid(raw: str) -> None:
    with pytest.raises(InvalidEmail) as info:
        normalize_typed_email(raw)
    assert info.value.message
    assert isinstance(info.value, ValueError)


def test_no_dns_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    assert normalize_typed_email("x@does-not-exist.invalid-tld-zz") == (
        "x@does-not-exist.invalid-tld-zz"
    )


def test_domain_allowed() -> None:
    allowed = ["contoso.com", "Fabrikam.COM"]
    assert domain_allowed("a@contoso.com", allowed)
    assert domain_allowed("a@CONTOSO.com", allowed)
    assert domain_allowed("a@fabrikam.com", allowed)
    assert not domain_allowed("a@mail.contoso.com", allowed)  # subdomains not included
    assert not domain_allowed("a@contoso.com.evil.example", allowed)
    assert not domain_allowed("a@evilcontoso.com", allowed)
    assert not domain_allowed('"a@contoso.com"@evil.example', allowed)
    assert not domain_allowed("no-at-sign", allowed)
    assert not domain_allowed("a@", allowed)


def test_domain_allowed_empty_list_allows_all() -> None:
    assert domain_allowed("a@anything.example", [])
    assert domain_allowed("a@anything.example", [""])


def test_domain_allowed_idn() -> None:
    assert domain_allowed(normalize_typed_email("x@Bücher.de"), ["bücher.de"])
    assert domain_allowed("x@bücher.de", ["xn--bcher-kva.de"])
