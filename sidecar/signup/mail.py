"""The verification mail: building it safely and handing it to a relay.

SECURITY (header injection): the recipient's display name comes from the
Entra ID token (``name``, which a user can often edit) and the desk name from
config; both end up in headers. A CR/LF in either could add headers such as
``Bcc:`` and turn the sidecar into a spam relay. Every header value is built
through ``email.headerregistry.Address`` / ``policy.SMTP`` after control
characters are stripped, so non-ASCII text is RFC 2047 encoded and nothing a
user controls can end a header line. The SMTP envelope is set explicitly from
the parsed addresses, never re-derived from raw header text.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import ssl
import sys
import unicodedata
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Literal, Protocol, TextIO

import aiosmtplib

from sidecar.pages.i18n import DEFAULT_LANGUAGE, language

TlsMode = Literal["starttls", "implicit", "none"]

_MAX_DISPLAY = 120
# Bidirectional overrides/isolates let a name render reversed ("gro.elpmaxe").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class MailError(Exception):
    """The mail could not be handed to the relay.

    The message names the relay and what failed; it never contains the SMTP
    password, the code or the mail body, so it can be logged and shown to an
    operator as is.
    """


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver to the relay or raise MailError."""


def clean_header_text(value: str, *, max_length: int = _MAX_DISPLAY) -> str:
    """Text that is safe inside a header: one line, no control characters.

    SECURITY: removes CR, LF and every other control character (Unicode
    category Cc, line/paragraph separators, bidi overrides) rather than
    rejecting, because the value comes from a token the user cannot easily
    fix. Runs of whitespace collapse to one space.
    """
    out = []
    for ch in value:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS or ch.isspace():
            out.append(" ")
        else:
            out.append(ch)
    text = " ".join("".join(out).split())
    return text[:max_length].strip()


def _has_control(value: str) -> bool:
    return any(unicodedata.category(c) == "Cc" or c in "\u2028\u2029" for c in value)


def _address(display_name: str, addr_spec: str, what: str) -> Address:
    # SECURITY: an address is data from config or a verified email; one with a
    # control character is refused outright (no guessing which part was meant).
    if _has_control(addr_spec) or not addr_spec.isascii():
        raise ValueError(f"invalid {what} address")
    try:
        return Address(display_name=clean_header_text(display_name), addr_spec=addr_spec)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"invalid {what} address") from exc


def parse_from_address(from_addr: str) -> Address:
    """``"TicketLog <no-reply@example.com>"`` or a bare address, as an Address."""
    if _has_control(from_addr):
        raise ValueError("invalid from address")
    name, addr = parseaddr(from_addr)
    if not addr or "@" not in addr:
        raise ValueError("invalid from address")
    return _address(name, addr, "from")


def build_verification_message(
    *,
    from_addr: str,
    to_addr: str,
    display_name: str | None,
    desk_name: str,
    code: str,
    code_ttl_minutes: int,
    lang: str = DEFAULT_LANGUAGE,
) -> EmailMessage:
    """The verification mail in ``lang``: plain text (the code on its own line) plus HTML."""
    if len(code) != 6 or not all("0" <= c <= "9" for c in code):
        raise ValueError("code must be 6 ASCII digits")
    speaks = language(lang)
    _ = speaks.gettext
    sender = parse_from_address(from_addr)
    recipient = _address(display_name or "", to_addr, "recipient")
    desk = clean_header_text(desk_name) or _("your service desk")
    greeting_name = recipient.display_name

    msg = EmailMessage(policy=email_policy.SMTP)
    msg["Subject"] = _("Your TicketLog verification code for %(desk)s") % {"desk": desk}
    msg["From"] = sender
    msg["To"] = recipient
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.domain or None)
    # RFC 3834: tell auto-responders (vacation replies, Exchange's OOF via the
    # X- header) not to answer a no-reply sender.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"

    minutes = speaks.ngettext("%(n)s minute", "%(n)s minutes", code_ttl_minutes) % {
        "n": code_ttl_minutes
    }
    lines = {
        "code_is": _("Your verification code for %(desk)s is:"),
        "enter": _(
            "Enter it on the sign-up page to confirm your email address. "
            "It expires in %(minutes)s and works once."
        ),
        "ignore": _(
            "If you did not try to sign in to %(desk)s, ignore this email: "
            "no account is created without the code. Never share this code."
        ),
    }

    def text(key: str, escape: bool = False) -> str:
        values = {"desk": desk, "minutes": minutes}
        if escape:
            values = {k: html.escape(v) for k, v in values.items()}
        return lines[key] % values

    def greeting(name: str) -> str:
        return _("Hello %(name)s,") % {"name": name} if name else _("Hello,")

    plain = (
        f"{greeting(greeting_name)}\n\n"
        f"{text('code_is')}\n\n"
        f"{code}\n\n"
        f"{text('enter')}\n\n"
        f"{text('ignore')}\n"
    )
    # quoted-printable keeps the digits readable in the raw mail whatever the
    # charset of the names around them (base64 would hide them).
    msg.set_content(plain, cte="quoted-printable")

    # SECURITY (HTML injection in the mail): every interpolated value is
    # escaped; the names come from the ID token and could carry markup.
    e = html.escape
    title = _("%(desk)s verification code") % {"desk": e(desk)}
    html_body = (
        "<!DOCTYPE html>\n"
        f'<html lang="{speaks.code}"><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n"
        '<body style="font-family:sans-serif">\n'
        f"<p>{greeting(e(greeting_name))}</p>\n"
        f"<p>{text('code_is', escape=True)}</p>\n"
        '<p style="font-size:28px;font-weight:bold;letter-spacing:6px;font-family:monospace">'
        f"{e(code)}</p>\n"
        f"<p>{text('enter', escape=True)}</p>\n"
        f"<p>{text('ignore', escape=True)}</p>\n"
        "</body></html>\n"
    )
    msg.add_alternative(html_body, subtype="html", cte="quoted-printable")
    msg["Content-Language"] = speaks.code  # RFC 3282 (set_content drops Content-* headers)
    return msg


