"""A response that has begun is never followed by a second one on the same connection.

sidecar/http_errors.py and the entry step's last-resort handler promise this: an error
after a response chose its framing (a chunked writer) or wrote a byte closes the
connection instead of writing an error page that would be framed two ways.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from sidecar.http_errors import QuietAppRunner
from sidecar.middleware.entry import entry_middleware
from tests.smuggling.client import BrokenResponse, RawClient, request


async def fails_while_preparing(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    # aiohttp chooses chunked framing, then refuses to write this header: the writer is
    # left chunked with nothing sent.
    response.headers["X-Broken"] = "a\x01b"
    await response.prepare(request)
    return response


async def fails_after_the_head(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"partial")
    raise RuntimeError("the handler broke mid-body")


@asynccontextmanager
async def serve(handler: web.Handler) -> AsyncIterator[int]:
    app = web.Application(middlewares=[entry_middleware(trusted_proxies=())])
    app.router.add_get("/", handler)
    # Served by hand, not by aiohttp_server: its TestServer runs a plain AppRunner, and the
    # product's QuietAppRunner (what sidecar.serve runs) is part of what is checked here.
    runner = QuietAppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("handler", [fails_while_preparing, fails_after_the_head])
async def test_an_error_after_a_response_began_closes_the_connection(
    handler: web.Handler,
) -> None:
    async with serve(handler) as port:
        client = await RawClient.open(port)
        await client.send(request("/") + request("/"))  # pipelined: the second is never answered
        try:
            replies = await client.responses(2, timeout=5)
        except BrokenResponse as exc:
            # A cut body is what the client may see; two framings of one answer it may not.
            if "ended inside a response" not in str(exc):
                raise
            replies = []
        closed = await client.closed_by_peer()
        await client.close()
    assert all(r.status != 500 for r in replies)
    assert len(replies) <= 1
    assert closed
