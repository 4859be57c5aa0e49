"""A hostile Entra: the development emulator turned against the relying party.

``HostileIdP`` is an ``EntraEmulator`` serving two tenants (ours, Contoso, and
another one, Fabrikam, where the same multi-tenant client id is registered) with
switches a test sets before driving the real flow through the sidecar:

* ``id_token_rewrite(idp, raw) -> value``: replaces the ``id_token`` of every
  successful token response (``MISSING`` drops the member);
* ``discovery_patch(doc) -> doc`` and ``jwks_patch(doc) -> doc``: rewrite the
  discovery document and the JWKS the tenant serves;
* ``/attacker/keys``: a JWK set of the attacker's own keys, for ``jku`` headers.

It also remembers every ID token it issued (``issued_id_tokens``), so a test can
check that none of them leaked into a page or a log line.

Forging helpers: ``decode`` (no verification), ``sign`` (any alg, any key,
including ``none`` spelled any way and HMAC keyed with public-key bytes),
``resign`` (edit header and claims of a real token, then sign again).
"""

from __future__ import annotations

import base64
import datetime
import hmac
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from sidecar.dev.entra import EmulatedTenant, EntraEmulator, sample_tenant
from sidecar.dev.entra_model import CodeGrant
from sidecar.dev.entra_signing import SigningKey
from sidecar.dev.entra_token import id_token as emulator_id_token
from tests.world import CLIENT_ID, PUBLIC_BASE, TENANT_ID

OTHER_TENANT_ID = "0f1e2d3c-4b5a-4697-8877-665544332211"
OTHER_DOMAIN = "fabrikam.test"
_METADATA_HEADERS = {"Cache-Control": "max-age=86400, private"}


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | bytes | None
Rewrite = Callable[["HostileIdP", str], Any]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, unverified."""
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


def sign(header: dict[str, Any], claims: dict[str, Any], key: Key) -> str:
    """A compact JWS signed as ``header["alg"]`` says, with whatever key is given.

    ``key=None`` gives an empty signature (the unsigned forms of ``alg: none``);
    ``bytes`` is an HMAC secret, so public-key bytes forge the HS256 confusion.
    """
    alg = str(header.get("alg", ""))
    signing_input = f"{segment(header)}.{segment(claims)}".encode("ascii")
    bits = alg[2:]
    if key is None:
        signature = b""
    elif isinstance(key, bytes):
        signature = hmac.new(key, signing_input, f"sha{bits or '256'}").digest()
    elif isinstance(key, rsa.RSAPrivateKey):
        digest = _HASHES.get(bits, hashes.SHA256)()
        if alg.startswith("PS"):
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            signature = key.sign(signing_input, pss, digest)
        else:
            signature = key.sign(signing_input, padding.PKCS1v15(), digest)
    else:
        der = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"


def rsa_public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def uint(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "use": "sig", "kid": kid, "n": uint(numbers.n), "e": uint(numbers.e)}


def self_signed_certificate(key: rsa.RSAPrivateKey) -> bytes:
    """A DER certificate for ``key``: what an attacker puts in ``x5c``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "login.microsoftonline.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


_KEY_POOL: list[Any] = []


def _pooled_keys() -> tuple[SigningKey, SigningKey, rsa.RSAPrivateKey]:
    """RSA key generation costs ~0.1 s: every HostileIdP of a test run shares these keys
    (each world has its own sidecar, so nothing carries over between tests)."""
    if not _KEY_POOL:
        _KEY_POOL.extend([SigningKey.generate(), SigningKey.generate()])
        _KEY_POOL.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEY_POOL[0], _KEY_POOL[1], _KEY_POOL[2]


