"""What operators read: access-log lines with the real body bytes, fixed event names,
a Server header that names no versions, and the metrics they expect."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from bench.procs import free_port
from sidecar import logs
from sidecar.access_log import ACCESS_LOG
from sidecar.config.model import Config
from sidecar.version import sidecar_version
from tests.helpers import base_config, config_from, raw_http, run_sidecar

HOST = "desk.example.test"


def _sso_config(desk: str, **extra: object) -> Config:
    """One SSO tenant (its /.sso/ routes answer); Entra is never reached by these tests."""
    document = base_config(
        desk,
        plan="pro",
        sso={
            "tenant": "contoso.test",
            "client_id": "11111111-2222-3333-4444-555555555555",
            "client_secret": "not-used-here",
            "authority": "http://127.0.0.1:9",
        },
        **extra,
    )
    document["email"] = {"backend": "console"}
    return config_from(document)


def _lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


async def test_access_log_bytes_are_the_body_bytes_sent(
    capsys: pytest.CaptureFixture[str], desk_url: str
) -> None:
    async with (
        run_sidecar(_sso_config(desk_url, public_paths=["/download"])) as sidecar,
        aiohttp.ClientSession(auto_decompress=False) as http,
    ):
        capsys.readouterr()
        sizes = {}
        for target in (
            "/download?size=100000",
            "/download?size=70000&chunked=1",
            "/.sso/jwks.json",
        ):
            async with http.get(sidecar.url + target, headers={"Host": HOST}) as answer:
                sizes[target.split("?")[0] + ("-chunked" if "chunked" in target else "")] = len(
                    await answer.read()
                )
        async with http.get(sidecar.url + "/", headers={"Host": "unknown.example"}) as answer:
            unknown = await answer.read()
            assert answer.status == 421
        async with http.head(sidecar.url + "/download?size=5000", headers={"Host": HOST}) as h:
            assert h.status == 200
    ACCESS_LOG.flush()
    lines = [line for line in _lines(capsys.readouterr().err) if line["event"] == "request"]
    by_path: dict[tuple[object, ...], list[object]] = {}
    for line in lines:
        by_path.setdefault((line["method"], line["path"], line["status"]), []).append(line["bytes"])
    assert by_path[("GET", "/download", 200)] == [100000, 70000]
    assert sizes["/download"] == 100000
    assert sizes["/download-chunked"] == 70000
    assert by_path[("GET", "/.sso/jwks.json", 200)] == [sizes["/.sso/jwks.json"]]
    assert sizes["/.sso/jwks.json"] > 100
    assert by_path[("GET", "/", 421)] == [len(unknown)]
    assert len(unknown) > 0
    assert by_path[("HEAD", "/download", 200)] == [0]


def _get(target: str, host: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


async def test_requests_answered_before_a_tenant_is_chosen_are_logged_under_a_dash(
    capsys: pytest.CaptureFixture[str], desk_url: str
) -> None:
    async with run_sidecar(_sso_config(desk_url)) as sidecar:
        ACCESS_LOG.flush()  # lines of requests before this test's
        capsys.readouterr()
        port = sidecar.listeners.public_port
        # The entry step refuses the first before any Host is read, the tenant step the
        # next two; the last one is answered for the tenant.
        fragment = await raw_http(port, _get("/fragment#x", HOST))
        bad_host = await raw_http(port, _get("/bad-host", f"{HOST}:port"))
        unknown = await raw_http(port, _get("/unknown", "unknown.example"))
        served = await raw_http(port, _get("/.sso/jwks.json", HOST))
    ACCESS_LOG.flush()
    logged = {
        line["path"]: (line["status"], line["tenant"])
        for line in _lines(capsys.readouterr().err)
        if line["event"] == "request"
    }
    assert fragment.startswith(b"HTTP/1.1 400 ")
    assert bad_host.startswith(b"HTTP/1.1 400 ")
    assert unknown.startswith(b"HTTP/1.1 421 ")
    assert served.startswith(b"HTTP/1.1 200 ")
    assert logged == {
        "/fragment#x": (400, "-"),
        "/bad-host": (400, "-"),
        "/unknown": (421, "-"),
        "/.sso/jwks.json": (200, HOST),
    }


async def test_the_server_header_names_no_python_or_aiohttp_version(desk_url: str) -> None:
    async with (
        run_sidecar(_sso_config(desk_url)) as sidecar,
        aiohttp.ClientSession() as http,
    ):
        for url, host in (
            (sidecar.url + "/.sso/jwks.json", HOST),
            (sidecar.url + "/anything", "unknown.example"),
            (sidecar.url + "/.sso/nope", HOST),
            (sidecar.admin_url + "/healthz", "localhost"),
            (sidecar.admin_url + "/metrics", "localhost"),
        ):
            async with http.get(url, headers={"Host": host}) as answer:
                server = answer.headers.get("Server", "")
                assert server == "ticketlog-sso", (url, server)
        # A request aiohttp cannot parse is answered before any app sees it.
        reply = await raw_http(
            sidecar.listeners.public_port, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"
        )
        assert reply.split(b" ", 2)[1] == b"400", reply[:40]
        assert b"\r\nServer: ticketlog-sso\r\n" in reply
        assert b"aiohttp" not in reply
        assert b"Python" not in reply


async def test_a_request_refused_before_the_pipeline_has_an_access_line_without_its_bytes(
    capsys: pytest.CaptureFixture[str], desk_url: str
) -> None:
    async with run_sidecar(_sso_config(desk_url)) as sidecar:
        ACCESS_LOG.flush()  # lines of requests before this test's
        capsys.readouterr()
        reply = await raw_http(
            sidecar.listeners.public_port,
            b"GET /.sso/callback?code=secret-code HTTP/1.1\r\nHost: x\r\n"
            b"Cookie: tlsso=secret-session\r\nBad Header: y\r\n\r\n",
        )
        assert reply.split(b" ", 2)[1] == b"400", reply[:40]
    ACCESS_LOG.flush()
    err = capsys.readouterr().err
    [line] = [line for line in _lines(err) if line["event"] == "request"]
    assert (line["status"], line["method"], line["path"], line["tenant"]) == (400, "-", "-", "-")
    assert line["bytes"] == len(reply.split(b"\r\n\r\n", 1)[1])
    assert line["client_ip"] == "127.0.0.1"
    assert "secret" not in err


async def test_metrics_carry_build_info_process_metrics_and_own_answer_latency(
    desk_url: str,
) -> None:
    async with (
        run_sidecar(_sso_config(desk_url)) as sidecar,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(sidecar.url + "/.sso/jwks.json", headers={"Host": HOST}) as answer:
            assert answer.status == 200
        async with http.get(sidecar.admin_url + "/metrics") as answer:
            text = await answer.text()
    assert 'ticketlog_sso_build_info{python="' in text
    assert f'version="{sidecar_version()}"' in text
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ):
        assert f"\n{name} " in text, name
    bucket = [
        line
        for line in text.splitlines()
        if line.startswith("ticketlog_sso_own_response_seconds_count{")
        and 'route="/.sso/jwks.json"' in line
        and 'status_class="2xx"' in line
    ]
    assert bucket, "no latency observed for /.sso/jwks.json"
    assert float(bucket[0].rsplit(" ", 1)[1]) >= 1


def test_every_log_line_has_a_fixed_event_identifier(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging()
    logging.getLogger("sidecar.oidc.provider").warning(
        "discovery for tenant %s failed: %s", "contoso.com", "timeout"
    )
    logs.warning("config_warning", field="session.store", message="memory")
    first, second = _lines(capsys.readouterr().err)
    assert first["event"] == "library_message"
    assert first["logger"] == "sidecar.oidc.provider"
    assert first["message"] == "discovery for tenant contoso.com failed: timeout"
    assert second["event"] == "config_warning"


def test_the_log_level_setting_drops_less_severe_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging(logging.WARNING)
    try:
        logs.event("signed_in", tenant="x")
        logs.warning("config_warning", field="f", message="m")
        events = [line["event"] for line in _lines(capsys.readouterr().err)]
        assert events == ["config_warning"]
    finally:
        logs.configure_logging()


async def test_readyz_with_desk_waits_for_the_desk_and_plain_readyz_does_not(desk_url: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    document = base_config(desk_url)
    document["tenants"].append({"host": "down.example.test", "upstream": closed})
    async with run_sidecar(config_from(document)) as sidecar, aiohttp.ClientSession() as http:
        async with http.get(sidecar.admin_url + "/readyz") as answer:
            assert answer.status == 200
            assert "desk" not in await answer.json()
        async with http.get(sidecar.admin_url + "/readyz?desk=1") as answer:
            assert answer.status == 503
            assert (await answer.json())["desk"] == "unavailable"
    async with (
        run_sidecar(config_from(base_config(desk_url))) as sidecar,
        aiohttp.ClientSession() as http,
        http.get(sidecar.admin_url + "/readyz?desk=1") as answer,
    ):
        assert answer.status == 200
        assert (await answer.json())["desk"] == "ok"
