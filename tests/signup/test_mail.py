"""The verification mail, sent to a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import ipaddress
import ssl
import time
from collections.abc import Iterator
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.procs import free_port
from sidecar.signup.mail import (
    ConsoleMailer,
    MailError,
    SmtpMailer,
    build_verification_message,
    clean_header_text,
)
from tests.smtp_server import Collector, start_smtp

FROM = "TicketLog <no-reply@mail.ticketlog.example>"
TO = "evelyne@contoso.com"
EVIL_NAME = "Évelyne <script>\r\nBcc: evil@x"
CODE = "048213"
PASSWORD = "s3cret-relay-pw"


def message(
    display_name: str | None = EVIL_NAME, desk: str = "Contoso <b>IT</b> Desk"
) -> EmailMessage:
    return build_verification_message(
        from_addr=FROM,
        to_addr=TO,
        display_name=display_name,
        desk_name=desk,
        code=CODE,
        code_ttl_minutes=10,
    )


def authenticator(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login == b"relay-user" and auth_data.password == PASSWORD.encode()
    )
    # handled=False: let aiosmtpd answer 535 itself (its default is to stay silent).
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (EC: generated in milliseconds)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    return ctx


def client_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files[0]))


@pytest.fixture
def smtp() -> Iterator[tuple[Collector, int]]:
    handler = Collector()
    controller = start_smtp(handler)
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def received(handler: Collector) -> EmailMessage:
    assert len(handler.envelopes) == 1
    content = handler.envelopes[0].original_content
    assert isinstance(content, bytes)
    parsed = message_from_bytes(content, policy=email_policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def part(msg: EmailMessage, subtype: str) -> str:
    body = msg.get_body(preferencelist=(subtype,))
    assert body is not None
    assert body.get_content_type() == f"text/{subtype}"
    content = body.get_content()
    assert isinstance(content, str)
    return content


# -- building ---------------------------------------------------------------------


def test_message_structure_and_headers() -> None:
    msg = message()
    assert msg["Subject"] == "Your TicketLog verification code for Contoso <b>IT</b> Desk"
    assert msg.get_content_type() == "multipart/alternative"
    assert CODE in part(msg, "plain").splitlines()  # on its own line
    assert msg["Message-ID"].endswith("@mail.ticketlog.example>")
    sent = parsedate_to_datetime(msg["Date"])
    assert abs(sent.timestamp() - time.time()) < 60
    assert msg["Auto-Submitted"] == "auto-generated"


def test_header_injection_via_names_is_neutralised() -> None:
    msg = message()
    raw = msg.as_bytes()
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc:") for line in header_block.split(b"\r\n"))
    assert b"evil@x" not in header_block.replace(b"=40", b"@").split(b"\r\nTo:")[0]
    assert header_block.isascii()  # non-ASCII names are RFC 2047 encoded
    reparsed = message_from_bytes(raw, policy=email_policy.default)
    assert reparsed["Bcc"] is None
    to = reparsed["To"].addresses
    assert len(to) == 1
    assert to[0].addr_spec == TO
    assert to[0].display_name == "Évelyne <script> Bcc: evil@x"


def test_desk_name_cannot_inject_headers() -> None:
    msg = message(desk="Desk\r\nBcc: evil@example.com")
    reparsed = message_from_bytes(msg.as_bytes(), policy=email_policy.default)
    assert reparsed["Bcc"] is None
    assert "\n" not in reparsed["Subject"]


def test_html_part_is_escaped() -> None:
    html_part = part(message(), "html")
    assert "<script>" not in html_part
    assert "&lt;script&gt;" in html_part
    assert "&lt;b&gt;IT&lt;/b&gt;" in html_part
    assert CODE in html_part


def test_no_display_name() -> None:
    msg = message(display_name=None)
    assert msg["To"] == TO
    assert part(msg, "plain").startswith("Hello,")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to_addr": "x@contoso.com\r\nBcc: evil@example.com"},
        {"to_addr": "x@contoso.com>, evil@example.com"},
        {"from_addr": "TicketLog <no-reply@example.com>\r\nBcc: evil@example.com"},
        {"from_addr": "not an address"},
        {"code": "12345"},
        {"code": "١٢٣٤٥٦"},
    ],
)
def test_build_rejects_bad_input(kwargs: dict[str, str]) -> None:
    args: dict[str, Any] = {
        "from_addr": FROM,
        "to_addr": TO,
        "display_name": "E",
        "desk_name": "Desk",
        "code": CODE,
        "code_ttl_minutes": 10,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=r"invalid|code"):
        build_verification_message(**args)


def test_clean_header_text() -> None:
    assert clean_header_text("a\r\nb\x00c\u2028d\u202ee\tf") == "a b c d e f"
    assert clean_header_text("x" * 500) == "x" * 120


# -- sending over SMTP ----------------------------------------------------------------


async def test_send_plain_smtp(smtp: tuple[Collector, int]) -> None:
    handler, port = smtp
    mailer = SmtpMailer("127.0.0.1", port, tls="none", timeout=5)
    await mailer.send(message())

    envelope = handler.envelopes[0]
    assert envelope.rcpt_tos == [TO]  # the Bcc attempt added no recipient
    assert envelope.mail_from == "no-reply@mail.ticketlog.example"
    got = received(handler)
    assert got["Bcc"] is None
    assert got["To"].addresses[0].addr_spec == TO
    assert CODE in part(got, "plain").splitlines()
    assert "&lt;script&gt;" in part(got, "html")
    assert "<script>" not in part(got, "html")
    assert got["Message-ID"].endswith("@mail.ticketlog.example>")
    parsedate_to_datetime(got["Date"])


async def test_smtp_down_raises_mail_error_quickly() -> None:
    mailer = SmtpMailer("127.0.0.1", free_port(), tls="none", timeout=2)
    started = time.monotonic()
    with pytest.raises(MailError) as info:
        await mailer.send(message())
    assert time.monotonic() - started < 2
    assert "127.0.0.1" in str(info.value)
    assert CODE not in str(info.value)


async def test_smtp_timeout_raises_mail_error() -> None:
    # A listener that accepts but never speaks: the greeting never comes.
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        mailer = SmtpMailer("127.0.0.1", port, tls="none", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(MailError, match="timed out"):
            await mailer.send(message())
        assert time.monotonic() - started < 2
    finally:
        for writer in writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        server.close()
        await server.wait_closed()


async def test_smtp_auth() -> None:
    handler = Collector(require_auth=True)
    controller = start_smtp(handler, authenticator=authenticator, auth_require_tls=False)
    try:
        port = controller.port
        # No credentials: the server refuses the mail.
        with pytest.raises(MailError, match="530"):
            await SmtpMailer("127.0.0.1", port, tls="none", timeout=5).send(message())
        # Wrong password: refused, and the error names neither password.
        wrong = SmtpMailer("127.0.0.1", port, "none", "relay-user", "wrong-pw", timeout=5)
        with pytest.raises(MailError) as info:
            await wrong.send(message())
        assert "wrong-pw" not in str(info.value)
        assert info.value.__cause__ is None
        # Right credentials: delivered.
        right = SmtpMailer("127.0.0.1", port, "none", "relay-user", PASSWORD, timeout=5)
        assert PASSWORD not in repr(right)
        await right.send(message())
        assert CODE in part(received(handler), "plain")
    finally:
        controller.stop()


async def test_starttls(tls_files: tuple[Path, Path]) -> None:
    handler = Collector()
    controller = start_smtp(
        handler,
        tls_context=server_tls(tls_files),
        require_starttls=True,
        authenticator=authenticator,
    )
    try:
        mailer = SmtpMailer(
            "127.0.0.1",
            controller.port,
            "starttls",
            "relay-user",
            PASSWORD,
            timeout=5,
            tls_context=client_tls(tls_files),
        )
        await mailer.send(message())
        assert CODE in part(received(handler), "plain")
        # An untrusted certificate is refused (default verification).
        untrusted = SmtpMailer("127.0.0.1", controller.port, "starttls", timeout=5)
        with pytest.raises(MailError):
            await untrusted.send(message())
    finally:
        controller.stop()


async def test_starttls_required_but_not_offered(smtp: tuple[Collector, int]) -> None:
    handler, port = smtp
    mailer = SmtpMailer("127.0.0.1", port, tls="starttls", timeout=5)
    with pytest.raises(MailError):
        await mailer.send(message())
    assert handler.envelopes == []  # nothing went out in clear


async def test_implicit_tls(tls_files: tuple[Path, Path]) -> None:
    handler = Collector()
    controller = start_smtp(handler, ssl_context=server_tls(tls_files))
    try:
        mailer = SmtpMailer(
            "127.0.0.1",
            controller.port,
            tls="implicit",
            timeout=5,
            tls_context=client_tls(tls_files),
        )
        await mailer.send(message())
        assert CODE in part(received(handler), "plain")
    finally:
        controller.stop()


def test_smtp_mailer_config_checks() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SmtpMailer("smtp.example.com", 25, "none", "u", "p")
    with pytest.raises(ValueError, match="together"):
        SmtpMailer("smtp.example.com", 587, "starttls", "u", None)
    with pytest.raises(ValueError, match="tls"):
        SmtpMailer("smtp.example.com", 587, "ssl", None, None)  # type: ignore[arg-type]


async def test_console_mailer() -> None:
    out = io.StringIO()
    await ConsoleMailer(out).send(message())
    text = out.getvalue()
    assert "development only" in text
    assert f"\n{CODE}\n" in text
    assert "Bcc:" not in text.split("\n\n", 1)[0]
