"""A Redis Sentinel failover: the sidecar follows the new master and loses no account."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import redis.asyncio as aioredis

from bench.procs import free_port
from sidecar.runtime import open_store
from sidecar.signup import AccountStore
from tests.helpers import config_from
from tests.redis_server import RedisProcess
from tests.world import HOST, open_world


async def start_sentinel(
    directory: Path, master_port: int
) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    conf = directory / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n"
        "sentinel down-after-milliseconds mymaster 500\n"
        "sentinel failover-timeout mymaster 2000\n"
        "sentinel parallel-syncs mymaster 1\n"
    )
    binary = shutil.which("redis-server")
    assert binary
    process = await asyncio.create_subprocess_exec(
        binary, str(conf), "--sentinel",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    client = aioredis.Redis(port=port)
    try:
        for _ in range(100):
            try:
                if await client.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster"):
                    return process, port
            except OSError:
                pass
            except aioredis.ConnectionError:
                pass
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise TimeoutError("sentinel did not start")


async def wait_replica_synced(port: int) -> None:
    client = aioredis.Redis(port=port)
    try:
        for _ in range(200):
            info = await client.info("replication")
            if info.get("master_link_status") == "up":
                return
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise TimeoutError("replica did not sync")


async def test_failover_keeps_accounts_and_the_sidecar_follows_the_new_master(
    tmp_path: Path,
) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "r").mkdir()
    master = RedisProcess(tmp_path / "m")
    await master.start()
    replica = RedisProcess(tmp_path / "r", None, "--replicaof", "127.0.0.1", str(master.port))
    await replica.start()
    await wait_replica_synced(replica.port)
    sentinel, sentinel_port = await start_sentinel(tmp_path, master.port)
    try:
        sentinel_session = {
            "store": "redis",
            "secret_keys": ["s" * 40],
            "redis_sentinel": {"hosts": [f"127.0.0.1:{sentinel_port}"], "service": "mymaster"},
        }

        def use_sentinel(document: dict[str, object]) -> None:
            document["session"] = sentinel_session

        probe_config = config_from(
            {
                "session": sentinel_session,
                "tenants": [{"host": "x.test", "upstream": "http://127.0.0.1:1"}],
            }
        )
        store = open_store(probe_config)
        try:
            async with open_world(store=store, edit=use_sentinel) as world:
                await world.sign_up(world.browser("alice"), rd="/echo")
                # The account write waited for the replica (Redis WAIT): it is there already.
                replica_client = aioredis.Redis(port=replica.port)
                assert await replica_client.keys("tlsso:account:*")
                await replica_client.aclose()

                await master.stop()  # the master dies; sentinel promotes the replica
                browser = world.browser("alice")
                for _ in range(200):
                    reply = await browser.open("/echo")
                    if reply.status == 200:
                        break
                    assert reply.status in (302, 503), reply.text[:300]
                    await asyncio.sleep(0.1)
                assert reply.status == 200, "the sidecar did not follow the new master"
                # Signed in again without the signup screen: the account survived the failover.
                assert reply.json()["path"] == "/echo"
                assert [a.email for a in await AccountStore(store).list(HOST)] == [
                    "alice@contoso.test"
                ]
        finally:
            await store.close()
    finally:
        sentinel.terminate()
        await sentinel.wait()
        await replica.stop()
        await master.stop()
