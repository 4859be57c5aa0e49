"""The signer's header sets: reused per site for a minute, bounded per identity."""

from __future__ import annotations

import base64
import json
import time
from types import SimpleNamespace
from typing import Any

from sidecar.auth.identity import REUSE_FOR, AssertionSigner, Identity, IdentityHeaders
from sidecar.request_scope import RequestScope
from sidecar.secret_keys import DerivedKeys


def alice() -> Identity:
    return Identity(
        user_key="oid-1.tid-1",
        oid="oid-1",
        tid="tid-1",
        email="alice@contoso.test",
        given_name="Alice",
        family_name="Example",
        name="Alice Example",
    )


def request_scope(
    identity: Identity, *, scheme: str = "https", port: str | None = None, at: float
) -> RequestScope:
    ctx = RequestScope(
        request_id="r", client_ip="192.0.2.1", peer_trusted=False, scheme=scheme, started=at
    )
    ctx.tenant = SimpleNamespace(host="desk.contoso.test")  # type: ignore[assignment]
    ctx.public_host = f"desk.contoso.test:{port}" if port else "desk.contoso.test"
    ctx.identity = identity
    return ctx


def claims(headers: IdentityHeaders) -> dict[str, Any]:
    payload = headers.fields["X-TicketLog-Identity"].split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "==="))
    return decoded


def test_the_assertion_names_the_public_origin_it_was_asked_on() -> None:
    signer = AssertionSigner(DerivedKeys(["k" * 40]))
    now, user = time.monotonic(), alice()
    plain = signer.headers_for(request_scope(user, at=now))
    ported = signer.headers_for(request_scope(user, port="8443", at=now))
    # The same host over the other scheme (a trusted proxy's X-Forwarded-Proto): the
    # memo is kept by public host, and must not hand back what was signed for https.
    insecure = signer.headers_for(request_scope(user, scheme="http", at=now))
    assert claims(plain)["iss"] == "https://desk.contoso.test/.sso"
    assert claims(ported)["iss"] == "https://desk.contoso.test:8443/.sso"
    assert claims(insecure)["iss"] == "http://desk.contoso.test/.sso"
    assert signer.headers_for(request_scope(user, at=now)) is plain
    assert claims(plain)["aud"] == claims(ported)["aud"] == "desk.contoso.test"
    assert plain.fields["X-TicketLog-Email"] == "alice@contoso.test"
    assert plain.block.closing.startswith(b"X-TicketLog-User: oid-1.tid-1\r\n")


def test_one_site_reuses_its_headers_for_a_minute_then_signs_again() -> None:
    signer = AssertionSigner(DerivedKeys(["k" * 40]))
    now, user = time.monotonic(), alice()
    first = signer.headers_for(request_scope(user, at=now))
    assert signer.headers_for(request_scope(user, at=now + REUSE_FOR - 1)) is first
    # An equal identity from a renewed sign-in-cache entry shares what was signed.
    assert signer.headers_for(request_scope(alice(), at=now + 1)) is first
    later = signer.headers_for(request_scope(user, at=now + REUSE_FOR))
    assert later is not first
    assert later.fresh_until == now + 2 * REUSE_FOR


def test_a_client_cycling_ports_does_not_grow_the_memo_without_end() -> None:
    signer = AssertionSigner(DerivedKeys(["k" * 40]))
    now, user = time.monotonic(), alice()
    for port in range(1000, 1100):
        headers = signer.headers_for(request_scope(user, port=str(port), at=now))
        assert claims(headers)["iss"] == f"https://desk.contoso.test:{port}/.sso"
        assert len(user._signed) <= 4
