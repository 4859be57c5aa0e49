"""The sidecar's own routes under the reserved `/.sso/` prefix, and the URLs built on them.

Every path the sidecar answers, redirects to or tells Entra about is spelled here once:
the route table, the access log's label values, the redirects and the URIs an
operator registers all take it from this module. No imports from the rest of the
package, so any layer may use it.
"""

from __future__ import annotations

from urllib.parse import quote

#: Reserved on every tenant host: never forwarded to the desk.
PREFIX = "/.sso/"
#: The issuer of the identity JWT is the host's origin followed by this.
ISSUER_PATH = "/.sso"

LOGIN = "/.sso/login"
CALLBACK = "/.sso/callback"
SIGNUP = "/.sso/signup"
VERIFY = "/.sso/verify"
LOGOUT = "/.sso/logout"
SIGNED_OUT = "/.sso/signed-out"
FRONTCHANNEL_LOGOUT = "/.sso/frontchannel-logout"
USERINFO = "/.sso/userinfo"
JWKS = "/.sso/jwks.json"
#: Forward-auth; the paths below it carry the original path (Envoy's path_prefix).
AUTH = "/.sso/auth"

#: Every route the sidecar answers itself.
ALL = (
    LOGIN,
    CALLBACK,
    SIGNUP,
    VERIFY,
    LOGOUT,
    SIGNED_OUT,
    FRONTCHANNEL_LOGOUT,
    USERINFO,
    JWKS,
    AUTH,
)


def _with_rd(path: str, rd: str) -> str:
    # `/` stays readable; everything else in the target is percent-encoded, so the
    # target cannot add parameters of its own.
    return path + "?rd=" + quote(rd, safe="/")


def login_url(rd: str) -> str:
    """Sign in, then land on ``rd`` (a relative path the caller has already made safe)."""
    return _with_rd(LOGIN, rd)


def signup_url(rd: str) -> str:
    """The first-login screen, then ``rd``."""
    return _with_rd(SIGNUP, rd)


def registration_uris(host: str) -> list[tuple[str, str]]:
    """What the customer registers in Entra for one SSO tenant host (contract)."""
    return [
        ("Redirect URI (Web)", f"https://{host}{CALLBACK}"),
        ("Front-channel logout URL", f"https://{host}{FRONTCHANNEL_LOGOUT}"),
        ("Post-logout redirect URI", f"https://{host}{SIGNED_OUT}"),
        ("Homepage URL (My Apps)", f"https://{host}/"),
    ]
