"""The Cookie header split once per request: what the desk keeps, and which of our cookies
the sidecar reads over each scheme (cookie tossing: over https only `__Host-` names)."""

from __future__ import annotations

import pytest

from sidecar.cookies import split_cookies


@pytest.mark.parametrize(
    ("lines", "scheme", "ours"),
    [
        # Over https a cookie without the prefix (a sibling subdomain or plain http may
        # have set it) is never read, whatever comes first.
        (["tlsso=planted; __Host-tlsso=real"], "https", {"tlsso": "real"}),
        (["tlsso=planted"], "https", {}),
        (["__Host-tlsso=real"], "https", {"tlsso": "real"}),
        # Over http (development) the plain name is ours; a `__Host-` one is not the session.
        (["__Host-tlsso=other; tlsso=real"], "http", {"tlsso": "real", "__Host-tlsso": "other"}),
        (["tlsso=real"], "http", {"tlsso": "real"}),
        (["__Host-tlsso=other"], "http", {"__Host-tlsso": "other"}),
        # Sign-in transactions, by base name, and the first of a name wins.
        (["__Host-tlsso_tx_ab=t1", "__Host-tlsso_tx_ab=t2"], "https", {"tlsso_tx_ab": "t1"}),
        (['tlsso="quoted"'], "http", {"tlsso": "quoted"}),
    ],
)
def test_our_cookies_are_read_by_base_name_as_the_scheme_allows(
    lines: list[str], scheme: str, ours: dict[str, str]
) -> None:
    kept, found = split_cookies(lines, scheme)
    assert found == ours
    assert kept == ""  # none of ours reaches the desk, read or not


@pytest.mark.parametrize(("scheme", "session"), [("http", "s2"), ("https", "s")])
def test_the_desks_cookies_pass_in_order(scheme: str, session: str) -> None:
    kept, found = split_cookies(["a=1; __Host-tlsso=s; tlsso=s2", "b=2"], scheme)
    assert kept == "a=1; b=2"
    assert found["tlsso"] == session
    assert split_cookies(["desk=1"], scheme) == ("desk=1", {})
