"""The Traefik and Envoy Gateway configurations, checked as far as this machine allows.

Neither Traefik nor Envoy runs here, so these files are not tested end to end
(deploy/gateways/README.md says so). What is checked: every document parses as
a Kubernetes object of a known kind, and each security promise the README makes
is in the file: client copies of the identity headers removed in every `_`/`-`
spelling before the decision, the request being judged described by the gateway
alone, the decision point closed to clients, the identity taken from the answer.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import yaml

from bench.gateways import CADDYFILE, GATEWAYS, NGINX_SITE
from sidecar.headers import IDENTITY_HEADERS

# The contract's identity headers: the sidecar's, and the roles header of app roles.
IDENTITY = (*IDENTITY_HEADERS, "X-TicketLog-Roles")
DESCRIBING = ("X-Forwarded-Method", "X-Forwarded-Uri", "X-Original-Method", "X-Original-URI")
TRAEFIK = GATEWAYS / "traefik" / "ticketlog-sso.yaml"
ENVOY = GATEWAYS / "envoy-gateway" / "ticketlog-sso.yaml"
KNOWN_KINDS = {
    "traefik.io/v1alpha1": {"Middleware", "IngressRoute"},
    "gateway.networking.k8s.io/v1": {"HTTPRoute"},
    "gateway.envoyproxy.io/v1alpha1": {"ClientTrafficPolicy", "SecurityPolicy", "HTTPRouteFilter"},
}

Doc = dict[str, Any]


def documents(path: Path) -> dict[tuple[str, str], Doc]:
    with path.open(encoding="utf-8") as handle:
        docs = [d for d in yaml.safe_load_all(handle) if d is not None]
    for doc in docs:
        assert doc["kind"] in KNOWN_KINDS[doc["apiVersion"]], doc["kind"]
        assert doc["metadata"]["name"]
        assert isinstance(doc["spec"], dict)
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def every_spelling(name: str) -> set[str]:
    """`name` with each `-` as `-` or `_` (case is folded by both gateways)."""
    parts = name.split("-")
    found = set()
    for separators in itertools.product("-_", repeat=len(parts) - 1):
        found.add(parts[0] + "".join(s + p for s, p in zip(separators, parts[1:], strict=True)))
    return found


def lowered(names: list[str]) -> set[str]:
    return {n.lower() for n in names}


def test_identity_headers_are_the_contracts_in_every_shipped_configuration() -> None:
    nginx = NGINX_SITE.read_text()
    caddy = CADDYFILE.read_text()
    for name in IDENTITY:
        variable = "$upstream_http_" + name.lower().replace("-", "_")
        assert variable in nginx, name
        assert re.search(rf"proxy_set_header {name} \$ticketlog_\w+;", nginx), name
        assert name in caddy.split("copy_headers", 1)[1].splitlines()[0], name


def test_traefik_removes_client_identity_headers_in_every_spelling_before_it_asks() -> None:
    docs = documents(TRAEFIK)
    strip = docs[("Middleware", "ticketlog-sso-strip")]["spec"]["headers"]["customRequestHeaders"]
    removed = {name for name, value in strip.items() if value == ""}
    for name in (*IDENTITY, *DESCRIBING):
        missing = every_spelling(name) - removed
        assert not missing, missing
    route = docs[("IngressRoute", "ticketlog-desk")]["spec"]["routes"]
    desk = next(r for r in route if r["services"][0]["name"] == "ticketlog-desk")
    assert [m["name"] for m in desk["middlewares"]] == ["ticketlog-sso-strip", "ticketlog-sso-auth"]


def test_traefik_asks_with_its_own_description_and_takes_the_identity_from_the_answer() -> None:
    docs = documents(TRAEFIK)
    auth = docs[("Middleware", "ticketlog-sso-auth")]["spec"]["forwardAuth"]
    assert auth["address"].endswith(":8080/.sso/auth")
    assert auth["trustForwardHeader"] is False
    assert lowered(auth["authResponseHeaders"]) == lowered(list(IDENTITY))
    sent = lowered(auth["authRequestHeaders"])
    assert {"cookie", "accept", "sec-fetch-mode"} <= sent
    assert not [h for h in sent if "forwarded" in h or "original" in h]


def test_traefik_routes_sso_to_the_sidecar_and_closes_the_decision_point() -> None:
    docs = documents(TRAEFIK)
    routes = docs[("IngressRoute", "ticketlog-desk")]["spec"]["routes"]
    by_match = {r["match"]: r for r in routes}
    sso = next(r for m, r in by_match.items() if "PathPrefix(`/.sso/`)" in m)
    assert sso["services"][0]["name"] == "ticketlog-sso"
    assert "ticketlog-sso-auth" not in [m["name"] for m in sso["middlewares"]]
    closed = next(r for m, r in by_match.items() if "Path(`/.sso/auth`)" in m)
    assert closed["priority"] > sso["priority"]
    allow = docs[("Middleware", "ticketlog-sso-decision-point-closed")]["spec"]["ipAllowList"]
    assert allow["sourceRange"] == ["127.0.0.1/32"]


def test_envoy_gateway_removes_client_identity_headers_before_routing_and_auth() -> None:
    docs = documents(ENVOY)
    headers = docs[("ClientTrafficPolicy", "ticketlog-sso-headers")]["spec"]["headers"]
    # Every `_` spelling is dropped, every case of the `-` spelling removed early.
    assert headers["withUnderscoresAction"] == "DropHeader"
    removed = lowered(headers["earlyRequestHeaders"]["remove"])
    assert lowered([*IDENTITY, *DESCRIBING, "X-Forwarded-Host"]) <= removed


def test_envoy_gateway_asks_for_the_desk_route_only_and_fails_closed() -> None:
    docs = documents(ENVOY)
    policy = docs[("SecurityPolicy", "ticketlog-sso")]["spec"]
    assert [t["name"] for t in policy["targetRefs"]] == ["ticketlog-desk"]
    auth = policy["extAuth"]
    assert auth["failOpen"] is False
    assert auth["http"]["path"] == "/.sso/auth"
    assert auth["http"]["backendRefs"][0]["port"] == 8080
    assert lowered(auth["http"]["headersToBackend"]) == lowered(list(IDENTITY))
    sent = lowered(auth["headersToExtAuth"])
    assert {"cookie", "accept", "sec-fetch-mode"} <= sent
    # A client-written X-Forwarded-Host or -Uri would choose the tenant or the path.
    assert not sent & lowered(["X-Forwarded-Host", *DESCRIBING])


def test_envoy_gateway_routes_sso_to_the_sidecar_and_closes_the_decision_point() -> None:
    docs = documents(ENVOY)
    rules = docs[("HTTPRoute", "ticketlog-sso")]["spec"]["rules"]
    sso = next(r for r in rules if r["matches"][0]["path"]["value"] == "/.sso/")
    assert sso["backendRefs"][0]["name"] == "ticketlog-sso"
    closed = next(r for r in rules if r["matches"][0]["path"]["value"] == "/.sso/auth")
    assert closed["matches"][1]["path"] == {"type": "PathPrefix", "value": "/.sso/auth/"}
    (filter_ref,) = closed["filters"]
    name = filter_ref["extensionRef"]["name"]
    assert docs[("HTTPRouteFilter", name)]["spec"]["directResponse"]["statusCode"] == 404
    assert "backendRefs" not in closed
