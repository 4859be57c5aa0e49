"""The one way this package talks to Entra: JSON over the caller's ClientSession.

Failures are mapped onto the package's errors here, once: transport problems,
timeouts, 5xx and non-JSON bodies become ``ProviderUnavailable``; an OAuth
error object becomes ``ProviderRejected``. Request bodies (which carry client
secrets and authorization codes) are never put in a message or a log line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from .errors import Endpoint, ProviderRejected, ProviderUnavailable

# Discovery documents are ~2 KiB and a JWKS a few KiB; a generous cap still stops
# a misbehaving endpoint from making us buffer an unbounded body.
MAX_BODY_BYTES = 1 << 20


async def request_json(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    endpoint: Endpoint,
    request_timeout: float,
    form: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Send one request and return the JSON object of a 2xx answer."""
    try:
        async with http.request(
            method,
            url,
            data=dict(form) if form is not None else None,
            headers={"Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=request_timeout),
            # SECURITY: never follow a redirect. Entra's endpoints do not redirect,
            # and following one would resend the form (client secret, code) to
            # wherever the Location header points.
            allow_redirects=False,
        ) as resp:
            status = resp.status
            body = await _read_capped(resp, endpoint)
    except ProviderUnavailable:
        raise
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        # The exception text may contain the URL but never the request body.
        raise ProviderUnavailable(endpoint, f"{type(exc).__name__}") from exc

    if status >= 500:
        raise ProviderUnavailable(endpoint, f"HTTP {status}")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProviderUnavailable(endpoint, f"HTTP {status} without a JSON body") from exc
    if not isinstance(data, dict):
        raise ProviderUnavailable(endpoint, f"HTTP {status} JSON is not an object")
    if status >= 400:
        if isinstance(data.get("error"), str):
            raise ProviderRejected.from_body(endpoint=endpoint, status=status, body=data)
        raise ProviderUnavailable(endpoint, f"HTTP {status}")
    if not 200 <= status < 300:
        raise ProviderUnavailable(endpoint, f"unexpected HTTP {status}")
    return data


async def _read_capped(resp: aiohttp.ClientResponse, endpoint: Endpoint) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ProviderUnavailable(endpoint, "response body too large")
        chunks.append(chunk)
    return b"".join(chunks)
