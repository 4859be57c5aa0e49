"""`serve`: run the public and admin listeners until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from sidecar import logs
from sidecar.access_log import ACCESS_LOG, RequestLogger
from sidecar.admin import build_admin_app
from sidecar.app import build_public_app
from sidecar.config.advice import config_warnings
from sidecar.config.reader import ConfigReader
from sidecar.config.sources import LoadedConfig
from sidecar.http_errors import QuietAppRunner
from sidecar.reload import watch_config
from sidecar.runtime import Runtime


class ListenError(Exception):
    """A listener could not bind (the address is in use, or not this machine's)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")
        self.address = address
        self.reason = reason


async def start_site(runner: web.AppRunner, host: str, port: int) -> None:
    """Bind one listener; a failure is a ListenError naming the address."""
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise ListenError(address, reason) from None


def split_listen(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass
class Listeners:
    public: web.AppRunner
    admin: web.AppRunner
    public_port: int
    admin_port: int

    async def close(self) -> None:
        # Admin last, so /readyz keeps saying "draining" while requests finish.
        await self.public.cleanup()
        await self.admin.cleanup()


def bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("listener has no socket")


async def start_listeners(
    runtime: Runtime,
    *,
    public: tuple[str, int] | None = None,
    admin: tuple[str, int] | None = None,
) -> Listeners:
    """Start both listeners; addresses default to the config (tests pass port 0)."""
    server = runtime.config.server
    public_addr = public or split_listen(server.listen)
    admin_addr = admin or split_listen(server.admin_listen)
    public_runner = QuietAppRunner(
        build_public_app(runtime),
        # Lines are written by RequestLogger itself (batched), not through this logger.
        access_log=logging.getLogger("ticketlog_sso.access"),
        access_log_class=RequestLogger,
        shutdown_timeout=server.shutdown_grace,
        handle_signals=False,
        # SECURITY: request bodies are relayed byte for byte. aiohttp would otherwise
        # decompress a gzip or deflate body while the client's Content-Length (the
        # compressed size) goes on to the desk, which would read the rest of the
        # inflated bytes as a request of its own (request smuggling).
        auto_decompress=False,
    )
    admin_runner = QuietAppRunner(
        build_admin_app(runtime), access_log=None, shutdown_timeout=1.0, handle_signals=False
    )
    await public_runner.setup()
    await admin_runner.setup()
    try:
        await start_site(public_runner, *public_addr)
        await start_site(admin_runner, *admin_addr)
    except ListenError:
        await public_runner.cleanup()
        await admin_runner.cleanup()
        raise
    return Listeners(
        public=public_runner,
        admin=admin_runner,
        public_port=bound_port(public_runner),
        admin_port=bound_port(admin_runner),
    )


async def serve_until_signalled(
    runtime: Runtime,
    on_started: Callable[[Listeners], Awaitable[None]] | None = None,
    *,
    loaded: LoadedConfig | None = None,
    reader: ConfigReader | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; with a config path, reload on changes and on SIGHUP.

    ``loaded`` is the config as read at start (its files and their state then);
    ``reader`` reads the reloads in a child process.
    """
    listeners = await start_listeners(runtime)
    # Everything loaded at start-up lives as long as the process: move it out of the
    # garbage collector's generations, so full collections (tail-latency pauses) only
    # walk what requests allocate.
    gc.collect()
    gc.freeze()
    logs.event(
        "started",
        listen=runtime.config.server.listen,
        admin_listen=runtime.config.server.admin_listen,
        tenants=len(runtime.tenants.table),
    )
    email = runtime.config.email
    if email is not None and email.backend == "console" and runtime.config.sso_tenants:
        logs.warning(
            "console_mail_backend",
            message="verification codes are written to this log: for development only",
        )
    for warning in config_warnings(runtime.config):
        field, _, message = warning.partition(": ")
        logs.warning("config_warning", field=field, message=message)
    if on_started is not None:
        await on_started(listeners)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = None
    if runtime.config_path:
        reload_now = asyncio.Event()
        loop.add_signal_handler(signal.SIGHUP, reload_now.set)
        watcher = asyncio.ensure_future(
            watch_config(
                runtime, runtime.config_path, loaded=loaded, wake=reload_now, reader=reader
            )
        )
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    # Readiness turns false first; then the listener stops accepting and in-flight
    # requests (WebSockets included) get up to shutdown_grace to finish.
    runtime.draining = True
    logs.event("draining", grace_seconds=runtime.config.server.shutdown_grace)
    await listeners.close()
    ACCESS_LOG.flush()
    logs.event("stopped")
