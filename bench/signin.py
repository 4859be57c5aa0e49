"""Signing in through the Entra emulator: once with signup (for a session cookie), or in a loop.

`sign_up` walks the first-login flow like a browser (tests/world.py's
`Browser`): the desk URL, /.sso/login, the emulator's authorize with
`x_emulator_user`, /.sso/callback, the signup screen, the mailed code, verify.
The code is read from the sidecar's console mail (its log file).

`login_loop` drives complete sign-ins of an already verified user as fast as
they complete: /.sso/login, the emulator's authorize, /.sso/callback (which
redeems the code at the emulator's token endpoint and validates the ID token).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from bench.loadgen import percentile
from sidecar.cookies import LOGIN_COOKIE_PREFIX, SESSION_COOKIE
from tests.world import Browser

_CODE_LINE = re.compile(r"^\s*(\d{6})\s*$", re.MULTILINE)
_CONSOLE_BANNER = "ticketlog-sso console mail"


def add_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def console_code_reader(log: Path) -> Callable[[], Awaitable[str]]:
    """Reads the newest 6-digit code the console mail backend printed to `log`."""

    async def read() -> str:
        for _ in range(100):
            text = log.read_text(errors="replace")
            at = text.rfind(_CONSOLE_BANNER)
            codes = _CODE_LINE.findall(text[at:]) if at >= 0 else []
            if codes:
                return str(codes[-1])
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no verification code in {log}")

    return read


async def sign_up(
    http: aiohttp.ClientSession,
    *,
    sidecar_url: str,
    emulator_url: str,
    host: str,
    user: str,
    read_code: Callable[[], Awaitable[str]],
) -> str:
    """First sign-in with signup and code; returns the Cookie header of the signed-in browser."""
    browser = Browser(http, sidecar_url, emulator_url, host=host, user=user)
    page = await browser.open("/")
    if page.status != 200:
        raise RuntimeError(f"sign-in failed ({page.status}): {page.text[:300]}")
    if "/.sso/signup" in page.text and "csrf_token" in page.text:
        # The signup screen (a store that already knows the account lands on the desk).
        sent = await browser.post(
            "/.sso/signup", {"csrf_token": page.form_value("csrf_token"), "rd": "/"}
        )
        if sent.status != 303:
            raise RuntimeError(f"signup send failed ({sent.status}): {sent.text[:300]}")
        step_two = await browser.follow(sent)
        code = await read_code()
        done = await browser.post(
            "/.sso/verify",
            {"csrf_token": step_two.form_value("csrf_token"), "code": code, "rd": "/"},
        )
        if done.status != 303:
            raise RuntimeError(f"verify failed ({done.status}): {done.text[:300]}")
    session = {k: v for k, v in browser.cookies.items() if not k.startswith(LOGIN_COOKIE_PREFIX)}
    if not any(SESSION_COOKIE in name for name in session):
        raise RuntimeError(f"no session cookie after signup: {sorted(browser.cookies)}")
    return "; ".join(f"{k}={v}" for k, v in session.items())


@dataclass(frozen=True)
class LoginResult:
    logins: int
    seconds: float
    errors: int
    callback_p50_ms: float
    callback_p99_ms: float
    login_p50_ms: float

    @property
    def rate(self) -> float:
        return self.logins / self.seconds if self.seconds > 0 else 0.0


async def _one_login(
    http: aiohttp.ClientSession, sidecar_url: str, host: str, user: str
) -> tuple[float, float]:
    """One complete sign-in; (whole flow ms, callback ms). Raises on any unexpected answer."""
    started = time.monotonic()
    async with http.get(
        f"{sidecar_url}/.sso/login?rd=/", headers={"Host": host}, allow_redirects=False
    ) as r:
        if r.status not in (302, 303):
            raise RuntimeError(f"/.sso/login answered {r.status}")
        authorize = add_query(r.headers["Location"], x_emulator_user=user)
        cookie = "; ".join(f"{k}={m.value}" for k, m in r.cookies.items())
    async with http.get(authorize, allow_redirects=False) as r:
        if r.status not in (302, 303):
            raise RuntimeError(f"emulator authorize answered {r.status}")
        back = urlsplit(r.headers["Location"])
    if back.path != "/.sso/callback":
        raise RuntimeError(f"emulator sent the browser to {back.path}")
    callback_started = time.monotonic()
    async with http.get(
        f"{sidecar_url}{back.path}?{back.query}",
        headers={"Host": host, "Cookie": cookie},
        allow_redirects=False,
    ) as r:
        await r.read()
        if r.status not in (302, 303) or not any(SESSION_COOKIE in k for k in r.cookies):
            raise RuntimeError(f"/.sso/callback answered {r.status}")
    ended = time.monotonic()
    return (ended - started) * 1e3, (ended - callback_started) * 1e3


async def login_loop(
    *, sidecar_url: str, host: str, user: str, duration: float, concurrency: int
) -> LoginResult:
    """Closed loop of complete sign-ins by `concurrency` browsers for `duration` seconds."""
    whole: list[float] = []
    callbacks: list[float] = []
    errors = 0
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        timeout=timeout,
        connector=aiohttp.TCPConnector(limit=0),
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as http:
        started = time.monotonic()
        deadline = started + duration

        async def browser() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                try:
                    total_ms, callback_ms = await _one_login(http, sidecar_url, host, user)
                except (RuntimeError, KeyError, aiohttp.ClientError, OSError, TimeoutError):
                    errors += 1
                    continue
                whole.append(total_ms)
                callbacks.append(callback_ms)

        await asyncio.gather(*(browser() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    whole.sort()
    callbacks.sort()
    return LoginResult(
        logins=len(callbacks),
        seconds=elapsed,
        errors=errors,
        callback_p50_ms=percentile(callbacks, 50),
        callback_p99_ms=percentile(callbacks, 99),
        login_p50_ms=percentile(whole, 50),
    )
