"""A sample TicketLog desk for `demo` and the tests: it shows what the sidecar sends it.

Development only. It trusts the identity headers because, in the pod, only the
sidecar can reach it (it listens on loopback).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import html
import json
from urllib.parse import unquote

from aiohttp import WSMsgType, web

SHOWN_HEADERS = (
    "X-TicketLog-User",
    "X-TicketLog-Email",
    "X-TicketLog-Given-Name",
    "X-TicketLog-Family-Name",
    "X-TicketLog-Name",
    "X-TicketLog-Roles",
    "X-TicketLog-Identity",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Request-Id",
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TicketLog desk</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;
color:#1f2933}}table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #cbd2d9;
padding:.4rem;text-align:left;vertical-align:top}}td{{word-break:break-all}}
th{{background:#f0f4f8;white-space:nowrap}}
</style></head><body><h1>TicketLog service desk (sample)</h1>
<p id="greeting">{greeting}</p>
<h2>Identity headers this desk received</h2><table>{rows}</table>
<p><a href="/logout">Sign out of the desk</a> · <a href="/.sso/logout">Sign out (SSO)</a></p>
</body></html>"""


async def index(request: web.Request) -> web.Response:
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
        for name in SHOWN_HEADERS
        for value in [request.headers.get(name, "—")]
    )
    name = unquote(request.headers.get("X-TicketLog-Name", ""))
    greeting = f"Hello, {html.escape(name)}." if name else "You are not signed in."
    return web.Response(text=_PAGE.format(greeting=greeting, rows=rows), content_type="text/html")


async def echo(request: web.Request) -> web.Response:
    """Everything the desk received, as JSON: the tests' window into the desk."""
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_length": len(body),
        }
    )


async def upload(request: web.Request) -> web.Response:
    """Consumes a body of any size chunk by chunk and reports its length and digest."""
    digest = hashlib.sha256()
    total = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        total += len(chunk)
    return web.json_response({"length": total, "sha256": digest.hexdigest()})


async def download(request: web.Request) -> web.StreamResponse:
    """Streams `size` bytes of a repeating pattern; `chunked=1` omits Content-Length."""
    size = int(request.query.get("size", "1024"))
    response = web.StreamResponse()
    response.content_type = "application/octet-stream"
    if request.query.get("chunked") != "1":
        response.content_length = size
    await response.prepare(request)
    block = bytes(range(256)) * 256  # 64 KiB
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        await response.write(piece)
        sent += len(piece)
    await response.write_eof()
    return response


async def gzipped(request: web.Request) -> web.Response:
    body = gzip.compress(b"compressed hello " * 100)
    return web.Response(
        body=body, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"}
    )


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("delay", "1")))
    return web.Response(text="slow done")


async def reset_mid_body(request: web.Request) -> web.StreamResponse:
    """Promises a body, sends part of it, then drops the connection (a crashing desk)."""
    response = web.StreamResponse()
    response.content_length = 1_000_000
    await response.prepare(request)
    await response.write(b"x" * 10_000)
    assert request.transport is not None
    request.transport.close()
    return response


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/elsewhere?from=desk")


async def set_cookie(request: web.Request) -> web.Response:
    response = web.Response(text="cookies set")
    response.set_cookie("desk_session", "d1", httponly=True)
    response.set_cookie("desk_pref", "dark")
    return response


async def logout(request: web.Request) -> web.Response:
    return web.Response(text="desk signed out")


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("chat", "v2.chat"))
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            if message.data.startswith("close:"):
                await ws.close(code=int(message.data.split(":", 1)[1]), message=b"bye")
                break
            if message.data == "whoami":
                await ws.send_str(json.dumps(dict(request.headers)))
            else:
                await ws.send_str("echo:" + message.data)
        elif message.type == WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


def make_desk_app() -> web.Application:
    app = web.Application(client_max_size=1024**4)
    app.router.add_get("/", index)
    app.router.add_get("/ws", websocket)
    app.router.add_post("/upload", upload)
    app.router.add_get("/download", download)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/slow", slow)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/reset-mid-body", reset_mid_body)
    app.router.add_get("/set-cookie", set_cookie)
    app.router.add_route("*", "/logout", logout)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app
