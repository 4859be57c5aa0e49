"""The streaming proxy, end to end: a real sidecar in front of the real sample desk."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from sidecar.store.redis_store import RedisStore
from tests.helpers import RunningSidecar, base_config, config_from, raw_http, run_sidecar

HOST = "desk.example.test"


@pytest.fixture
async def sidecar(desk_url: str) -> AsyncIterator[RunningSidecar]:
    async with run_sidecar(config_from(base_config(desk_url, public_paths=["/assets/"]))) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def desk_view(
    http: aiohttp.ClientSession, sidecar: RunningSidecar, path: str = "/echo", **kw: Any
) -> dict[str, Any]:
    headers = {"Host": HOST, **kw.pop("headers", {})}
    async with http.get(sidecar.url + path, headers=headers, **kw) as response:
        assert response.status == 200, await response.text()
        data: dict[str, Any] = await response.json()
        return data


def header_names(view: dict[str, Any]) -> list[str]:
    return [name.lower() for name, _ in view["headers"]]


async def test_request_reaches_desk_with_original_host_and_forwarding_headers(
    http: aiohttp.ClientSession, sidecar: RunningSidecar
) -> None:
    view = await desk_view(http, sidecar, "/echo/path?q=1&q=2")
    headers = CIMultiDict(view["headers"])
    assert view["path"] == "/echo/path?q=1&q=2"
    assert headers["Host"] == HOST
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == HOST
    assert re.fullmatch(r"[0-9a-f]{22}", headers["X-Request-Id"])


IDENTITY_SPELLINGS = [
    "X-TicketLog-User",
    "x-ticketlog-user",
    "X_TicketLog_User",
    "x_ticketlog-user",
    "X-TICKETLOG-EMAIL",
    "X-Ticketlog_Email",
    "X-TicketLog-Given-Name",
    "X_TicketLog_Family_Name",
    "X-TicketLog-Name",
    "X-TicketLog-Identity",
    "x_ticketlog_identity",
]


@pytest.mark.parametrize("path", ["/echo/private", "/assets/app.css"])
async def test_spoofed_identity_headers_never_reach_the_desk(
    http: aiohttp.ClientSession, sidecar: RunningSidecar, path: str
) -> None:
    # Raw bytes, so every spelling and duplicate arrives exactly as an attacker sends it.
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
    lines += [f"{name}: forged-{i}" for i, name in enumerate(IDENTITY_SPELLINGS)]
    lines += ["X-TicketLog-User: second-copy"]
    reply = await raw_http(
        sidecar.listeners.public_port, ("\r\n".join(lines) + "\r\n\r\n").encode()
    )
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    body = reply.split(b"\r\n\r\n", 1)[1]
    assert b"forged" not in body
    assert b"second-copy" not in body
    assert b"ticketlog" not in body.lower()


async def test_spoofed_forwarding_headers_are_replaced_for_untrusted_peers(
    http: aiohttp.ClientSession, sidecar: RunningSidecar
) -> None:
    view = await desk_view(
        http,
        sidecar,
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.test",
            "X-Request-Id": "attacker-chosen",
        },
    )
    headers = CIMultiDict(view["headers"])
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == HOST
    assert headers["X-Request-Id"] != "attacker-chosen"


async def test_trusted_proxy_forwarding_is_appended_and_kept(desk_url: str) -> None:
    document = base_config(desk_url)
    document["server"]["trusted_proxies"] = ["127.0.0.0/8"]
    async with run_sidecar(config_from(document)) as sidecar, aiohttp.ClientSession() as http:
        view = await desk_view(
            http,
            sidecar,
            headers={
                "Host": "internal-service:8080",
                "X-Forwarded-For": "203.0.113.9",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": HOST,
                "X-Request-Id": "ingress-id-1",
            },
        )
    headers = CIMultiDict(view["headers"])
    assert headers["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "https"
    assert headers["X-Forwarded-Host"] == HOST
    assert headers["X-Request-Id"] == "ingress-id-1"


async def test_hop_by_hop_and_connection_listed_headers_are_removed(
    http: aiohttp.ClientSession, sidecar: RunningSidecar
) -> None:
    view = await desk_view(
        http,
        sidecar,
        headers={"Connection": "keep-alive, X-Secret-Hop", "X-Secret-Hop": "1", "TE": "trailers"},
    )
    names = header_names(view)
    assert "x-secret-hop" not in names
    assert "te" not in names


async def test_unknown_host_is_421_and_nothing_is_forwarded(
    http: aiohttp.ClientSession, sidecar: RunningSidecar
) -> None:
    async with http.get(
        sidecar.url + "/", headers={"Host": "other.test", "Accept": "text/html"}
    ) as r:
        assert r.status == 421
        assert "Unknown service desk" in await r.text()


@pytest.mark.parametrize(
    ("host_lines", "status"),
    [
        ([], b"400"),
        (["Host: "], b"400"),
        ([f"Host: {HOST}", f"Host: {HOST}"], b"400"),
        ([f"Host: {HOST}", "Host: other.test"], b"400"),
        ([f"Host: {HOST.upper()}."], b"200"),
        ([f"Host: {HOST}:8443"], b"200"),
        (["Host: other.test"], b"421"),
    ],
)
async def test_host_header_rules(
    sidecar: RunningSidecar, host_lines: list[str], status: bytes
) -> None:
    request = "\r\n".join(["GET /echo HTTP/1.1", *host_lines, "Connection: close"]) + "\r\n\r\n"
    reply = await raw_http(sidecar.listeners.public_port, request.encode())
    assert reply.split(b" ", 2)[1] == status, reply[:200]


async def test_absolute_form_target_never_chooses_the_tenant(sidecar: RunningSidecar) -> None:
    request = (
        f"GET http://{HOST}/echo HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n"
    ).encode()
    reply = await raw_http(sidecar.listeners.public_port, request)
    assert reply.startswith(b"HTTP/1.1 421")
    request = (
        f"GET http://other.test/echo/x HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
    ).encode()
    reply = await raw_http(sidecar.listeners.public_port, request)
    assert reply.startswith(b"HTTP/1.1 200")
    assert b'"path": "/echo/x"' in reply


async def test_our_cookies_are_removed_and_the_desks_pass(
    http: aiohttp.ClientSession, sidecar: RunningSidecar
) -> None:
    view = await desk_view(
        http,
        sidecar,
        headers={"Cookie": "desk_session=abc; tlsso_session=secret1; __Host-tlsso_session=s2; a=b"},
    )
    cookie = CIMultiDict(view["headers"])["Cookie"]
    assert cookie == "desk_session=abc; a=b"
    async with http.get(sidecar.url + "/set-cookie", headers={"Host": HOST}) as response:
        assert len(response.headers.getall("Set-Cookie")) == 2


async def test_redirects_and_compressed_bodies_pass_unchanged(
    http: aiohttp.ClientSession, sidecar: RunningSidecar
) -> None:
    async with http.get(
        sidecar.url + "/redirect", headers={"Host": HOST}, allow_redirects=False
    ) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/elsewhere?from=desk"
    async with http.get(sidecar.url + "/gzip", headers={"Host": HOST}) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await response.read()) == b"compressed hello " * 100


async def test_large_upload_and_download_stream_through(
    http: aiohttp.ClientSession, sidecar: RunningSidecar
) -> None:
    size = 100 * 1024 * 1024
    block = bytes(range(256)) * 4096  # 1 MiB
    expected = hashlib.sha256()
    for _ in range(size // len(block)):
        expected.update(block)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    async with http.post(sidecar.url + "/upload", data=body(), headers={"Host": HOST}) as r:
        assert r.status == 200
        assert await r.json() == {"length": size, "sha256": expected.hexdigest()}
    for chunked in ("0", "1"):
        digest = hashlib.sha256()
        received = 0
        async with http.get(
            sidecar.url + f"/download?size={size}&chunked={chunked}", headers={"Host": HOST}
        ) as r:
            assert r.status == 200
            if chunked == "0":
                assert r.headers["Content-Length"] == str(size)
            else:
                assert r.headers["Transfer-Encoding"] == "chunked"
            async for chunk in r.content.iter_any():
                digest.update(chunk)
                received += len(chunk)
        assert received == size


async def test_content_length_upload(http: aiohttp.ClientSession, sidecar: RunningSidecar) -> None:
    payload = b"x" * 300_000
    async with http.post(sidecar.url + "/echo", data=payload, headers={"Host": HOST}) as r:
        view = await r.json()
    assert view["body_length"] == len(payload)
    assert CIMultiDict(view["headers"])["Content-Length"] == str(len(payload))


async def test_websocket_is_proxied_both_ways_with_close_codes(
    http: aiohttp.ClientSession, sidecar: RunningSidecar
) -> None:
    async with http.ws_connect(
        sidecar.url + "/ws",
        headers={"Host": HOST, "X_TicketLog_User": "forged"},
        protocols=["chat"],
    ) as ws:
        assert ws.protocol == "chat"
        await ws.send_str("hello")
        assert (await ws.receive()).data == "echo:hello"
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive()).data == b"\x00\x01"
        await ws.send_str("whoami")
        seen = json.loads((await ws.receive()).data)
        assert not any("ticketlog" in k.lower() for k in seen)
        await ws.send_str("close:4001")
        message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert message.data == 4001


async def test_dead_desk_gives_502_page_and_json(http: aiohttp.ClientSession) -> None:
    async with run_sidecar(config_from(base_config("http://127.0.0.1:1"))) as sidecar:
        async with http.get(sidecar.url + "/", headers={"Host": HOST, "Accept": "text/html"}) as r:
            assert r.status == 502
            text = await r.text()
            assert "unavailable" in text
            assert "Traceback" not in text
        async with http.get(sidecar.url + "/api", headers={"Host": HOST}) as r:
            assert r.status == 502
            assert (await r.json())["error"] == "upstream_unavailable"


async def test_slow_desk_gives_504(desk_url: str, http: aiohttp.ClientSession) -> None:
    document = base_config(desk_url)
    document["server"]["upstream_read_timeout"] = "0.3s"
    async with (
        run_sidecar(config_from(document)) as sidecar,
        http.get(sidecar.url + "/slow?delay=2", headers={"Host": HOST}) as r,
    ):
        assert r.status == 504
        assert (await r.json())["error"] == "upstream_timeout"


async def test_sso_prefix_is_never_forwarded_on_sso_less_tenant(
    http: aiohttp.ClientSession, sidecar: RunningSidecar
) -> None:
    for path in ("/.sso/login", "/.sso/anything", "/%2Esso/login"):
        async with http.get(sidecar.url + path, headers={"Host": HOST}) as r:
            assert r.status == 404, path
            assert (await r.json())["error"] == "not_found"


async def test_admin_routes_only_on_admin_port(
    http: aiohttp.ClientSession, sidecar: RunningSidecar
) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        async with http.get(sidecar.url + path, headers={"Host": HOST}) as r:
            view = await r.json()
            assert view["path"] == path  # the desk answered: the sidecar kept nothing here
        async with http.get(sidecar.admin_url + path) as r:
            assert r.status == 200
    async with http.get(sidecar.admin_url + "/metrics") as r:
        text = await r.text()
    assert (
        'ticketlog_sso_requests_total{method="GET",status_class="2xx",tenant="desk.example.test"}'
        in text
    )
    assert "ticketlog_sso_upstream_response_seconds_bucket" in text


async def test_readyz_follows_the_store(desk_url: str, http: aiohttp.ClientSession) -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0")
    try:
        async with (
            run_sidecar(config_from(base_config(desk_url)), store=store) as sidecar,
            http.get(sidecar.admin_url + "/readyz") as r,
        ):
            assert r.status == 503
            assert (await r.json())["store"] == "unavailable"
    finally:
        await store.close()


async def test_many_concurrent_requests_share_the_pool(
    http: aiohttp.ClientSession, sidecar: RunningSidecar
) -> None:
    async def one(i: int) -> int:
        async with http.get(sidecar.url + f"/echo/{i}", headers={"Host": HOST}) as r:
            await r.read()
            return r.status

    statuses = await asyncio.gather(*(one(i) for i in range(200)))
    assert set(statuses) == {200}
