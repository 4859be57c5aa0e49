"""Who sent a request: what a trusted proxy's X-Request-Id may be."""

from __future__ import annotations

import ipaddress

import pytest
from aiohttp.test_utils import make_mocked_request

from sidecar.forwarded import sender_of

TRUSTED = [ipaddress.ip_network("10.0.0.0/8")]


class _Socket:
    """The connection's addresses, as the transport gives them to aiohttp."""

    def __init__(self, peer: str) -> None:
        self._peer = peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": (self._peer, 40000), "sockname": ("10.0.0.1", 8080)}.get(name, default)

    def is_closing(self) -> bool:
        return False


def _request_id(given: str, peer: str = "10.0.0.5") -> str:
    request = make_mocked_request(
        "GET", "/", headers={"X-Request-Id": given}, transport=_Socket(peer)
    )
    return sender_of(request, TRUSTED).request_id


def test_a_trusted_proxy_s_request_id_is_kept() -> None:
    assert _request_id("ingress-1.a:b_c") == "ingress-1.a:b_c"


@pytest.mark.parametrize(
    "given", ["ingress-1\n", "ingress-1\r\n", "ingress 1", "x" * 129, "", "id%0a", "ïd"]
)
def test_a_request_id_with_anything_else_is_replaced(given: str) -> None:
    assert _request_id(given) != given


def test_an_untrusted_peer_s_request_id_is_replaced() -> None:
    assert _request_id("ingress-1", peer="192.0.2.7") != "ingress-1"
