"""Hot reload: tenants change without dropping connections; a bad file changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from sidecar.config.loading import load_config
from sidecar.fingerprints import fingerprint
from sidecar.reload import reload_once, watch_config
from tests.helpers import base_config, run_sidecar
from tests.world import CLIENT_ID, CLIENT_SECRET, open_world


async def get_status(http: aiohttp.ClientSession, url: str, host: str, path: str = "/echo") -> int:
    async with http.get(url + path, headers={"Host": host}) as response:
        await response.read()
        return response.status


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def write_atomically(path: Path, document: dict[str, Any]) -> None:
    # Like a ConfigMap update: a new file swapped in, never a half-written one.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(document))
    tmp.replace(path)


async def test_reload_adds_tenants_keeps_connections_and_refuses_bad_files(
    desk_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    document = base_config(desk_url)
    write_atomically(path, document)
    async with run_sidecar(load_config(path)) as sidecar, aiohttp.ClientSession() as http:
        sidecar.runtime.config_path = str(path)
        watcher = asyncio.ensure_future(watch_config(sidecar.runtime, path, interval=0.05))
        try:
            assert await get_status(http, sidecar.url, "new.example.test") == 421
            # A slow request in flight while the tenants change still completes.
            slow = asyncio.ensure_future(
                get_status(http, sidecar.url, "desk.example.test", "/slow?delay=0.5")
            )
            document["tenants"].append({"host": "new.example.test", "upstream": desk_url})
            write_atomically(path, document)

            async def new_host_served() -> bool:
                return await get_status(http, sidecar.url, "new.example.test") == 200

            await wait_for(new_host_served)
            assert await slow == 200

            broken = {**document, "tenants": [{"host": "x.example.test", "upstream": "ftp://x"}]}
            write_atomically(path, broken)

            async def refused() -> bool:
                async with http.get(sidecar.admin_url + "/metrics") as r:
                    return "ticketlog_sso_config_last_reload_valid 0.0" in await r.text()

            await wait_for(refused)
            assert await get_status(http, sidecar.url, "new.example.test") == 200
            assert await get_status(http, sidecar.url, "x.example.test") == 421
        finally:
            watcher.cancel()


def project(volume: Path, files: dict[str, str], version: str) -> None:
    """Update a directory the way the kubelet updates a mounted ConfigMap or Secret: the
    files go into a new timestamped directory, `..data` is swapped to it in one rename,
    and the visible names are links through `..data`."""
    volume.mkdir(exist_ok=True)
    target = volume / f"..{version}"
    target.mkdir()
    for name, text in files.items():
        (target / name).write_text(text)
    (volume / "..data_tmp").symlink_to(target.name)
    (volume / "..data_tmp").replace(volume / "..data")
    for name in files:
        if not (volume / name).is_symlink():
            (volume / name).symlink_to(f"..data/{name}")


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def scrape(http: aiohttp.ClientSession, admin_url: str) -> str:
    async with http.get(admin_url + "/metrics") as response:
        return await response.text()


RELOADED = 'ticketlog_sso_config_reloads_total{result="ok"}'


async def test_a_projected_volume_swap_reloads_and_unchanged_tenants_keep_discovery(
    tmp_path: Path,
) -> None:
    async with open_world() as world:
        volume = tmp_path / "config"
        main = {k: v for k, v in world.document.items() if k != "tenants"}
        files = {
            "main.yaml": yaml.safe_dump(main),
            "contoso.yaml": yaml.safe_dump({"tenants": world.document["tenants"]}),
        }
        project(volume, files, "2026_12_03_08_00_00.1")
        watcher = asyncio.ensure_future(watch_config(world.sidecar.runtime, volume, interval=0.1))
        try:
            landing = await world.sign_up(world.browser("alice"), rd="/echo")
            assert landing.status == 200
            before = await scrape(world.http, world.sidecar.admin_url)
            added = {"host": "new.example.test", "upstream": world.desk_url}
            files["onboarded.yaml"] = yaml.safe_dump({"tenants": [added]})
            project(volume, files, "2026_12_03_08_05_00.2")

            async def new_host_served() -> bool:
                return await get_status(world.http, world.sidecar.url, "new.example.test") == 200

            await wait_for(new_host_served)
            again = await world.browser("alice").open("/echo")
            assert again.status == 200
            assert "alice@contoso.test" in again.text
            after = await scrape(world.http, world.sidecar.admin_url)
            assert sample(after, RELOADED) - sample(before, RELOADED) == 1
            # The unchanged tenant signed in again with the discovery and keys it had
            # (the counters are the process's: other tests may have fetched before).
            for document in ("discovery", "jwks"):
                fetched = (
                    f'ticketlog_sso_idp_fetches_total{{document="{document}",'
                    'result="ok",tenant="contoso.test"}'
                )
                assert sample(before, fetched) >= 1
                assert sample(after, fetched) == sample(before, fetched)
        finally:
            watcher.cancel()


async def test_a_rotated_secret_file_is_applied_and_the_metric_names_it(tmp_path: Path) -> None:
    """The rotation runbook: add the new secret in Entra, put it first in the mounted
    Secret, see the metric name it, delete the old one in Entra: sign-ins keep working."""
    secrets = tmp_path / "secrets"
    project(secrets, {"client-secret": CLIENT_SECRET + "\n"}, "2026_12_03_08_00_00.1")

    def from_file(document: dict[str, Any]) -> None:
        sso = document["tenants"][0]["sso"]
        del sso["client_secret"]
        sso["client_secret_file"] = str(secrets / "client-secret")

    async with open_world(edit=from_file) as world:
        config = tmp_path / "config.yaml"
        write_atomically(config, world.document)
        watcher = asyncio.ensure_future(watch_config(world.sidecar.runtime, config, interval=0.1))
        in_use = 'ticketlog_sso_client_secret_index{{fingerprint="{}",tenant="desk.contoso.test"}}'
        old, new = CLIENT_SECRET, "new~rotated-secret-value"
        try:
            await world.sign_up(world.browser("alice"))
            before = await scrape(world.http, world.sidecar.admin_url)
            assert sample(before, in_use.format(fingerprint(old))) == 0
            app = world.emulator.tenants[0].app(CLIENT_ID)
            assert app is not None
            app.secrets[new] = None
            project(secrets, {"client-secret": f"{new}\n{old}\n"}, "2026_12_03_09_00_00.2")

            async def reloaded() -> bool:
                text = await scrape(world.http, world.sidecar.admin_url)
                return sample(text, RELOADED) > sample(before, RELOADED)

            await wait_for(reloaded)
            assert (await world.browser("alice").open("/echo")).status == 200
            text = await scrape(world.http, world.sidecar.admin_url)
            assert in_use.format(fingerprint(new)) + " 0.0" in text
            assert fingerprint(old) not in text  # one series: the secret in use now
            assert new not in text
            del app.secrets[old]
            landing = await world.browser("alice").open("/echo")
            assert landing.status == 200
            assert "alice@contoso.test" in landing.text
        finally:
            watcher.cancel()


async def test_a_change_made_before_the_watcher_started_is_applied(
    desk_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    document = base_config(desk_url)
    write_atomically(path, document)
    async with run_sidecar(load_config(path)) as sidecar, aiohttp.ClientSession() as http:
        document["tenants"].append({"host": "early.example.test", "upstream": desk_url})
        write_atomically(path, document)
        watcher = asyncio.ensure_future(watch_config(sidecar.runtime, path, interval=0.05))
        try:

            async def early_host_served() -> bool:
                return await get_status(http, sidecar.url, "early.example.test") == 200

            await wait_for(early_host_served)
        finally:
            watcher.cancel()


async def test_signup_and_email_changes_apply_without_a_restart(
    desk_url: str, tmp_path: Path, caplog: Any
) -> None:
    """Only `server` and `session` wait for a restart (contract: Reload)."""
    path = tmp_path / "config.yaml"
    document = base_config(desk_url)
    document["email"] = {"backend": "console"}
    write_atomically(path, document)
    async with run_sidecar(load_config(path)) as sidecar:
        runtime = sidecar.runtime
        assert runtime.sso.codes.policy.resend_cooldown == 60
        document["signup"] = {"resend_cooldown": "5s", "max_attempts": 3}
        document["email"] = {
            "backend": "smtp",
            "smtp": {"host": "127.0.0.1", "port": 2525, "tls": "none", "from": "Desk <d@x.test>"},
        }
        write_atomically(path, document)
        assert await reload_once(runtime, path) is not None
        assert runtime.sso.codes.policy.resend_cooldown == 5
        assert runtime.sso.codes.policy.max_attempts == 3
        assert runtime.sso.mail_from == "Desk <d@x.test>"
        assert runtime.config.signup.resend_cooldown == 5
        assert "config_change_needs_restart" not in caplog.text
        # A session change waits for the restart, and says so.
        document["session"]["idle_timeout"] = "5m"
        write_atomically(path, document)
        assert await reload_once(runtime, path) is not None
        assert "config_change_needs_restart" in caplog.text
        assert runtime.config.session.idle_timeout != 300
