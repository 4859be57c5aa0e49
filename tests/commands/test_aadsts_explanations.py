"""Sign-in and `check-entra` explain an AADSTS code in the same words.

An operator who reads a sign-in's log line (`hint`) and then runs `check-entra` for the
same tenant must not get two different stories. Both run here against the development
Entra emulator on loopback, made to refuse its token endpoint with a chosen code.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest

from sidecar.commands.check_entra import check_entra
from sidecar.dev.entra import EntraEmulator, sample_tenant
from sidecar.dev.entra_errors import EntraError
from tests.helpers import config_from
from tests.world import HOST, PUBLIC_BASE, World, open_world

# Entra's free text can quote request parameters: it is never part of an explanation.
DESCRIPTION = "Entra's own description, quoting client_id=spoofed"

# The reference check-entra adds for support: " (AADSTS65001, correlation ID ...)".
REFERENCE = re.compile(r" \(AADSTS\d+(, correlation ID [0-9a-f-]+)?\)")


def refusing(error: str, code: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A token-endpoint hook that refuses every grant with ``error`` and AADSTS ``code``."""

    def refuse(_body: dict[str, Any]) -> dict[str, Any]:
        raise EntraError(401 if error == "invalid_client" else 400, error, code, DESCRIPTION)

    return refuse


def logged(caplog: pytest.LogCaptureFixture, event: str) -> dict[str, Any]:
    """The fields of the one log line ``event``."""
    found = [
        getattr(record, "fields", {})
        for record in caplog.records
        if record.getMessage() == event and getattr(record, "fields", None) is not None
    ]
    assert len(found) == 1, [record.getMessage() for record in caplog.records]
    fields: dict[str, Any] = json.loads(json.dumps(found[0], default=str))
    return fields


async def check_entra_explanation(world: World) -> str:
    """What `check-entra` says about the tenant, without the reference for support."""
    out = io.StringIO()
    status = await check_entra(config_from(world.document), host=HOST, out=out)
    assert status == 1, out.getvalue()
    assert "spoofed" not in out.getvalue()
    failed = [line for line in out.getvalue().splitlines() if ": FAILED: " in line]
    assert len(failed) == 1, out.getvalue()
    return REFERENCE.sub("", failed[0].split(": FAILED: ", 1)[1])


@pytest.mark.parametrize(
    ("error", "code", "words"),
    [
        ("invalid_request", 50011, "the redirect URI is not registered"),
        ("unauthorized_client", 700016, "not found in tenant contoso.test"),
        ("invalid_client", 7000215, "the secret's ID instead of its Value"),
        ("invalid_grant", 65001, "Grant admin consent"),
    ],
)
async def test_a_failed_code_redemption_is_explained_as_check_entra_explains_it(
    caplog: pytest.LogCaptureFixture, error: str, code: int, words: str
) -> None:
    caplog.set_level(logging.INFO, logger="ticketlog_sso")
    emulator = EntraEmulator([sample_tenant(PUBLIC_BASE)], frontchannel_server_side=False)
    async with open_world(emulator=emulator) as world:
        emulator.token_response_hook = refusing(error, code)
        page = await world.browser("alice").open("/")
        assert page.status == 502
        hint = logged(caplog, "entra_token_error")["hint"]
        assert words in hint
        assert "spoofed" not in hint
        assert await check_entra_explanation(world) == hint


async def test_a_refusal_on_the_callback_is_explained_as_check_entra_explains_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Carol is not assigned to the app: Entra sends her back with AADSTS50105.
    caplog.set_level(logging.INFO, logger="ticketlog_sso")
    emulator = EntraEmulator([sample_tenant(PUBLIC_BASE)], frontchannel_server_side=False)
    async with open_world(emulator=emulator) as world:
        page = await world.browser("carol").open("/")
        assert page.status == 403
        refused = logged(caplog, "entra_refused_sign_in")
        assert refused["aadsts"] == 50105
        assert "Users and groups" in refused["hint"]
        emulator.token_response_hook = refusing("access_denied", 50105)
        assert await check_entra_explanation(world) == refused["hint"]


async def test_a_code_the_table_does_not_know_keeps_the_generic_hint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ticketlog_sso")
    emulator = EntraEmulator([sample_tenant(PUBLIC_BASE)], frontchannel_server_side=False)
    async with open_world(emulator=emulator) as world:
        emulator.token_response_hook = refusing("invalid_grant", 9999999)
        await world.browser("alice").open("/")
        assert logged(caplog, "entra_token_error")["hint"] == "see the AADSTS code"
        assert (
            await check_entra_explanation(world) == "Entra refused the token request: invalid_grant"
        )
