"""What the OIDC core reports about its own work, without knowing who listens.

This package may not import the metrics (the layer rules in docs/architecture.md):
a provider tells the ``FetchObserver`` it was given about each discovery and keys
fetch, and the layer that builds providers decides what that means (the runtime
counts them in ``sidecar.metrics``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

__all__ = ["Document", "FetchObserver", "FetchResult", "ignore_fetch"]

Document = Literal["discovery", "jwks"]
FetchResult = Literal["ok", "error"]

#: Called with the tenant as configured, the document fetched and how it went.
FetchObserver = Callable[[str, Document, FetchResult], None]


def ignore_fetch(tenant: str, document: Document, result: FetchResult) -> None:
    """The observer of a provider nobody watches (check-entra, tests)."""
