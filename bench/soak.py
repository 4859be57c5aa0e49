"""Load soak: hundreds of users sign in, verify and browse against two sidecar processes.

    .venv/bin/python -m bench.soak [--users 300] [--duration 60] [--concurrency 100]

Everything on loopback: the Entra emulator, the sample desk and a real SMTP
server (aiosmtpd) in this process; two `ticketlog-sso serve` processes sharing
one Redis (database 13, flushed first). Each simulated user signs in through
the emulator, passes the signup screen with the code from the SMTP server and
then browses, every request going to either sidecar at random (sessions, login
state and codes are shared through Redis). It ends by itself after
``--duration`` seconds of browsing and prints its figures: requests by status,
5xx count, accounts created vs. users, and each sidecar's RSS after warm-up and
at the end. Exit status 1 when any 5xx was seen or an account is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import yaml

from bench.procs import free_port
from sidecar.dev.desk import make_desk_app
from sidecar.dev.entra import EmulatedUser, EntraEmulator, sample_tenant
from tests.helpers import SESSION_KEY, serve_app, wait_ready
from tests.smtp_server import Collector, start_smtp
from tests.world import CLIENT_ID, CLIENT_SECRET, Browser, Reply

HOST = "desk.soak.test"
REDIS_URL = os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/13")


@dataclass
class Figures:
    statuses: Counter[int] = field(default_factory=Counter)
    sidecar_5xx: int = 0
    signed_up: int = 0
    errors: list[str] = field(default_factory=list)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class SpreadBrowser(Browser):
    """A browser whose every request goes to one of several sidecar replicas."""

    replicas: list[str]

    def _route(self, url: str) -> tuple[str, dict[str, str]]:
        self.sidecar_url = random.choice(self.replicas)
        return super()._route(url)


def record(figures: Figures, reply: Reply) -> Reply:
    figures.statuses[reply.status] += 1
    if reply.status >= 500:
        figures.sidecar_5xx += 1
        figures.errors.append(f"{reply.status} {reply.url}: {reply.text[:120]!r}")
    return reply


async def sign_up(browser: SpreadBrowser, smtp: Collector, email: str, figures: Figures) -> None:
    reply = record(figures, await browser.get("/"))
    while reply.status in (302, 303):
        location = reply.headers["Location"]
        if "/authorize" in location:
            location += f"&x_emulator_user={browser.user}"
        reply = record(figures, await browser.get(location))
    page = reply
    csrf = page.form_value("csrf_token")
    record(figures, await browser.post("/.sso/signup", {"csrf_token": csrf, "rd": "/"}))
    for _ in range(100):
        try:
            code = smtp.last_code(to=email)
            break
        except AssertionError:
            await asyncio.sleep(0.05)
    done = record(
        figures, await browser.post("/.sso/verify", {"csrf_token": csrf, "code": code, "rd": "/"})
    )
    if done.status == 303:
        figures.signed_up += 1


async def browse(browser: SpreadBrowser, figures: Figures, until: float) -> None:
    paths = ["/echo/tickets", "/echo/tickets/1", "/assets/app.css", "/echo/api/me"]
    while time.monotonic() < until:
        record(figures, await browser.get(random.choice(paths), navigate=False))


def replica_config(
    public: int, admin: int, desk: str, emulator_url: str, smtp_port: int
) -> dict[str, Any]:
    smtp = {
        "host": "127.0.0.1",
        "port": smtp_port,
        "tls": "none",
        "from": "TicketLog <n@soak.test>",
    }
    sso = {
        "tenant": "contoso.test",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "authority": emulator_url,
    }
    return {
        "server": {"listen": f"127.0.0.1:{public}", "admin_listen": f"127.0.0.1:{admin}"},
        "session": {"store": "redis", "redis_url": REDIS_URL, "secret_keys": [SESSION_KEY]},
        # Every simulated user comes from 127.0.0.1: lift the per-IP mail limit.
        "signup": {"max_sends_per_hour_per_ip": 1_000_000},
        "email": {"backend": "smtp", "smtp": smtp},
        "tenants": [
            {
                "host": HOST,
                "upstream": desk,
                "plan": "pro",
                "public_paths": ["/assets/"],
                "sso": sso,
            }
        ],
    }


async def soak(users: int, duration: float, concurrency: int) -> tuple[Figures, dict[str, Any]]:
    redis = aioredis.Redis.from_url(REDIS_URL)
    await redis.flushdb()
    tenant = sample_tenant(f"http://{HOST}", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    people = [
        EmulatedUser(f"u{i}", f"6d5a4e1c-0000-4000-8000-{i:012d}", f"User {i}", "User", str(i),
                     f"user{i}@contoso.test")
        for i in range(users)
    ]  # fmt: skip
    tenant.users = people
    emulator = EntraEmulator([tenant])
    smtp = Collector()
    controller = start_smtp(smtp)
    children: list[asyncio.subprocess.Process] = []
    report: dict[str, Any] = {}
    figures = Figures()
    try:
        async with (
            serve_app(emulator.make_app()) as emulator_url,
            serve_app(make_desk_app()) as desk,
        ):
            replicas = []
            for _ in range(2):
                public, admin = free_port(), free_port()
                config = replica_config(public, admin, desk, emulator_url, controller.port)
                with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
                    yaml.safe_dump(config, handle)
                child = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "sidecar", "serve", "-c", handle.name,
                    stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                children.append(child)
                await wait_ready(f"http://127.0.0.1:{admin}/readyz")
                os.unlink(handle.name)
                replicas.append(f"http://127.0.0.1:{public}")

            connector = aiohttp.TCPConnector(limit=concurrency)
            async with aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            ) as http:
                browsers = []
                for person in people:
                    b = SpreadBrowser(http, replicas[0], emulator_url, host=HOST, user=person.key)
                    b.replicas = replicas
                    browsers.append(b)
                gate = asyncio.Semaphore(concurrency)

                async def one_sign_up(b: SpreadBrowser, email: str) -> None:
                    async with gate:
                        await sign_up(b, smtp, email, figures)

                started = time.monotonic()
                await asyncio.gather(
                    *(one_sign_up(b, p.email or "") for b, p in zip(browsers, people, strict=True))
                )
                report["sign_up_seconds"] = time.monotonic() - started
                report["rss_after_warmup"] = [rss_mib(c.pid) for c in children]
                until = time.monotonic() + duration
                await asyncio.gather(*(browse(b, figures, until) for b in browsers))
                report["rss_at_end"] = [rss_mib(c.pid) for c in children]
        report["accounts"] = len(
            [k async for k in redis.scan_iter(match=f"tlsso:account:{HOST}:*")]
        )
    finally:
        for child in children:
            child.terminate()
            await child.wait()
        controller.stop()
        await redis.flushdb()
        await redis.aclose()
    return figures, report


def print_figures(users: int, duration: float, figures: Figures, report: dict[str, Any]) -> bool:
    total = sum(figures.statuses.values())
    print(f"soak: {users} users, {duration:.0f} s of browsing, 2 sidecar processes, one Redis")
    print(
        f"  sign-ups completed:   {figures.signed_up}/{users} in {report['sign_up_seconds']:.1f} s"
    )
    print(f"  accounts in Redis:    {report['accounts']}")
    print(f"  requests:             {total} ({total / max(duration, 1):.0f}/s while browsing)")
    print(f"  by status:            {dict(sorted(figures.statuses.items()))}")
    print(f"  5xx from the sidecar: {figures.sidecar_5xx}")
    for i, (warm, end) in enumerate(
        zip(report["rss_after_warmup"], report["rss_at_end"], strict=True)
    ):
        growth = end - warm
        print(f"  sidecar {i + 1} RSS:       {warm:.1f} MiB after warm-up, {end:.1f} MiB at end")
        print(f"                        growth {growth:+.1f} MiB")
    for line in figures.errors[:5]:
        print("  error:", line)
    return soak_passed(users, figures, report)


# RSS may grow a little as caches and pools fill; more than this after warm-up is a leak.
MAX_RSS_GROWTH_MIB = 25.0


def soak_passed(users: int, figures: Figures, report: dict[str, Any]) -> bool:
    flat = all(
        end - warm < MAX_RSS_GROWTH_MIB
        for warm, end in zip(report["rss_after_warmup"], report["rss_at_end"], strict=True)
    )
    return flat and figures.sidecar_5xx == 0 and report["accounts"] == users == figures.signed_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    figures, report = asyncio.run(soak(args.users, args.duration, args.concurrency))
    sys.exit(0 if print_figures(args.users, args.duration, figures, report) else 1)


if __name__ == "__main__":
    main()
