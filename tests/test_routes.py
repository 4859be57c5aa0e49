"""sidecar.routes: the one spelling of the sidecar's own paths and the URLs built on them."""

from __future__ import annotations

from sidecar import routes
from sidecar.access_log import OWN_ROUTES
from sidecar.app import SSO_ROUTES


def test_every_route_is_under_the_reserved_prefix() -> None:
    assert all(path.startswith(routes.PREFIX) for path in routes.ALL)
    assert len(set(routes.ALL)) == len(routes.ALL)
    assert routes.PREFIX == routes.ISSUER_PATH + "/"


def test_the_route_table_and_the_access_log_use_the_same_paths() -> None:
    # Forward-auth is answered by the own-routes step itself, not from the table.
    assert set(SSO_ROUTES) | {routes.AUTH} == set(routes.ALL)
    assert frozenset(routes.ALL) == OWN_ROUTES


def test_login_and_signup_urls_carry_the_target_encoded() -> None:
    assert routes.login_url("/") == "/.sso/login?rd=/"
    assert routes.login_url("/tickets?id=1&x=2") == "/.sso/login?rd=/tickets%3Fid%3D1%26x%3D2"
    assert routes.signup_url("/a b/ü") == "/.sso/signup?rd=/a%20b/%C3%BC"


def test_registration_uris_are_the_contracts() -> None:
    assert routes.registration_uris("desk.contoso.com") == [
        ("Redirect URI (Web)", "https://desk.contoso.com/.sso/callback"),
        ("Front-channel logout URL", "https://desk.contoso.com/.sso/frontchannel-logout"),
        ("Post-logout redirect URI", "https://desk.contoso.com/.sso/signed-out"),
        ("Homepage URL (My Apps)", "https://desk.contoso.com/"),
    ]
