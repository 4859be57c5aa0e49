"""The access line written by hand is the line json.dumps writes of the same fields."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from sidecar.access_log import PATH_LIMIT, request_line
from sidecar.request_scope import RequestScope

STAMP = "2026-12-03T14:00:00.123Z"


def _scope(target: str, **fields: object) -> RequestScope:
    ctx = RequestScope(
        request_id="a1b2c3d4e5f6000000002a",
        client_ip="2001:db8::1",
        peer_trusted=False,
        scheme="https",
        started=0.0,
        target=target,
    )
    for name, value in fields.items():
        setattr(ctx, name, value)
    return ctx


def _as_json_dumps_writes_it(ctx: RequestScope, method: str, tenant: str) -> str:
    upstream = ctx.upstream_seconds
    return json.dumps(
        {
            "time": STAMP,
            "level": "info",
            "event": "request",
            "request_id": ctx.request_id,
            "tenant": tenant,
            "method": method,
            "path": ctx.target.split("?", 1)[0][:PATH_LIMIT],
            "status": ctx.status,
            "bytes": ctx.body_bytes,
            "duration_ms": round(ctx.duration * 1000, 2),
            "upstream_ms": None if upstream is None else round(upstream * 1000, 2),
            "client_ip": ctx.client_ip,
            **ctx.log_fields,
        },
        ensure_ascii=False,
    )


def test_a_proxied_request_line_is_what_json_dumps_writes() -> None:
    ctx = _scope(
        "/tickets/ä?q=secret",
        status=200,
        body_bytes=1234,
        duration=0.0125,
        upstream_seconds=0.0031,
        tenant_label="desk.example.com",  # as the entry step leaves it
    )
    assert request_line(STAMP, ctx, "GET") == _as_json_dumps_writes_it(
        ctx, "GET", "desk.example.com"
    )


def test_quotes_backslashes_and_control_characters_in_a_path_are_escaped() -> None:
    ctx = _scope('/a"b\\c\x01\x1f\u2028/', status=404, duration=0.0004)
    line = request_line(STAMP, ctx, "GET")
    assert line == _as_json_dumps_writes_it(ctx, "GET", "-")
    assert json.loads(line)["path"] == '/a"b\\c\x01\x1f\u2028/'
    assert "\n" not in line


def test_the_query_is_left_out_and_a_long_path_is_cut() -> None:
    ctx = _scope("/" + "x" * 2000 + "?code=secret-code", status=200)
    line = json.loads(request_line(STAMP, ctx, "POST"))
    assert line["path"] == "/" + "x" * (PATH_LIMIT - 1)
    assert "secret" not in json.dumps(line)


def test_a_request_answered_before_a_tenant_is_logged_under_a_dash_without_upstream_time() -> None:
    ctx = _scope("/", status=421, duration=0.001)
    line = json.loads(request_line(STAMP, ctx, "GET"))
    assert (line["tenant"], line["upstream_ms"], line["status"]) == ("-", None, 421)


def test_a_step_s_own_fields_follow_the_standard_ones() -> None:
    ctx = _scope("/ws", status=101, log_fields={"client_disconnected": True})
    line = request_line(STAMP, ctx, "GET")
    assert line == _as_json_dumps_writes_it(ctx, "GET", "-")
    assert line.endswith(', "client_disconnected": true}')


@given(st.floats(min_value=0, max_value=3600, allow_nan=False))
def test_durations_are_milliseconds_to_the_hundredth(seconds: float) -> None:
    ctx = _scope("/", duration=seconds, upstream_seconds=seconds)
    line = json.loads(request_line(STAMP, ctx, "GET"))
    # Rounded half up where round() rounds half to even: at most a hundredth apart.
    assert abs(line["duration_ms"] - seconds * 1000) <= 0.005 + 1e-6
    assert line["duration_ms"] == line["upstream_ms"]
    assert len(repr(line["duration_ms"]).split(".")[1]) <= 2
