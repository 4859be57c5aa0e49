"""Prometheus metrics, served on the admin port's /metrics only."""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from sidecar.oidc.events import Document, FetchResult
from sidecar.version import sidecar_version

REGISTRY = CollectorRegistry(auto_describe=True)

# process_* (CPU seconds, resident memory, open file descriptors, start time) and
# python_info, as every Prometheus client exports them.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
BUILD = Info("ticketlog_sso_build", "The running sidecar's version", registry=REGISTRY)
BUILD.info({"version": sidecar_version(), "python": platform.python_version()})

OWN_RESPONSE_SECONDS = Histogram(
    "ticketlog_sso_own_response_seconds",
    "Time to answer requests the sidecar answers itself (its /.sso/ routes, sign-in "
    "redirects, error pages), until the answer was sent",
    ["route", "status_class"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)

REQUESTS = Counter(
    "ticketlog_sso_requests",
    "Requests answered on the public port",
    ["tenant", "method", "status_class"],
    registry=REGISTRY,
)


class _InFlight:
    """Requests being handled now: a plain counter read at scrape time (no lock per request)."""

    def __init__(self) -> None:
        self.count = 0

    def inc(self) -> None:
        self.count += 1

    def dec(self) -> None:
        self.count -= 1


IN_FLIGHT = _InFlight()
Gauge(
    "ticketlog_sso_in_flight_requests", "Requests being handled now", registry=REGISTRY
).set_function(lambda: IN_FLIGHT.count)
UPSTREAM_LATENCY = Histogram(
    "ticketlog_sso_upstream_response_seconds",
    "Time until the desk's response headers arrived",
    ["tenant"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "ticketlog_sso_upstream_errors",
    "Desk requests that failed (refused, reset, timed out)",
    ["tenant", "kind"],
    registry=REGISTRY,
)
DESK_DESYNC = Counter(
    "ticketlog_sso_desk_desync",
    "Times a desk sent bytes nobody asked for (its connections are then not reused for a while)",
    ["desk"],
    registry=REGISTRY,
)
STORE_UP = Gauge(
    "ticketlog_sso_store_up",
    "1 when the session store answered the last readiness check (/readyz), 0 when not",
    registry=REGISTRY,
)
STORE_ERRORS = Counter(
    "ticketlog_sso_store_errors", "Session-store operations that failed", registry=REGISTRY
)
CONFIG_RELOADS = Counter(
    "ticketlog_sso_config_reloads", "Config reload attempts", ["result"], registry=REGISTRY
)
CONFIG_VALID = Gauge(
    "ticketlog_sso_config_last_reload_valid",
    "1 when the last config file read was valid, 0 when it was refused",
    registry=REGISTRY,
)
SIGN_INS = Counter(
    "ticketlog_sso_sign_ins", "Sign-in callbacks by result", ["tenant", "result"], registry=REGISTRY
)
IDP_ERRORS = Counter(
    "ticketlog_sso_idp_errors",
    "Errors reported by Entra, by OAuth error and AADSTS code",
    ["tenant", "error", "aadsts"],
    registry=REGISTRY,
)
IDP_FETCHES = Counter(
    "ticketlog_sso_idp_fetches",
    "Discovery and JWKS fetches from Entra",
    ["tenant", "document", "result"],
    registry=REGISTRY,
)


_REQUEST_COUNTERS: dict[tuple[str, str, int], Counter] = {}


def count_request(tenant: str, method: str, status: int) -> None:
    """REQUESTS, with each label set's child looked up once (labels() is slow)."""
    key = (tenant, method, status // 100)
    child = _REQUEST_COUNTERS.get(key)
    if child is None:
        child = _REQUEST_COUNTERS[key] = REQUESTS.labels(tenant, method, f"{key[2]}xx")
    child.inc()


def count_idp_fetch(tenant: str, document: Document, result: FetchResult) -> None:
    IDP_FETCHES.labels(tenant, document, result).inc()


# The OIDC core may not import this module (docs/architecture.md); it reports each
# fetch to an observer instead. Installed here, once per process, so that every
# provider counts from the moment the metrics exist, whoever built it.

CLIENT_SECRET_IN_USE = Gauge(
    "ticketlog_sso_client_secret_index",
    "Which client_secret list entry last worked (0 = newest), and its fingerprint "
    "(first 12 hex digits of the SHA-256 of the value)",
    ["tenant", "fingerprint"],
    registry=REGISTRY,
)
CLIENT_CERTIFICATE_EXPIRY = Gauge(
    "ticketlog_sso_client_certificate_expiry_timestamp_seconds",
    "notAfter of the newest client certificate of each tenant host (Unix time)",
    ["host"],
    registry=REGISTRY,
)
_SECRET_SHOWN: dict[str, str] = {}  # tenant -> fingerprint of its series now


def record_client_secret(tenant: str, index: int, fingerprint: str) -> None:
    """The secret Entra last accepted for ``tenant``: one series a tenant, so after a
    rotation the old fingerprint disappears instead of lingering beside the new one."""
    previous = _SECRET_SHOWN.get(tenant)
    if previous is not None and previous != fingerprint:
        CLIENT_SECRET_IN_USE.remove(tenant, previous)
    _SECRET_SHOWN[tenant] = fingerprint
    CLIENT_SECRET_IN_USE.labels(tenant, fingerprint).set(index)


LOGOUTS = Counter("ticketlog_sso_logouts", "Sessions ended", ["tenant", "kind"], registry=REGISTRY)
CODES_SENT = Counter(
    "ticketlog_sso_verification_codes_sent",
    "Verification codes mailed",
    ["tenant"],
    registry=REGISTRY,
)
CODES_SEND_FAILED = Counter(
    "ticketlog_sso_verification_code_send_failures",
    "Verification mails that could not be sent or were refused by a limit",
    ["tenant", "reason"],
    registry=REGISTRY,
)
VERIFICATIONS = Counter(
    "ticketlog_sso_verifications", "Code checks by result", ["tenant", "result"], registry=REGISTRY
)
LOCKOUTS = Counter(
    "ticketlog_sso_verification_lockouts",
    "Codes voided by wrong tries",
    ["tenant"],
    registry=REGISTRY,
)
ACCOUNTS_CREATED = Counter(
    "ticketlog_sso_accounts_created", "First-login accounts created", ["tenant"], registry=REGISTRY
)
