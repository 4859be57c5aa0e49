"""The per-request access log: one JSON line a request, written in batches.

The logging module and one `write` to stderr per request would be the largest
cost the sidecar adds to a proxied request. Lines are formatted here and written
together when 256 are waiting or 200 ms after the first, so at most 200 ms of
lines is lost if the process is killed outright; `flush()` runs at shutdown.
A request's line is written out by hand from its request scope (request_line):
the same JSON as `json.dumps` of its fields, without building the fields'
dictionary or setting up the encoder, which cost more than the line itself.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from json.encoder import encode_basestring
from typing import Any, TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from sidecar import metrics, routes
from sidecar.request_scope import SCOPE, RequestScope

_BATCH = 256
_DELAY = 0.2
# One encoder for every line: json.dumps with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
# A string as that encoder writes it (quoted, escaped, non-ASCII kept).
_quote = encode_basestring
# The longest path written; a longer one is cut.
PATH_LIMIT = 512


def _milliseconds(seconds: float) -> str:
    """round(seconds * 1000, 2) as JSON: integer arithmetic, because round() with digits
    formats the number as text and back. Durations are never negative."""
    return repr(int(seconds * 100_000 + 0.5) / 100)


def request_line(stamp: str, ctx: RequestScope, method: str) -> str:
    """The line of a request the pipeline answered, as `json.dumps` of its fields would
    write it (tests/test_access_log.py holds the two equal)."""
    upstream = ctx.upstream_seconds
    line = (
        f'{{"time": "{stamp}", "level": "info", "event": "request", '
        f'"request_id": {_quote(ctx.request_id)}, '
        f'"tenant": {_quote(ctx.tenant_label)}, '
        f'"method": {_quote(method)}, '
        f'"path": {_quote(ctx.target.split("?", 1)[0][:PATH_LIMIT])}, '
        f'"status": {ctx.status}, "bytes": {ctx.body_bytes}, '
        f'"duration_ms": {_milliseconds(ctx.duration)}, '
        f'"upstream_ms": {"null" if upstream is None else _milliseconds(upstream)}, '
        f'"client_ip": {_quote(ctx.client_ip)}'
    )
    if ctx.log_fields:  # a step's own fields, e.g. client_disconnected
        line += ", " + _ENCODER.encode(ctx.log_fields)[1:-1]
    return line + "}"


class AccessLog:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""
        self.enabled = True  # off when the log level is above info (serve --log-level)

    def _time(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:  # strftime once a second, not once a request
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def write(self, fields: dict[str, Any]) -> None:
        """A line of these fields, for a request the pipeline did not answer."""
        if self.enabled:
            entry = {"time": self._time(), "level": "info", "event": "request", **fields}
            self._add(_ENCODER.encode(entry))

    def write_request(self, ctx: RequestScope, method: str) -> None:
        """The line of a request the pipeline answered (request_line)."""
        if self.enabled:
            self._add(request_line(self._time(), ctx, method))

    def _add(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= _BATCH:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(_DELAY, self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        stream = self._stream or sys.stderr
        stream.write("\n".join(self._lines) + "\n")
        stream.flush()
        self._lines.clear()


ACCESS_LOG = AccessLog()

# The routes of the sidecar's own answers named in the latency histogram; any other path
# it answers itself (a sign-in redirect, an error page) counts as "other", so a client
# cannot create label values.
OWN_ROUTES = frozenset(routes.ALL)


def _unparsed_request_fields(
    request: web.BaseRequest, response: web.StreamResponse, seconds: float
) -> dict[str, object]:
    """The line of a request that never reached the pipeline. SECURITY: without its method
    and target: they are what failed to parse, and may hold a session cookie or an
    authorization code (sidecar.http_errors)."""
    return {
        "request_id": None,
        "tenant": "-",
        "method": "-",
        "path": "-",
        "status": response.status,
        "bytes": response.content_length or 0,
        "duration_ms": round(seconds * 1000, 2),
        "upstream_ms": None,
        "client_ip": request.remote,
    }


class RequestLogger(AbstractAccessLogger):
    """aiohttp's access-log hook, called after each answer was sent: writes the line of
    the request from its scope, which the entry middleware completed, with the body bytes
    actually sent (counted by RequestScope.count_body_bytes, the writer's hook), and times
    the answers the sidecar gave itself (nothing forwarded to the desk).

    A request aiohttp refused before any middleware ran (it could not parse it) has a
    line too, so the log shows every answer the listener gave."""

    @property
    def enabled(self) -> bool:
        return True  # the latency histogram is kept at every log level

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        ctx = request.get(SCOPE)
        if ctx is None:
            fields = _unparsed_request_fields(request, response, time)
            _observe_own_answer(fields["path"], response.status, time)
            ACCESS_LOG.write(fields)
            return
        if ctx.upstream_seconds is None:
            _observe_own_answer(ctx.target.split("?", 1)[0], response.status, time)
        ACCESS_LOG.write_request(ctx, request.method)


def _observe_own_answer(path: object, status: int, seconds: float) -> None:
    route = path if path in OWN_ROUTES else "other"
    metrics.OWN_RESPONSE_SECONDS.labels(route, f"{status // 100}xx").observe(seconds)
