"""The one request-scope object the pipeline steps pass data through."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict

from sidecar.tenants import Tenant

if TYPE_CHECKING:
    from sidecar.auth.identity import Identity, IdentityHeaders


@dataclass(slots=True)
class RequestScope:
    request_id: str
    client_ip: str
    peer_trusted: bool
    scheme: str  # the public scheme: X-Forwarded-Proto from a trusted proxy, else the listener's
    started: float
    target: str = "/"  # origin-form path and query, also for an absolute-form request target
    public_host: str = ""  # the tenant's host, with the port of the Host header when it has one
    forwarded_host: str = ""  # the Host the client asked for, as sent on X-Forwarded-Host
    # Headers for the desk: the client's, minus hop-by-hop, identity and forwarding headers.
    upstream_headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    # The sidecar's own cookies from the request, by base name, as its scheme allows them to
    # be read (sidecar.cookies.split_cookies; taken out of upstream_headers).
    our_cookies: dict[str, str] = field(default_factory=dict)
    identity: Identity | None = None  # the signed-in identity, once known
    # Its headers for the desk, sent after upstream_headers.
    identity_headers: IdentityHeaders | None = None
    # Headers added to the desk's response (e.g. clearing our cookie on the desk's logout).
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    upstream_seconds: float | None = None
    log_fields: dict[str, Any] = field(default_factory=dict)
    body_bytes: int = 0  # of the answer, as the connection's writer sent them (access log)
    # The answer's status, the seconds until the pipeline returned it, and the tenant's
    # host ("-" when answered before the tenant step chose one), set by the entry step
    # when it is done (metrics, access log).
    status: int = 500
    duration: float = 0.0
    tenant_label: str = "-"
    # Set by the tenant step (step 2), which ends every request it cannot give one, so
    # the steps after it and the routes read a plain attribute typed without None (no
    # test at each use). Until then the slot is empty and reading it raises
    # AttributeError: what can run before it (error pages, through `known_tenant`; the
    # entry step, which catches the error) must not read it directly.
    tenant: Tenant = field(init=False, repr=False, compare=False)

    def count_body_bytes(self, size: int, _total: int) -> None:
        """aiohttp's writer hook (``on_body_write``), called with each body chunk sent."""
        self.body_bytes += size

    @property
    def known_tenant(self) -> Tenant | None:
        """The tenant, or None while the tenant step has not chosen one."""
        return getattr(self, "tenant", None)

    @property
    def public_origin(self) -> str:
        return f"{self.scheme}://{self.public_host}"


SCOPE = web.RequestKey("scope", RequestScope)