def _envelope(message: EmailMessage) -> tuple[str, list[str]]:
    """Sender and recipients from the parsed address headers (not from raw text)."""
    from_header = message.get("From")
    to_header = message.get("To")
    senders: tuple[Address, ...] = getattr(from_header, "addresses", ())
    tos: tuple[Address, ...] = getattr(to_header, "addresses", ())
    recipients = [a.addr_spec for a in tos]
    if len(senders) != 1 or not recipients:
        raise MailError("message has no single From address or no To address")
    return senders[0].addr_spec, recipients


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SmtpMailer:
    """Hands mail to an SMTP relay with aiosmtplib.

    ``tls``: "starttls" (port 587: upgrade required, refused if the server does
    not offer it), "implicit" (port 465: TLS from the first byte) or "none"
    (a local relay only). ``timeout`` bounds the whole send, connect included.
    ``tls_context`` overrides certificate verification (e.g. a private CA).
    """

    def __init__(
        self,
        host: str,
        port: int,
        tls: TlsMode = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        *,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if tls not in ("starttls", "implicit", "none"):
            raise ValueError("tls must be starttls, implicit or none")
        if (username is None) != (password is None):
            raise ValueError("SMTP username and password go together")
        if username is not None and tls == "none" and not _is_loopback(host):
            # SECURITY (credential sniffing): AUTH PLAIN/LOGIN over cleartext
            # hands the relay password to anyone on the path.
            raise ValueError("SMTP login without TLS is only allowed to a loopback relay")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.host = host
        self.port = port
        self.tls: TlsMode = tls
        self.username = username
        self._password = password
        self.timeout = timeout
        self._tls_context = tls_context

    def __repr__(self) -> str:
        # SECURITY: no password in reprs (logged config, tracebacks).
        return f"SmtpMailer(host={self.host!r}, port={self.port}, tls={self.tls!r})"

    async def send(self, message: EmailMessage) -> None:
        sender, recipients = _envelope(message)
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.tls == "implicit",
            # True = STARTTLS required (fail if not offered); False = never.
            start_tls=self.tls == "starttls",
            tls_context=self._tls_context,
            timeout=self.timeout,
        )
        where = f"SMTP {self.host}:{self.port}"
        try:
            async with asyncio.timeout(self.timeout):
                async with client:
                    if self.username is not None and self._password is not None:
                        await client.login(self.username, self._password)
                    await client.send_message(message, sender=sender, recipients=recipients)
        except TimeoutError:
            raise MailError(f"{where}: timed out after {self.timeout:g}s") from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise MailError(f"{where}: login refused ({exc.code})") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise MailError(
                f"{where}: server answered {exc.code} {self._safe(exc.message)}"
            ) from None
        except aiosmtplib.SMTPException as exc:
            raise MailError(f"{where}: {type(exc).__name__}: {self._safe(str(exc))}") from None
        except OSError as exc:  # refused, unreachable, TLS handshake (ssl.SSLError)
            raise MailError(f"{where}: {type(exc).__name__}: {self._safe(str(exc))}") from None

    def _safe(self, text: str) -> str:
        # Server replies are echoed for the operator; make sure no secret rides
        # along (a relay could echo the AUTH line) and keep it one short line.
        # `from None` above drops the chained aiosmtplib exception for the same reason.
        if self._password:
            text = text.replace(self._password, "***")
        return clean_header_text(text, max_length=300)


class ConsoleMailer:
    """Prints the mail instead of sending it: the development demo only.

    It writes live verification codes to the stream, so the config layer must
    never select it in production.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout

    async def send(self, message: EmailMessage) -> None:
        text = message.as_string(policy=message.policy.clone(linesep="\n"))
        banner = "=" * 20 + " ticketlog-sso console mail (development only) " + "=" * 20
        self._stream.write(f"{banner}\n{text}\n{'=' * len(banner)}\n")
        self._stream.flush()
