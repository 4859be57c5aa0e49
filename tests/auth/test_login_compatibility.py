"""A sign-in started on one release finishes on another (an upgrade, or two releases
side by side in a rolling deploy): the login transaction sealed in the per-tab
cookie is read across releases.

``PREVIOUS_TRANSACTION`` is the exact JSON the release before versioning sealed
(produced by running that release's code once); the tests seal it with the same key
derivation and hand it to the sidecar as the browser's cookie, and point Entra (the
emulator) at its state, nonce and PKCE challenge.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from sidecar.auth.login import _transaction_cookie
from sidecar.cookies import LOGIN_COOKIE_PREFIX, SESSION_COOKIE
from sidecar.secret_keys import DerivedKeys
from tests.helpers import SESSION_KEY
from tests.world import Browser, Reply, World, open_world

PREVIOUS_TRANSACTION = b'{"state": "q8Jf0v3Yk2mXb7RzT1sWcE5nLhA9uGdP4oQyVjKiN6M", "nonce": "Xb3kP9sLmQ2vR7tYw1zC5nF8hJ4gD6aE0uOiTyKeWqA", "verifier": "h7Rk2Qm9Xv4Lp1Zs8Wt3Yc6Nb0Jf5Gd2Ua7Ke9Oi4Ty1Rw8Qs3Lm6Xp0Zv5Nc2Bh7Jg4Df9Ka1Ue6Io3Py8Tw0Rs5", "rd": "/tickets/42?tab=history", "redirect_uri": "http://desk.contoso.test/.sso/callback", "host": "desk.contoso.test", "created": 1700000000.125}'


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with open_world() as w:
        yield w


async def signed_up_browser(world: World) -> Browser:
    """A browser of alice, whose account exists: a finished sign-in lands on the desk."""
    await world.sign_up(world.browser("alice"))
    return world.browser("alice")


async def sign_in_with_transaction(browser: Browser, sealed_json: bytes) -> Reply:
    """Start a sign-in, then carry on as if ``sealed_json`` were the transaction sealed
    when it started: its cookie replaces the sidecar's, and Entra gets its state,
    nonce and PKCE challenge."""
    started = await browser.get("/.sso/login?rd=/somewhere-else")
    assert started.status == 302
    for name in [n for n in browser.cookies if n.startswith(LOGIN_COOKIE_PREFIX)]:
        del browser.cookies[name]
    fields = json.loads(sealed_json)
    sealed = DerivedKeys([SESSION_KEY]).login_box.seal(sealed_json)
    browser.cookies[_transaction_cookie(fields["state"])] = sealed
    authorize = urlsplit(started.headers["Location"])
    query = dict(parse_qsl(authorize.query))
    query.update(
        state=fields["state"],
        nonce=fields["nonce"],
        code_challenge=create_s256_code_challenge(fields["verifier"]),
        x_emulator_user="alice",
    )
    at_entra = await browser.get(urlunsplit(authorize._replace(query=urlencode(query))))
    return await browser.follow(at_entra)


def desk_email(landing: Reply) -> str:
    return dict(json.loads(landing.text)["headers"])["X-TicketLog-Email"]


async def test_a_sign_in_started_on_the_previous_release_finishes_on_this_one(
    world: World,
) -> None:
    browser = await signed_up_browser(world)
    landing = await sign_in_with_transaction(browser, PREVIOUS_TRANSACTION)
    assert landing.status == 200, landing.text[:300]
    assert landing.url == "/tickets/42?tab=history"
    assert desk_email(landing) == "alice@contoso.test"


async def test_a_sign_in_started_on_a_newer_release_finishes_on_this_one(world: World) -> None:
    newer = {**json.loads(PREVIOUS_TRANSACTION), "v": 2, "prompt": "select_account"}
    browser = await signed_up_browser(world)
    landing = await sign_in_with_transaction(browser, json.dumps(newer).encode())
    assert landing.status == 200, landing.text[:300]
    assert landing.url == "/tickets/42?tab=history"
    assert desk_email(landing) == "alice@contoso.test"


async def test_the_previous_release_reads_the_transaction_this_one_seals(world: World) -> None:
    # The previous release reads every field by the same name and ignores the rest.
    browser = world.browser("alice")
    started = await browser.get("/.sso/login?rd=/tickets/42")
    assert started.status == 302
    (sealed,) = [v for n, v in browser.cookies.items() if n.startswith(LOGIN_COOKIE_PREFIX)]
    opened = DerivedKeys([SESSION_KEY]).login_box.open(sealed, 600)
    assert opened is not None
    transaction = json.loads(opened)
    previous = json.loads(PREVIOUS_TRANSACTION)
    assert {k: type(v) for k, v in transaction.items()} == {
        "v": int,
        **{k: type(v) for k, v in previous.items()},
    }
    assert transaction["v"] == 1
    assert transaction["rd"] == "/tickets/42"
    assert (
        transaction["state"]
        == dict(parse_qsl(urlsplit(started.headers["Location"]).query))["state"]
    )


@pytest.mark.parametrize("field_value", [("rd", {"path": "/"}), ("nonce", 5)])
async def test_a_transaction_field_of_the_wrong_type_is_a_link_that_is_not_valid(
    world: World, field_value: tuple[str, object]
) -> None:
    # Only the sidecar's keys can seal a transaction; still, one it cannot read is
    # no sign-in in progress: the user is asked to sign in again, and no session starts.
    name, value = field_value
    odd = {**json.loads(PREVIOUS_TRANSACTION), name: value}
    browser = world.browser("alice")
    refused = await sign_in_with_transaction(browser, json.dumps(odd).encode())
    assert refused.status == 400, refused.text[:300]
    assert "This sign-in link is not valid" in refused.text
    assert SESSION_COOKIE not in browser.cookies


async def test_a_transaction_cookie_that_cannot_be_read_does_not_block_a_new_sign_in(
    world: World,
) -> None:
    # A browser may hold several sign-ins in progress; starting one more compares when
    # each began, and one whose start is not a number counts as unreadable, not as a crash.
    odd = {**json.loads(PREVIOUS_TRANSACTION), "created": "1700000000"}
    browser = world.browser("alice")
    browser.cookies[_transaction_cookie(odd["state"])] = DerivedKeys([SESSION_KEY]).login_box.seal(
        json.dumps(odd).encode()
    )
    for _ in range(2):
        started = await browser.get("/.sso/login?rd=/tickets/42")
        assert started.status == 302, started.text[:300]
    landing = await browser.follow(started)
    assert landing.status == 200, landing.text[:300]
