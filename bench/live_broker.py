"""The real broker for the benchmarks that drive it over HTTP (bench/issuance.py,
bench/revocation_latency.py): a database (PostgreSQL from a base URL, or SQLite), moto's STS
served with keep-alive, a `broker serve` configured for a test slapd, and its readiness wait.

The directory servers themselves come from the test suite's tests/directory/servers.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.directory.servers import SERVICE_DN, SUFFIX, Slapd, free_port

BIN = Path(sys.executable).parent


@dataclass
class Database:
    url: str
    kind: str
    drop: Callable[[], None] = lambda: None


def database(tmp: Path, postgres: str | None, *, name: str | None = None) -> Database:
    """A fresh database: SQLite in ``tmp``, or on the PostgreSQL server of the URL ``postgres``
    the database ``name`` (default ``broker_bench_<pid>``), dropped first if it exists."""
    if not postgres:
        return Database(f"sqlite:///{tmp / 'broker.db'}", "sqlite")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(postgres)
    name = name or f"broker_bench_{os.getpid()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return Database(base.set(database=name).render_as_string(hide_password=False), "postgresql", drop)


# moto_server (werkzeug's development server) closes the connection after every answer; AWS
# STS keeps connections alive and botocore reuses them. So moto's STS app is served here by
# uvicorn (WSGI interface, HTTP/1.1 keep-alive), as STS would be met; and directly, not through
# moto's all-services dispatcher, which works out the service of every request anew (it lists
# moto's modules on disk each time: a sixth of moto's CPU, on the cores the broker shares).
_MOTO_KEEPALIVE = (
    "import sys, uvicorn; from moto.moto_server.werkzeug_app import create_backend_app; "
    "uvicorn.run(create_backend_app('sts'), host=sys.argv[1], port=int(sys.argv[2]), "
    "interface='wsgi', log_level='warning', access_log=False)"
)


def start_moto(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (tmp / "moto.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", _MOTO_KEEPALIVE, "127.0.0.1", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/moto-api/", proc, tmp / "moto.log")
    return proc, url


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{url}: process exited {proc.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


def ldap_broker_config(
    tmp: Path,
    *,
    slapd: Slapd,
    db: Database,
    moto: str,
    port: int,
    workers: int,
    mapping: dict[str, Any],
    cpu_affinity: bool = True,
    directory: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A broker.yaml for `broker serve` on 127.0.0.1:``port``: the slapd directory over plain
    loopback LDAP (``directory`` merged over its section), ``api.password_login``, ``sts.mode:
    aws`` at moto, real key files, the rate limit per address lifted (every client is 127.0.0.1);
    ``extra`` sections replace the defaults'."""
    from broker.config import Config
    from broker.minting.keys import generate_keypair

    key, cert, _ = generate_keypair(tmp / "keys")
    section: dict[str, Any] = {
        "type": "ldap",
        "name": "bench-ldap",
        "servers": [slapd.url],
        "start_tls": False,
        "insecure_no_tls": True,  # loopback
        "bind_dn": SERVICE_DN,
        "bind_password": slapd.service_password,
        "user_search": {"base": f"ou=people,{SUFFIX}", "login_attributes": ["uid"]},
        "groups": {"strategy": "member_of", "base": f"ou=groups,{SUFFIX}"},
        **(directory or {}),
    }
    config: dict[str, Any] = {
        "server": {
            "public_url": "https://broker.bench.invalid",
            "host": "127.0.0.1",
            "port": port,
            "workers": workers,
            "cpu_affinity": cpu_affinity,
        },
        "database": {"url": db.url},
        "logging": {"level": "info", "format": "json", "access_log": True},
        "api": {"password_login": True},
        "directory": section,
        "keys": {"current": {"key": str(key), "cert": str(cert)}},
        "sts": {"mode": "aws", "endpoint_url": moto},
        "mapping": mapping,
    }
    if "rate_limits" in Config.model_fields:
        config["rate_limits"] = {"window_seconds": 10, "login_failures_per_address": 100000}
    config |= extra or {}
    path = tmp / "broker.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def migrate(config: Path) -> None:
    env = {**os.environ, "BROKER_CONFIG": str(config)}
    subprocess.run(
        [str(BIN / "broker"), "migrate", "--config", str(config)], env=env, check=True, capture_output=True
    )


def serve(config: Path, *, port: int, workers: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`broker serve` in its own process group, once /readyz answers: (process, base URL)."""
    env = {**os.environ, "BROKER_CONFIG": str(config)}
    server = subprocess.Popen(
        [str(BIN / "broker"), "serve", "--config", str(config), "--workers", str(workers)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_http(base_url + "/readyz", server, log)
    except BaseException:
        from tests.directory.servers import stop

        stop(server)
        raise
    return server, base_url


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
