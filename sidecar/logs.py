"""Structured logs: one JSON object a line on stderr.

Callers pass only fields that are safe to log. Cookies, tokens, codes and
secrets are never handed to these functions; `_redact` is a second line of
defence for field names that should never carry them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

logger = logging.getLogger("ticketlog_sso")

_NEVER_LOGGED = frozenset(
    {"cookie", "set-cookie", "authorization", "code", "token", "id_token", "secret", "password"}
)


def _redact(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: ("[redacted]" if k.lower() in _NEVER_LOGGED else v) for k, v in fields.items()}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry["event"] = record.getMessage()  # a fixed identifier: logs.event's name
            entry.update(_redact(fields))
        else:
            # A library-style logger (sidecar.oidc, aiohttp) writes sentences: the event is
            # a fixed identifier all the same, the sentence goes in `message`.
            entry["event"] = "library_message"
            entry["logger"] = record.name
            entry["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: a traceback can quote secrets held in locals.
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for our events and for the library-style `sidecar.*` loggers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("ticketlog_sso", "sidecar", "aiohttp"):
        target = logging.getLogger(name)
        target.handlers[:] = [handler]
        target.setLevel(level if name != "aiohttp" else logging.WARNING)
        target.propagate = False


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


def warning(name: str, **fields: Any) -> None:
    event(name, logging.WARNING, **fields)


def error(name: str, **fields: Any) -> None:
    event(name, logging.ERROR, **fields)