class HostileIdP(EntraEmulator):
    """The emulator with hostile switches; see the module docstring."""

    def __init__(self, public_base: str = PUBLIC_BASE) -> None:
        ours = sample_tenant(public_base, tenant_id=TENANT_ID)
        # The same (multi-tenant) client id registered in another organisation, whose users
        # can sign in there and get tokens for it.
        other = sample_tenant(public_base, tenant_id=OTHER_TENANT_ID, domain=OTHER_DOMAIN)
        super().__init__([ours, other], key_count=1)
        first, second, attacker = _pooled_keys()
        self.signing_keys = [first, second]  # entra-reference §4: always more than one key
        self.active_kid = first.kid
        self.attacker_rsa = attacker
        self.attacker_ec = ec.generate_private_key(ec.SECP256R1())
        self.attacker_kid = "attacker-key-1"
        self.id_token_rewrite: Rewrite | None = None
        self.discovery_patch: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.jwks_patch: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.issued_id_tokens: list[str] = []
        self.last_origin = ""  # the emulator's own origin, as last seen by a request
        self.token_response_hook = self._rewrite_token_response

    # ---- what tests reach for ------------------------------------------------------------

    @property
    def ours(self) -> EmulatedTenant:
        return self.tenants[0]

    @property
    def other(self) -> EmulatedTenant:
        return self.tenants[1]

    @property
    def active_key(self) -> SigningKey:
        return next(k for k in self.signing_keys if k.kid == self.active_kid)

    def public_pem(self) -> bytes:
        return self.active_key.public_pem()

    def public_der(self) -> bytes:
        return self.active_key.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_jwk_json(self) -> bytes:
        return json.dumps(rsa_public_jwk(self.active_key.private_key, self.active_kid)).encode()

    def resign(
        self,
        token: str,
        *,
        header: Callable[[dict[str, Any]], object] | None = None,
        claims: Callable[[dict[str, Any]], object] | None = None,
        key: Key | str = "published",
    ) -> str:
        """Edit a real token's header and claims, then sign it again (by default with the
        published signing key, so only the edit is wrong)."""
        jose, body = decode(token)
        if header is not None:
            header(jose)
        if claims is not None:
            claims(body)
        return sign(jose, body, self.active_key.private_key if isinstance(key, str) else key)

    def other_tenant_token(self, token: str, user_key: str = "alice") -> str:
        """A token the emulator itself issues in the *other* tenant, for the same client id,
        user session and nonce as ``token``: validly signed, every claim genuine."""
        _, claims = decode(token)
        origin = claims["iss"][: -len(f"/{claims['tid']}/v2.0")]
        tenant = self.other
        app = tenant.app(CLIENT_ID)
        user = tenant.user(user_key)
        assert app is not None
        assert user is not None
        grant = CodeGrant(
            tenant_id=tenant.tenant_id,
            client_id=CLIENT_ID,
            redirect_uri=app.redirect_uris[0],
            scope="openid profile email",
            nonce=claims.get("nonce"),
            code_challenge=None,
            code_challenge_method="S256",
            user_key=user.key,
            sid=str(claims.get("sid", "")),
            expires_at=self.clock() + 60,
        )
        return emulator_id_token(self, origin, tenant, app, user, grant)

    # ---- the hostile server --------------------------------------------------------------

    def _rewrite_token_response(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("id_token")
        if isinstance(raw, str):
            self.issued_id_tokens.append(raw)
            if self.id_token_rewrite is not None:
                forged = self.id_token_rewrite(self, raw)
                if forged is MISSING:
                    del body["id_token"]
                else:
                    body["id_token"] = forged
                    if isinstance(forged, str):
                        self.issued_id_tokens.append(forged)
        return body

    def make_app(self) -> web.Application:
        app = super().make_app()

        @web.middleware
        async def patch_documents(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.last_origin = f"{request.scheme}://{request.host}"
            response = await handler(request)
            if request.path.endswith("/.well-known/openid-configuration"):
                patch = self.discovery_patch
            elif request.path.endswith("/discovery/v2.0/keys"):
                patch = self.jwks_patch
            else:
                return response
            if patch is None or response.status != 200 or not isinstance(response, web.Response):
                return response
            assert response.body is not None
            document = json.loads(bytes(response.body))  # type: ignore[arg-type]
            return web.json_response(patch(document), headers=_METADATA_HEADERS)

        async def attacker_keys(request: web.Request) -> web.Response:
            return web.json_response(
                {"keys": [rsa_public_jwk(self.attacker_rsa, self.attacker_kid)]}
            )

        app.middlewares.append(patch_documents)
        app.router.add_get("/attacker/keys", attacker_keys)
        return app


def jws_json_serialization(token: str, *, flattened: bool) -> str:
    """The same signed token in the JSON serialisation of RFC 7515 §7.2."""
    protected, payload, signature = token.split(".")
    if flattened:
        return json.dumps({"protected": protected, "payload": payload, "signature": signature})
    return json.dumps(
        {"payload": payload, "signatures": [{"protected": protected, "signature": signature}]}
    )


def flip_signature_byte(token: str) -> str:
    head, payload, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(raw))}"
