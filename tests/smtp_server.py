"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

from __future__ import annotations

import asyncio
import re
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session


class Collector:
    """aiosmtpd handler keeping what it receives; optionally insists on AUTH."""

    def __init__(self, require_auth: bool = False) -> None:
        self.envelopes: list[Envelope] = []
        self.require_auth = require_auth

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        out = []
        for envelope in self.envelopes:
            content = envelope.original_content
            assert isinstance(content, bytes)
            parsed = message_from_bytes(content, policy=email_policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out

    def last_code(self, to: str | None = None) -> str:
        """The 6-digit code in the plain-text part of the newest mail (to ``to``)."""
        for message in reversed(self.messages()):
            if to is not None and to.lower() not in str(message["To"]).lower():
                continue
            plain = message.get_body(preferencelist=("plain",))
            assert plain is not None
            match = re.search(r"^\s*(\d{6})\s*$", plain.get_content(), re.MULTILINE)
            assert match, plain.get_content()
            return match.group(1)
        raise AssertionError(f"no mail to {to}")


class EphemeralController(Controller):
    """Controller on port 0: the kernel picks a free port, no collisions between runs."""

    def _create_server(self) -> Any:
        async def create() -> asyncio.AbstractServer:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=0, ssl=self.ssl_context
            )
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()


def start_smtp(handler: Collector, **kwargs: Any) -> EphemeralController:
    controller = EphemeralController(handler, hostname="127.0.0.1", **kwargs)
    controller.start()
    return controller
