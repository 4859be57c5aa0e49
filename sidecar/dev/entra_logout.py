"""``/{tenant}/oauth2/v2.0/logout`` of the development Entra emulator (entra-reference §6).

Development only. Ends the browser's Entra sign-in (and, by ``logout_hint``, that account's
sign-ins elsewhere), renders the sign-out page with one hidden front-channel iframe per app of
the ended sessions, then navigates to the post-logout redirect URI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from sidecar.dev import entra_errors as err
from sidecar.dev import entra_pages as pages
from sidecar.dev.entra_authorize import SESSION_COOKIE, cookie_path
from sidecar.dev.entra_model import (
    MULTI_TENANT_SEGMENTS,
    NO_STORE,
    SignIn,
    append_query,
    decode_hint,
    request_params,
)

if TYPE_CHECKING:
    from sidecar.dev.entra import EntraEmulator


async def logout(emu: EntraEmulator, request: web.Request) -> web.Response:
    params = await request_params(request)  # §1: GET and POST
    segment = request.match_info["tenant"]
    tenant = emu.tenant(segment)
    if tenant is None and segment.lower() not in MULTI_TENANT_SEGMENTS:
        raise err.PageError(*err.unknown_tenant(segment))
    scope = [tenant] if tenant is not None else emu.tenants
    client_id = params.get("client_id")
    post_logout = params.get("post_logout_redirect_uri")
    if client_id:
        app = next((a for t in scope if (a := t.app(client_id)) is not None), None)
        if app is None:
            raise err.PageError(700016, err.msg_700016(client_id, tenant))
        allowed = app.post_logout_redirect_uris
    else:
        allowed = [u for t in scope for a in t.apps for u in a.post_logout_redirect_uris]
    if post_logout and post_logout not in allowed:
        # §6: the URI must be registered. Real Entra checks it against the app's redirect
        # URIs; the emulator models the separately registered post-logout URI, so a relying
        # party that sends its callback URL here is caught.
        raise err.PageError(50011, err.msg_50011(post_logout, client_id or "(any)"))

    tenant_ids = {t.tenant_id for t in scope}
    ended: list[SignIn] = []
    browser_id = request.cookies.get(SESSION_COOKIE, "")
    signins = emu.browsers.get(browser_id, {})
    for tid in [t for t in signins if t in tenant_ids]:
        ended.append(signins.pop(tid))
    # §6: logout_hint (the login_hint claim's value) names the account. Ending that account's
    # sign-ins in every browser also lets browser-less tests and the demo sign out.
    hinted = decode_hint(params.get("logout_hint", ""))
    if hinted is not None and hinted[0] in tenant_ids:
        for other in emu.browsers.values():
            signin = other.get(hinted[0])
            if signin is not None and _oid_of(emu, signin) == hinted[1]:
                ended.append(other.pop(hinted[0]))

    urls: list[str] = []
    for signin in ended:
        owner = emu.tenant(signin.tenant_id)
        for cid in signin.client_ids:
            app_signed_in = owner.app(cid) if owner else None
            if app_signed_in is None or not app_signed_in.logout_url:
                continue
            # [obs] §6: Entra sends only ?sid=..., no iss.
            url = append_query(app_signed_in.logout_url, [("sid", signin.sid)])
            if url not in urls:
                urls.append(url)
    emu.frontchannel_calls.extend(urls)
    if emu.frontchannel_server_side and urls:
        await call_frontchannel(emu, urls)

    text = pages.signed_out(frontchannel_urls=urls, post_logout_redirect_uri=post_logout)
    response = web.Response(text=text, content_type="text/html", headers=NO_STORE)
    if browser_id in emu.browsers and not emu.browsers[browser_id]:
        del emu.browsers[browser_id]
        response.del_cookie(SESSION_COOKIE, path=cookie_path(request))
    return response


def _oid_of(emu: EntraEmulator, signin: SignIn) -> str | None:
    tenant = emu.tenant(signin.tenant_id)
    user = tenant.user(signin.user_key) if tenant else None
    return user.oid if user else None


async def call_frontchannel(emu: EntraEmulator, urls: list[str]) -> None:
    """What the browser's hidden iframes do, done server-side (``frontchannel_server_side``).
    Failures are recorded in ``emu.frontchannel_results``, never raised: Entra does not care
    whether the app answered."""
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for url in urls:
            try:
                async with session.get(url, allow_redirects=False) as resp:
                    await resp.read()
                    emu.frontchannel_results.append((url, resp.status))
            except (aiohttp.ClientError, TimeoutError) as exc:
                emu.frontchannel_results.append((url, f"{type(exc).__name__}: {exc}"))
