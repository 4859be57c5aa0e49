"""The per-request access log: one JSON line a request, written in batches.

The profile of the authenticated path showed the logging module plus one
`write` to stderr per request as the largest cost the sidecar adds (about an
eighth of a request). Lines are formatted here with one `json.dumps` and
written together when 256 are waiting or 200 ms after the first, so at most
200 ms of lines is lost if the process is killed outright; `flush()` runs at
shutdown.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from sidecar import metrics, routes
from sidecar.request_scope import SCOPE

_BATCH = 256
_DELAY = 0.2
# One encoder for every line: json.dumps with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


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
        if not self.enabled:
            return
        entry = {"time": self._time(), "level": "info", "event": "request", **fields}
        self._lines.append(_ENCODER.encode(entry))
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

# The fields of a request's line, gathered by the entry middleware; the line is written
# only once the answer has been sent, when the number of body bytes is known (counted
# by RequestScope.count_body_bytes, which the entry step hands to the writer).
ACCESS_FIELDS = web.RequestKey("access_fields", dict)


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
    """aiohttp's access-log hook, called after each answer was sent: writes the line the
    entry middleware prepared, with the body bytes actually sent, and times the answers
    the sidecar gave itself (nothing forwarded to the desk).

    A request aiohttp refused before any middleware ran (it could not parse it) has a
    line too, so the log shows every answer the listener gave."""

    @property
    def enabled(self) -> bool:
        return True  # the latency histogram is kept at every log level

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        fields = request.get(ACCESS_FIELDS)
        if fields is None:
            fields = _unparsed_request_fields(request, response, time)
        ctx = request.get(SCOPE)
        if ctx is not None:
            fields["bytes"] = ctx.body_bytes
        if fields.get("upstream_ms") is None:
            path = fields.get("path", "")
            route = path if path in OWN_ROUTES else "other"
            metrics.OWN_RESPONSE_SECONDS.labels(route, f"{response.status // 100}xx").observe(time)
        ACCESS_LOG.write(fields)
