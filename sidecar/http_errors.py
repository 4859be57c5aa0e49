"""Answers to requests aiohttp cannot parse, without echoing what the client sent.

SECURITY: aiohttp's default answer to an unparseable request (a header line over
8190 bytes, a malformed request line) quotes the offending bytes in the response
body and logs them with a traceback. Those bytes can hold a session cookie or an
authorization code (`/.sso/callback?code=...`), so our listeners answer with the
status phrase only and log the error kind, never the text.

A response that has begun (its framing chosen or bytes written) is never followed by a
second one on the same connection: that answer would be framed two ways (a chunked
writer under a Content-Length), so the connection is closed instead.
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from sidecar import logs
from sidecar.responses import SERVER_NAME


def response_started(request: BaseRequest) -> bool:
    """True once a response to `request` has chosen its framing or written a byte."""
    writer = request.writer
    return writer.output_size > 0 or bool(getattr(writer, "chunked", False))


class _QuietErrorsHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if response_started(request):
            raise ConnectionError("response already started; closing the connection")
        logs.warning(
            "bad_http_request",
            status=status,
            kind=type(exc).__name__ if exc is not None else None,
            client_ip=request.remote,
        )
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        response = web.Response(status=status, text=f"{status} {phrase}\n")
        # No app, so no on_response_prepare: named here, like every other answer (no
        # Python or aiohttp version for an attacker to look up).
        response.headers["Server"] = SERVER_NAME
        response.force_close()
        return response


class _QuietErrorsServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _QuietErrorsHandler(self, loop=self._loop, **self._kwargs)


class QuietAppRunner(web.AppRunner):
    """An AppRunner whose connections answer parse errors with the status phrase only."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # Only __call__ differs (which handler class serves a connection), so the server
        # aiohttp built is kept as it is, with that one method replaced.
        server.__class__ = _QuietErrorsServer
        return server
