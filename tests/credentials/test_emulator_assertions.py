"""The development Entra emulator verifies client assertions as Entra does, and answers
each refusal with Entra's AADSTS code; the provider rotates through certificates."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.oidc import EntraProvider, ProviderRejected
from sidecar.oidc.credentials import (
    ASSERTION_TYPE,
    ClientCertificates,
    ClientCredential,
    FederatedToken,
    load_certificate,
)
from tests.cluster_issuer import SUBJECT
from tests.credentials.support import Setup, entra_with_credentials
from tests.helpers import FakeClock
from tests.world import CLIENT_ID


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with entra_with_credentials(tmp_path) as made:
        yield made


def certificates(setup: Setup, *which: str, clock: FakeClock | None = None) -> ClientCertificates:
    made = {"registered": setup.registered, "stranger": setup.stranger}
    loaded = [
        load_certificate(made[w].certificate_pem, made[w].private_key_pem, now=time.time())
        for w in which
    ]
    return ClientCertificates(loaded, clock=clock or time.time)


async def assertion(setup: Setup, credential: ClientCertificates, index: int = 0) -> str:
    form = await credential.authentication(
        index, client_id=CLIENT_ID, token_endpoint=setup.token_endpoint
    )
    return form["client_assertion"]


async def refused(setup: Setup, client_assertion: str) -> tuple[int, str, int]:
    status, body = await setup.token_request(
        {"client_id": CLIENT_ID, "client_assertion_type": ASSERTION_TYPE,
         "client_assertion": client_assertion}
    )  # fmt: skip
    assert status in (400, 401), body
    return status, body["error"], body["error_codes"][0]


def provider(setup: Setup, credential: ClientCredential) -> EntraProvider:
    return EntraProvider(
        authority=setup.url,
        tenant="contoso.test",
        client_id=CLIENT_ID,
        credential=credential,
        http=setup.http,
    )


async def test_registered_certificate_is_accepted(setup: Setup) -> None:
    status, body = await setup.token_request(
        {"client_id": CLIENT_ID, "client_assertion_type": ASSERTION_TYPE,
         "client_assertion": await assertion(setup, certificates(setup, "registered"))}
    )  # fmt: skip
    assert status == 200, body
    assert body["token_type"] == "Bearer"


async def test_unknown_certificate_is_700027(setup: Setup) -> None:
    answer = await refused(setup, await assertion(setup, certificates(setup, "stranger")))
    assert answer == (401, "invalid_client", 700027)


async def test_certificate_expired_in_entra_is_700027(setup: Setup) -> None:
    # The copy in Entra ran out (the emulator's clock is a year and a day ahead).
    setup.emulator.clock = lambda: time.time() + 366 * 86400
    answer = await refused(setup, await assertion(setup, certificates(setup, "registered")))
    assert answer == (401, "invalid_client", 700027)


async def test_signature_by_another_key_is_700027(setup: Setup) -> None:
    # The header names the uploaded certificate; the stranger's key signed it.
    good = await assertion(setup, certificates(setup, "registered"))
    forged = await assertion(setup, certificates(setup, "stranger"))
    header = good.split(".")[0]
    _, payload, signature = forged.split(".")
    answer = await refused(setup, f"{header}.{payload}.{signature}")
    assert answer == (401, "invalid_client", 700027)


@pytest.mark.parametrize("shift", [-3600, +3600])
async def test_assertion_outside_its_validity_is_700024(setup: Setup, shift: float) -> None:
    clock = FakeClock(time.time() + shift)
    answer = await refused(
        setup, await assertion(setup, certificates(setup, "registered", clock=clock))
    )
    assert answer == (401, "invalid_client", 700024)


async def test_assertion_for_another_audience_is_refused(setup: Setup) -> None:
    credential = certificates(setup, "registered")
    form = await credential.authentication(
        0,
        client_id=CLIENT_ID,
        token_endpoint="https://login.microsoftonline.com/other/oauth2/v2.0/token",
    )
    status, error, code = await refused(setup, form["client_assertion"])
    assert (status, error, code) == (401, "invalid_client", 700023)


async def test_rotation_falls_back_to_the_uploaded_certificate(setup: Setup) -> None:
    # Newest first: the new certificate is configured before the admin uploaded it.
    entra = provider(setup, certificates(setup, "stranger", "registered"))
    try:
        assert await entra.check_client_credentials() == 1
    finally:
        await entra.aclose()
    entra = provider(setup, certificates(setup, "registered", "stranger"))
    try:
        assert await entra.check_client_credentials() == 0
    finally:
        await entra.aclose()


async def test_federated_token_is_accepted_and_reread(setup: Setup) -> None:
    entra = provider(setup, FederatedToken(str(setup.token_file)))
    try:
        assert await entra.check_client_credentials() == 0
        # kubelet rotates the token: the next request sends the new one. An expired token
        # in its place is refused, which proves the file was read again.
        setup.write_token(setup.cluster.token(issued=time.time() - 7200, lifetime=3600))
        with pytest.raises(ProviderRejected) as caught:
            await entra.check_client_credentials()
        assert caught.value.aadsts == 700024
        setup.write_token(setup.cluster.token())
        assert await entra.check_client_credentials() == 0
    finally:
        await entra.aclose()


@pytest.mark.parametrize(
    ("token_kwargs", "code"),
    [
        ({"issuer": "https://oidc.other-cluster.example/"}, 700211),
        ({"subject": "system:serviceaccount:default:default"}, 700213),
        ({"audience": "api://SomethingElse"}, 700212),
    ],
)
async def test_federated_mismatches(setup: Setup, token_kwargs: dict[str, str], code: int) -> None:
    answer = await refused(setup, setup.cluster.token(**token_kwargs))
    assert answer == (401, "invalid_client", code)


async def test_no_federated_credential_at_all_is_70021(setup: Setup) -> None:
    setup.app.federated_credentials.clear()
    answer = await refused(setup, setup.cluster.token())
    assert answer == (400, "invalid_request", 70021)


async def test_federated_token_not_signed_by_the_cluster_is_refused(setup: Setup) -> None:
    token = setup.cluster.token()
    other = setup.cluster.token(subject=SUBJECT + "x")
    header, payload, _ = token.split(".")
    answer = await refused(setup, f"{header}.{payload}.{other.split('.')[2]}")
    assert answer == (401, "invalid_client", 50027)


async def test_secret_and_assertion_together_are_refused(setup: Setup) -> None:
    status, body = await setup.token_request(
        {"client_id": CLIENT_ID, "client_secret": "dev~emulator-secret-value",
         "client_assertion_type": ASSERTION_TYPE,
         "client_assertion": await assertion(setup, certificates(setup, "registered"))}
    )  # fmt: skip
    assert (status, body["error"]) == (400, "invalid_request")


async def test_the_older_rs256_format_with_a_sha1_x5t_is_accepted_too(setup: Setup) -> None:
    # Entra still accepts the format older clients send (RS256, SHA-1 x5t): the emulator
    # must too, or it would not be verifying as Entra does.
    import base64
    import hashlib
    import uuid

    from cryptography.hazmat.primitives import serialization
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    der = setup.registered.certificate.public_bytes(serialization.Encoding.DER)
    x5t = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
    now = int(time.time())
    claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": setup.token_endpoint,
              "jti": str(uuid.uuid4()), "nbf": now, "iat": now, "exp": now + 600}  # fmt: skip
    key = RSAKey.import_key(setup.registered.private_key_pem)
    older = jwt.encode({"alg": "RS256", "typ": "JWT", "x5t": x5t}, claims, key)
    status, body = await setup.token_request(
        {"client_id": CLIENT_ID, "client_assertion_type": ASSERTION_TYPE,
         "client_assertion": older}
    )  # fmt: skip
    assert status == 200, body
    # The same with a SHA-1 thumbprint of a certificate Entra does not hold: 700027.
    stranger = setup.stranger.certificate.public_bytes(serialization.Encoding.DER)
    unknown = base64.urlsafe_b64encode(hashlib.sha1(stranger).digest()).rstrip(b"=").decode()
    forged = jwt.encode({"alg": "RS256", "typ": "JWT", "x5t": unknown}, claims, key)
    assert await refused(setup, forged) == (401, "invalid_client", 700027)
