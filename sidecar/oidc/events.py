"""What the OIDC core reports about its own work, without knowing who listens.

This package may not import the metrics (the layer rules in docs/architecture.md):
a provider tells a ``FetchObserver`` about each discovery and keys fetch, and the
outer layer decides what that means (``sidecar.metrics`` counts them). A provider
given no observer reports to the process-wide one installed here, so the callers
that build providers need not know about metrics either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

__all__ = ["Document", "FetchObserver", "FetchResult", "report_fetch", "set_fetch_observer"]

Document = Literal["discovery", "jwks"]
FetchResult = Literal["ok", "error"]

#: Called with the tenant as configured, the document fetched and how it went.
FetchObserver = Callable[[str, Document, FetchResult], None]

_observer: FetchObserver | None = None


def set_fetch_observer(observer: FetchObserver | None) -> None:
    """Install the process-wide observer (one slot: installing twice never counts twice)."""
    global _observer
    _observer = observer


def report_fetch(tenant: str, document: Document, result: FetchResult) -> None:
    """Tell the installed observer, if any, about one fetch."""
    observer = _observer
    if observer is not None:
        observer(tenant, document, result)
