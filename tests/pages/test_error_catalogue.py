"""Every entry of the error catalogue: a translated page for a browser, its JSON code for
a program.

A real aiohttp server on loopback answers each entry through `error_response`, the
function every call site uses. The JSON codes and statuses are the operator contract
(gateways, scripts and alerts match on them), so they are listed here once more: a
change to one is a failing test, not a silent break.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from sidecar.pages import error_pages
from sidecar.pages.error_pages import CATALOGUE, PageError
from sidecar.pages.i18n import LANGUAGES, language
from sidecar.responses import error_response
from tests.helpers import serve_app
from tests.pages.test_render import text_of, the

CONTRACT = {
    "BAD_HOST": (400, "bad_host"),
    "HTTP_VERSION_NOT_SUPPORTED": (505, "http_version_not_supported"),
    "CHUNKED_HTTP_1_0": (400, "bad_framing"),
    "TRANSFER_CODING_NOT_SUPPORTED": (501, "transfer_coding_not_supported"),
    "FRAGMENT_IN_TARGET": (400, "bad_target"),
    "UNKNOWN_HOST": (421, "unknown_host"),
    "NOT_FOUND": (404, "not_found"),
    "STORE_UNAVAILABLE": (503, "store_unavailable"),
    "INTERNAL_ERROR": (500, "internal_error"),
    "UPSTREAM_TIMEOUT": (504, "upstream_timeout"),
    "UPSTREAM_UNAVAILABLE": (502, "upstream_unavailable"),
    "BAD_WEBSOCKET_HANDSHAKE": (400, "bad_websocket_handshake"),
    "UNFORWARDABLE_REQUEST": (400, "bad_request"),
    "ENTRA_UNREACHABLE_AT_LOGIN": (502, "idp_unavailable"),
    "ENTRA_UNREACHABLE": (502, "idp_unavailable"),
    "INVALID_CALLBACK": (400, "invalid_callback"),
    "CALLBACK_FROM_ANOTHER_ISSUER": (400, "invalid_callback"),
    "SIGN_IN_MISCONFIGURED": (502, "idp_error"),
    "CODE_REDEMPTION_FAILED": (502, "idp_error"),
    "ID_TOKEN_REJECTED": (502, "invalid_id_token"),
    "ROLE_REQUIRED": (403, "role_required"),
    "NOT_ASSIGNED": (403, "access_denied"),
    "SIGN_IN_CANCELLED": (403, "access_denied"),
    "SIGN_IN_NOT_COMPLETED": (403, "access_denied"),
    "SIGN_IN_NOT_COMPLETED_WITH_CORRELATION_ID": (403, "access_denied"),
    "SIGNUP_FORM_EXPIRED": (403, "csrf_refused"),
}

NAMES = {entry: name for name, entry in vars(error_pages).items() if isinstance(entry, PageError)}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def filled_in(entry: PageError) -> dict[str, object] | None:
    """A value for each placeholder of the entry's message (None when it has none)."""
    names = PLACEHOLDER.findall(entry.message)
    return {name: f"<{name}-value>" for name in names} if names else None


ACTION = "/.sso/signup?rd=/next"


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def answer(request: web.Request) -> web.StreamResponse:
        entry = CATALOGUE[int(request.match_info["index"])]
        action = ACTION if entry.action_label is not None else None
        return error_response(request, entry, message_args=filled_in(entry), action_url=action)

    app = web.Application()
    app.router.add_get("/{index}", answer)
    async with serve_app(app) as url:
        yield url


def test_the_catalogue_holds_every_entry_of_the_contract_and_nothing_else() -> None:
    assert {NAMES[entry] for entry in CATALOGUE} == set(CONTRACT)
    assert len(CATALOGUE) == len(CONTRACT)


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda entry: NAMES[entry])
async def test_each_entry_is_json_with_its_contract_code_for_a_program(
    server: str, entry: PageError
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server}/{CATALOGUE.index(entry)}", headers={"Accept": "application/json"}
        ) as reply,
    ):
        assert (reply.status, reply.content_type) == (CONTRACT[NAMES[entry]][0], "application/json")
        body = await reply.json()
    args = filled_in(entry)
    message = entry.message % args if args else entry.message
    assert body == {"error": CONTRACT[NAMES[entry]][1], "message": message}


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda entry: NAMES[entry])
async def test_each_entry_is_a_page_in_the_browsers_language(
    server: str, entry: PageError, lang: str
) -> None:
    headers = {"Accept": "text/html", "Accept-Language": lang}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server}/{CATALOGUE.index(entry)}", headers=headers) as reply,
    ):
        assert (reply.status, reply.content_type) == (entry.status, "text/html")
        html = await reply.text()
    translate = language(lang).gettext
    assert the(html, "html")["lang"] == lang
    page_text = text_of(html)
    assert translate(entry.title) in page_text
    args = filled_in(entry)
    message = translate(entry.message) % args if args else translate(entry.message)
    assert message in page_text
    if args:
        assert all(str(value) in page_text for value in args.values())
    if lang != "en" and entry.title != translate(entry.title):
        assert entry.title not in page_text
    if entry.action_label is not None:
        assert translate(entry.action_label) in page_text
        assert the(html, "a", href=ACTION)


@pytest.mark.parametrize("lang", [code for code in LANGUAGES if code != "en"])
def test_every_title_is_translated(lang: str) -> None:
    untranslated = [NAMES[e] for e in CATALOGUE if language(lang).gettext(e.title) == e.title]
    assert not untranslated
