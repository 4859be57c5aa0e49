"""nginx `proxy_pass` in front of the fast upstream: the reference a C proxy sets.

A throw-away nginx.conf in a temporary prefix, run in the foreground as a child
process. One worker process, like the single-process sidecar, with upstream
keep-alive (HTTP/1.1, pooled connections) as any production nginx proxy has.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bench.procs import Child, spawn


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def nginx_version(binary: str) -> str:
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


def http_prelude(prefix: Path) -> str:
    """The http-context lines every throw-away nginx of the benchmark shares: no access
    log, temporary files under `prefix`, keep-alive without a request limit."""
    return f"""    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
"""


def nginx_conf(*, prefix: Path, port: int, upstream_port: int, workers: int = 1) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes {workers};
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_rlimit_nofile 65536;
events {{
    worker_connections 20000;
    multi_accept on;
}}
http {{
{http_prelude(prefix)}    upstream fast {{
        server 127.0.0.1:{upstream_port};
        keepalive 256;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://fast;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""


def start_nginx(binary: str, *, workdir: Path, port: int, upstream_port: int) -> Child:
    prefix = workdir / "nginx"
    prefix.mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix=prefix, port=port, upstream_port=upstream_port))
    return spawn(
        "nginx",
        [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
        port=port,
        workdir=workdir,
        tree=True,
    )
