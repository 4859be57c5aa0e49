"""The shipped gateway configurations (deploy/gateways/), run for real on loopback.

The tests and the benchmark run the files as shipped, with only their addresses
changed: the sidecar's and the desk's (`ticketlog-sso:8080`, `ticketlog-desk:3000`),
the listening port, the site name and, for nginx, the cache directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench.nginx import http_prelude, nginx_path
from bench.procs import Child, spawn

GATEWAYS = Path(__file__).resolve().parents[1] / "deploy" / "gateways"
NGINX_SITE = GATEWAYS / "nginx" / "ticketlog-sso.conf"
CADDYFILE = GATEWAYS / "caddy" / "Caddyfile"

SHIPPED_SIDECAR = "ticketlog-sso:8080"
SHIPPED_DESK = "ticketlog-desk:3000"
SHIPPED_HOST = "desk.contoso.com"
NGINX_CACHE_LINE = "        proxy_cache ticketlog_sso_auth;\n"


def _addressed(text: str, *, sidecar_port: int, desk_port: int) -> str:
    for shipped, ours in ((SHIPPED_SIDECAR, sidecar_port), (SHIPPED_DESK, desk_port)):
        assert shipped in text, f"the shipped configuration no longer names {shipped}"
        text = text.replace(shipped, f"127.0.0.1:{ours}")
    return text


def nginx_site(
    *, prefix: Path, port: int, sidecar_port: int, desk_port: int, host: str, cache: bool = True
) -> str:
    """deploy/gateways/nginx/ticketlog-sso.conf on loopback; `cache=False` without the
    auth answer cache (the benchmark's row without it)."""
    text = _addressed(NGINX_SITE.read_text(), sidecar_port=sidecar_port, desk_port=desk_port)
    replacements = {
        "listen 8080;": f"listen 127.0.0.1:{port};",
        f"server_name {SHIPPED_HOST};": f"server_name {host};",
        "/var/cache/nginx/ticketlog-sso": str(prefix / "auth-cache"),
    }
    if not cache:
        replacements[NGINX_CACHE_LINE] = ""
    for shipped, ours in replacements.items():
        assert shipped in text, f"the shipped nginx configuration no longer has {shipped!r}"
        text = text.replace(shipped, ours)
    return text


def nginx_main(prefix: Path, site: Path) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
{http_prelude(prefix)}    include {site};
}}
"""


def start_nginx_gateway(
    *,
    workdir: Path,
    port: int,
    sidecar_port: int,
    desk_port: int,
    host: str,
    cache: bool = True,
    name: str = "nginx-gateway",
) -> Child:
    binary = nginx_path()
    if binary is None:
        raise RuntimeError("nginx is not installed (make gateways installs it)")
    prefix = workdir / name
    prefix.mkdir(parents=True, exist_ok=True)
    site = prefix / "ticketlog-sso.conf"
    site.write_text(
        nginx_site(
            prefix=prefix,
            port=port,
            sidecar_port=sidecar_port,
            desk_port=desk_port,
            host=host,
            cache=cache,
        )
    )
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_main(prefix, site))
    argv = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    return spawn(name, argv, port=port, workdir=workdir, tree=True)


def caddy_path() -> str | None:
    return shutil.which("caddy")


def caddyfile(*, port: int, sidecar_port: int, desk_port: int, host: str) -> str:
    """deploy/gateways/caddy/Caddyfile on loopback, over plain http."""
    text = _addressed(CADDYFILE.read_text(), sidecar_port=sidecar_port, desk_port=desk_port)
    site = f"{SHIPPED_HOST} {{"
    assert site in text, "the shipped Caddyfile no longer has its example site"
    text = text.replace(site, f"http://{host}:{port} {{")
    # No admin endpoint and no certificates on a test machine.
    return "{\n\tadmin off\n\tauto_https off\n}\n\n" + text


def start_caddy_gateway(
    *, workdir: Path, port: int, sidecar_port: int, desk_port: int, host: str
) -> Child:
    binary = caddy_path()
    if binary is None:
        raise RuntimeError("caddy is not installed (make gateways installs it)")
    prefix = workdir / "caddy"
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "Caddyfile"
    conf.write_text(caddyfile(port=port, sidecar_port=sidecar_port, desk_port=desk_port, host=host))
    env = {"HOME": str(prefix), "XDG_DATA_HOME": str(prefix), "XDG_CONFIG_HOME": str(prefix)}
    argv = [binary, "run", "--config", str(conf), "--adapter", "caddyfile"]
    return spawn("caddy", argv, port=port, workdir=workdir, env=env)
