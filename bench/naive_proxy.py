"""The baseline: the simplest streaming aiohttp reverse proxy a team would write first.

    .venv/bin/python -m bench.naive_proxy --port 8001 --upstream http://127.0.0.1:8000

One pooled `ClientSession`, `session.request` with the client's headers (the
hop-by-hop ones removed), the response streamed back through a
`StreamResponse` chunk by chunk. No tenants, no sessions, no identity, no
metrics, no logging: what the sidecar costs on top of this is the price of its
features. Runs on uvloop when it is installed, like `ticketlog-sso serve`.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from bench.procs import run_loop

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

CLIENT = web.AppKey("client", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", URL)


def _end_to_end(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP)


async def proxy(request: web.Request) -> web.StreamResponse:
    client = request.app[CLIENT]
    url = request.app[UPSTREAM].join(URL(request.raw_path, encoded=True))
    async with client.request(
        request.method,
        url,
        headers=_end_to_end(request.headers),
        data=request.content if request.body_exists else None,
        allow_redirects=False,
    ) as upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(_end_to_end(upstream.headers))
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def main(host: str, port: int, upstream: str) -> None:
    app = web.Application()
    app[UPSTREAM] = URL(upstream)
    app[CLIENT] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
    )
    app.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=4096).start()
    try:
        await asyncio.Event().wait()
    finally:
        await app[CLIENT].close()
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    run_loop(main(args.host, args.port, args.upstream))
