"""The development Entra emulator and the sample desk, together in one process of their own.

    .venv/bin/python -m bench.services --emulator-port 8100 --desk-port 8101 \
        --public-base http://sso.bench.test

The emulator registers the sidecar host of ``--public-base`` (its callback,
logout and signed-out URIs); the desk serves the WebSocket echo and the
streaming upload/download endpoints. Both stay out of the benchmark's own
process, so the load generator does not compete with them for an event loop.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from bench.procs import run_loop
from sidecar.dev.desk import make_desk_app
from sidecar.dev.entra import EntraEmulator, sample_tenant


async def main(emulator_port: int, desk_port: int, public_base: str) -> None:
    emulator = EntraEmulator([sample_tenant(public_base)], frontchannel_server_side=False)
    runners = []
    for app, port in ((emulator.make_app(), emulator_port), (make_desk_app(), desk_port)):
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        runners.append(runner)
    try:
        await asyncio.Event().wait()
    finally:
        for runner in runners:
            await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emulator-port", type=int, required=True)
    parser.add_argument("--desk-port", type=int, required=True)
    parser.add_argument("--public-base", required=True)
    args = parser.parse_args()
    run_loop(main(args.emulator_port, args.desk_port, args.public_base))
