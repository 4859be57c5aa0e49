"""The processes a benchmark needs, started on loopback and stopped together.

* the fast upstream (bench/fast_upstream.py), its own process;
* the Entra emulator and the sample desk (bench/services.py), one process;
* any number of sidecars, each `python -m sidecar serve -c CONFIG` in its own
  process, configured with two tenants: `sso.bench.test` (Entra sign-in through
  the emulator, `/assets/` public, upstream the fast upstream) and
  `desk.bench.test` (no SSO, upstream the sample desk: WebSockets, streams);
* the naive aiohttp proxy and nginx, on demand.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.gateways import start_nginx_gateway
from bench.nginx import start_nginx
from bench.procs import Child, free_port, python_module, spawn, wait_for_port
from bench.signin import console_code_reader, sign_up

SSO_HOST = "sso.bench.test"
DESK_HOST = "desk.bench.test"
PUBLIC_PATH = "/assets/app.css"
PRIVATE_PATH = "/api/tickets"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "dev~emulator-secret-value"
USER = "alice"  # the emulator's sample user with an email claim


@dataclass
class Stack:
    workdir: Path
    upstream: Child
    services: Child
    emulator_port: int
    desk_port: int
    session_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    children: list[Child] = field(default_factory=list)

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.upstream.port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def desk_url(self) -> str:
        return f"http://127.0.0.1:{self.desk_port}"

    def sidecar_config(
        self,
        *,
        public_port: int,
        admin_port: int,
        redis_url: str | None = None,
        trusted_proxies: list[str] | None = None,
    ) -> dict[str, Any]:
        session: dict[str, Any] = {"store": "memory", "secret_keys": [self.session_key]}
        if redis_url:
            session = {**session, "store": "redis", "redis_url": redis_url}
        return {
            "server": {
                "listen": f"127.0.0.1:{public_port}",
                "admin_listen": f"127.0.0.1:{admin_port}",
                "shutdown_grace": "2s",
                # A gateway in front (forward-auth rows) must be trusted.
                "trusted_proxies": trusted_proxies or [],
            },
            "session": session,
            "email": {"backend": "console"},
            "tenants": [
                {
                    "host": SSO_HOST,
                    "name": "Benchmark Desk",
                    "upstream": self.upstream_url,
                    "plan": "pro",
                    "public_paths": ["/assets/"],
                    "sso": {
                        "tenant": "contoso.test",
                        "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET,
                        "authority": self.emulator_url,
                    },
                },
                {"host": DESK_HOST, "upstream": self.desk_url},
            ],
        }

    def _track(self, child: Child) -> Child:
        self.children.append(child)
        return child

    async def start_sidecar(
        self, name: str, *, redis_url: str | None = None, trusted_proxies: list[str] | None = None
    ) -> Child:
        """`python -m sidecar serve -c CONFIG` in its own process; returns once /readyz is 200."""
        public_port, admin_port = free_port(), free_port()
        config = self.workdir / f"{name}.yaml"
        document = self.sidecar_config(
            public_port=public_port,
            admin_port=admin_port,
            redis_url=redis_url,
            trusted_proxies=trusted_proxies,
        )
        config.write_text(yaml.safe_dump(document))
        child = self._track(
            spawn(
                name,
                python_module("sidecar", "serve", "-c", str(config)),
                port=public_port,
                workdir=self.workdir,
            )
        )
        child.admin_port = admin_port
        await wait_for_port(child, admin_port)
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                async with http.get(f"http://127.0.0.1:{admin_port}/readyz") as r:
                    if r.status == 200:
                        return child
                await asyncio.sleep(0.05)
        raise TimeoutError(f"{name} never became ready:\n{child.log_tail()}")

    async def start_naive_proxy(self) -> Child:
        port = free_port()
        child = self._track(
            spawn(
                "naive-proxy",
                python_module(
                    "bench.naive_proxy", "--port", str(port), "--upstream", self.upstream_url
                ),
                port=port,
                workdir=self.workdir,
            )
        )
        await wait_for_port(child)
        return child

    async def start_nginx(self, binary: str) -> Child:
        child = self._track(
            start_nginx(
                binary, workdir=self.workdir, port=free_port(), upstream_port=self.upstream.port
            )
        )
        await wait_for_port(child)
        return child

    async def start_gateway(
        self, name: str, sidecar: Child, *, desk_port: int, cache: bool = True
    ) -> Child:
        """The shipped nginx forward-auth configuration (deploy/gateways/nginx) in front
        of `desk_port`, asking `sidecar`; SSO_HOST is its server name."""
        child = self._track(
            start_nginx_gateway(
                workdir=self.workdir,
                port=free_port(),
                sidecar_port=sidecar.port,
                desk_port=desk_port,
                host=SSO_HOST,
                cache=cache,
                name=name,
            )
        )
        await wait_for_port(child)
        return child

    async def sign_up(self, sidecar: Child) -> str:
        """Signs `alice` up on this sidecar; returns the Cookie header of her session."""
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            return await sign_up(
                http,
                sidecar_url=f"http://127.0.0.1:{sidecar.port}",
                emulator_url=self.emulator_url,
                host=SSO_HOST,
                user=USER,
                read_code=console_code_reader(sidecar.log),
            )

    def stop(self, child: Child) -> None:
        child.stop()
        if child in self.children:
            self.children.remove(child)


@asynccontextmanager
async def open_stack(workdir: Path) -> AsyncIterator[Stack]:
    """The fast upstream and the emulator/desk process; every child stops on exit."""
    upstream_port, emulator_port, desk_port = free_port(), free_port(), free_port()
    upstream = spawn(
        "fast-upstream",
        python_module("bench.fast_upstream", "--port", str(upstream_port)),
        port=upstream_port,
        workdir=workdir,
    )
    services = spawn(
        "emulator-and-desk",
        python_module(
            "bench.services",
            "--emulator-port",
            str(emulator_port),
            "--desk-port",
            str(desk_port),
            "--public-base",
            f"http://{SSO_HOST}",
        ),
        port=emulator_port,
        workdir=workdir,
    )
    stack = Stack(workdir, upstream, services, emulator_port, desk_port)
    stack.children += [upstream, services]
    try:
        await wait_for_port(upstream)
        await wait_for_port(services)
        await wait_for_port(services, desk_port)
        yield stack
    finally:
        for child in reversed(stack.children):
            child.stop()
