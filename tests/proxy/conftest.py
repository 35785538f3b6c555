"""A real reverse proxy in front of a real `broker serve`: Debian nginx on loopback.

nginx listens on 127.0.0.1 (two servers: one adds X-Forwarded-For, one RFC 7239 Forwarded) and
reaches the broker from 127.0.0.4 (``proxy_bind``), as an ingress would from an address of its
own — not 127.0.0.1, which uvicorn used to trust by itself. Clients connect from 127.0.0.2 and
127.0.0.3 (httpx ``local_address``): distinct people as the broker must see them.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import yaml

from tests.conftest import ADMIN_TOKEN, component_missing, free_port
from tests.nginx import Nginx, nginx_program

PROXY_ADDRESS = "127.0.0.4"  # nginx's address as the broker sees it
USERS = {"alice": "alice-proxy-pw-1", "bob": "bob-proxy-pw-2", "carol": "carol-proxy-pw-3"}

NGINX_HTTP = """
    # RFC 7239: append this hop to what the client sent, as $proxy_add_x_forwarded_for does
    map $http_forwarded $proxy_add_forwarded {{
        default "$http_forwarded, for=$remote_addr;proto=$scheme";
        "" "for=$remote_addr;proto=$scheme";
    }}
    server {{
        listen 127.0.0.1:{xff_port};
        location / {{
            proxy_pass http://127.0.0.1:{broker_port};
            proxy_bind {proxy};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
    server {{
        listen 127.0.0.1:{forwarded_port};
        location / {{
            proxy_pass http://127.0.0.1:{broker_port};
            proxy_bind {proxy};
            proxy_set_header Forwarded $proxy_add_forwarded;
            proxy_set_header X-Forwarded-For "";
        }}
    }}
"""


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


@dataclass
class Setup:
    broker: str  # http://127.0.0.1:<port>, direct
    xff: str  # through nginx, X-Forwarded-For
    forwarded: str  # through nginx, Forwarded

    def client(self, base: str, local_address: str = "127.0.0.1") -> httpx.Client:
        return httpx.Client(base_url=base, transport=httpx.HTTPTransport(local_address=local_address), timeout=30)

    def sign_in(self, client: httpx.Client, username: str, password: str, headers: dict[str, str] | None = None) -> int:
        """HTTP Basic on the user API: one password sign-in (200, 401 or 429)."""
        return client.get("/api/v1/whoami", headers=basic(username, password) | (headers or {})).status_code

    def login_addresses(self, username: str) -> list[str]:
        """The source address of each audited sign-in of ``username``, oldest first."""
        with self.client(self.broker) as admin:
            items = admin.get("/api/v1/admin/audit", params={"action": "login", "limit": 500},
                              headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()["items"]
        return [e["source_ip"] for e in reversed(items) if e["details"].get("user") == username]


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait(url: str, proc: subprocess.Popen[Any], log: Path) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{url} did not answer:\n{log.read_text()[-3000:]}")


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[Callable[..., Setup]]:
    """``behind_nginx(trusted_proxies=[...], rate_limits={...})``: `broker serve` (a subprocess, as in
    production) with a static directory, and nginx in front of it."""
    if nginx_program() is None:
        component_missing("Debian nginx (apt-get install -y nginx; see `make test-deps`)")
    procs: list[subprocess.Popen[Any]] = []
    proxies: list[Nginx] = []

    def start(*, trusted_proxies: list[str], rate_limits: dict[str, Any], workers: int = 1) -> Setup:
        broker_port, xff_port, forwarded_port = free_port(), free_port(), free_port()
        users = [{"username": u, "id": f"id-{u}", "password_hash": bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode(),
                  "groups": ["staff"]} for u, p in USERS.items()]
        config = {
            "server": {"public_url": f"http://127.0.0.1:{broker_port}", "host": "127.0.0.1", "port": broker_port,
                       "trusted_proxies": trusted_proxies, "drain_seconds": 0},
            "database": {"url": f"sqlite:///{tmp_path / 'broker.db'}", "auto_migrate": True},
            "logging": {"level": "warning", "format": "json", "access_log": False},
            "api": {"password_login": True},
            "directory": {"type": "static", "name": "people", "users": users},
            "rate_limits": rate_limits,
        }
        if workers > 1:  # every worker process builds its own app (uvicorn's multi-process path)
            from broker.minting.keys import generate_keypair

            key, cert, _ = generate_keypair(tmp_path / "keys")
            config["server"]["workers"] = workers
            config["keys"] = {"current": {"key": str(key), "cert": str(cert)}}
        path = tmp_path / "broker.yaml"
        path.write_text(yaml.safe_dump(config))
        log = tmp_path / "broker.log"
        env = dict(os.environ, BROKER_ADMIN_TOKEN=ADMIN_TOKEN)
        env.pop("FORWARDED_ALLOW_IPS", None)
        broker = subprocess.Popen([sys.executable, "-m", "broker", "serve", "--config", str(path)], env=env,
                                  stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(broker)
        _wait(f"http://127.0.0.1:{broker_port}/healthz", broker, log)

        proxies.append(Nginx(tmp_path, worker_connections=64))
        proxies[-1].start(NGINX_HTTP.format(xff_port=xff_port, forwarded_port=forwarded_port, broker_port=broker_port,
                                            proxy=PROXY_ADDRESS),
                          f"http://127.0.0.1:{xff_port}/healthz", f"http://127.0.0.1:{forwarded_port}/healthz")
        return Setup(f"http://127.0.0.1:{broker_port}", f"http://127.0.0.1:{xff_port}",
                     f"http://127.0.0.1:{forwarded_port}")

    yield start
    for proxy in proxies:
        proxy.stop(timeout=15)
    for proc in reversed(procs):
        _stop(proc)
