"""Behind a TLS-terminating ingress: https URIs, `__Host-` Secure cookies (contract)."""

from __future__ import annotations

import base64
import json
from typing import Any

from sidecar.dev.entra import EntraEmulator, sample_tenant
from tests.world import Browser, Reply, open_world


class HttpsBrowser(Browser):
    """Requests arrive through a trusted ingress that terminated TLS."""

    async def request(self, method: str, url: str, **kw: Any) -> Reply:
        if url.startswith(("/", "https://desk.contoso.test")):
            kw["headers"] = {"X-Forwarded-Proto": "https", **kw.get("headers", {})}
        return await super().request(method, url, **kw)


def behind_ingress(document: dict[str, Any]) -> None:
    document["server"]["trusted_proxies"] = ["127.0.0.0/8"]


async def test_https_sign_in_uses_host_prefixed_secure_cookies_and_https_uris() -> None:
    emulator = EntraEmulator([sample_tenant("https://desk.contoso.test")])
    async with open_world(emulator=emulator, edit=behind_ingress) as world:
        browser = HttpsBrowser(world.http, world.sidecar.url, world.emulator_url, user="alice")
        start = await browser.get("/.sso/login?rd=/echo")
        assert start.status == 302
        assert (
            "redirect_uri=https%3A%2F%2Fdesk.contoso.test%2F.sso%2Fcallback"
            in start.headers["Location"]
        )
        [tx_cookie] = start.headers.getall("Set-Cookie")
        assert tx_cookie.startswith("__Host-tlsso_tx_")
        for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
            assert attribute in tx_cookie
        landing = await world.sign_up(browser, rd="/echo")
        assert landing.status == 200
        assert "__Host-tlsso" in browser.cookies
        assert "tlsso" not in browser.cookies  # never the unprefixed name over https
        headers = {k: v for k, v in landing.json()["headers"]}
        assert headers["X-Forwarded-Proto"] == "https"
        payload = headers["X-TicketLog-Identity"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["iss"] == "https://desk.contoso.test/.sso"
        # A cookie named without the prefix (e.g. planted by a sibling subdomain) is ignored.
        planted = HttpsBrowser(world.http, world.sidecar.url, world.emulator_url)
        planted.cookies["tlsso"] = browser.cookies["__Host-tlsso"]
        assert (await planted.get("/echo", navigate=False)).status == 401
