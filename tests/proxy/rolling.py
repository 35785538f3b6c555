"""A rolling restart behind a real nginx: two `broker serve` replicas (each with its own workers)
on one database, nginx balancing them, a thread issuing credentials and listing roles through
nginx all along; each replica in turn is sent SIGTERM, waited for, started again, and waited for
until ready before the next one goes — what a Kubernetes rollout with maxUnavailable 0 does.

The nginx configuration (``NGINX_HTTP``, in ``tests.nginx``'s common frame) is what makes a restart invisible to clients, together
with the broker's drain (broker.serving):

- ``proxy_next_upstream error timeout``: a request whose connection to a replica fails (refused:
  the replica has stopped accepting; reset; no answer within ``proxy_connect_timeout``) goes to
  the other replica. nginx does this for a POST (an issuance) only while the request has not been
  sent; and a replica that stops never resets a request it took: it answers every request it
  accepted (the grace period) and, after its drain, refuses new connections — refused ones are
  exactly the ones nginx may retry anywhere. ``non_idempotent`` is not set: a POST that may have
  reached a replica is never sent twice.
- ``max_fails=0``: nginx never marks a replica unavailable for ``fail_timeout``; otherwise the
  replica that has just come back would be skipped for 10 s, and the other one, being restarted
  next, would leave nginx with no replica at all ("no live upstreams", 502).
- No upstream keep-alive (nginx's default: a connection per request), so a replica's refusal is
  met at connect, never on a connection nginx held idle.

Plain nginx cannot read /readyz (its active health checks are NGINX Plus); in Kubernetes the
endpoints controller takes a draining pod out of the Service within the drain, so even that retry
is seldom needed.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import yaml

from broker.minting.keys import generate_keypair
from tests.conftest import ADMIN_TOKEN, free_port
from tests.nginx import Nginx

PASSWORD = "rolling-restart-pw-1"
ACCOUNT = "111122223333"

NGINX_HTTP = """
    upstream brokers {{
        server 127.0.0.1:{first} max_fails=0{first_down};
        server 127.0.0.1:{second} max_fails=0{second_down};
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://brokers;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }}
    }}
"""


def wait_ready(url: str, proc: subprocess.Popen[Any], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[Any], timeout: float = 40) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    return proc.returncode


@dataclass(frozen=True)
class Restart:
    replica: str
    exit_code: int
    stop_seconds: float
    """SIGTERM to exit: the drain, the requests in flight, the close."""
    start_seconds: float
    """Start to /readyz 200."""


@dataclass
class Replica:
    name: str
    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        env = os.environ | {"BROKER_ADMIN_TOKEN": ADMIN_TOKEN}
        self.proc = subprocess.Popen([sys.executable, "-m", "broker", "serve", "--config", str(self.config)], env=env,
                                     stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_ready(f"http://127.0.0.1:{self.port}/readyz", self.proc, self.log)

    def stop(self) -> int:
        assert self.proc is not None
        return stop(self.proc)


@dataclass
class Load:
    """One client thread through nginx: an issuance (POST /api/v1/credentials), then the roles."""

    url: str
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    max_latency: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=60)

    def _run(self) -> None:
        auth = {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}
        with httpx.Client(base_url=self.url, headers=auth, timeout=30) as client:
            while not self._stop.is_set():
                for method, path, body in (("POST", "/api/v1/credentials", {"account": ACCOUNT, "role": "Admin"}),
                                           ("GET", "/api/v1/roles", None)):
                    began = time.monotonic()
                    try:
                        response = client.request(method, path, json=body)
                        outcome = str(response.status_code)
                        if response.status_code != 200:
                            self.failures.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
                    except httpx.HTTPError as exc:
                        outcome = type(exc).__name__
                        self.failures.append(f"{method} {path}: {outcome}: {exc}")
                    self.max_latency = max(self.max_latency, time.monotonic() - began)
                    self.statuses[outcome] += 1

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


class Deployment:
    """nginx and two replicas in ``tmp``, on ``database_url``."""

    def __init__(self, tmp: Path, database_url: str, *, workers: int = 2, drain_seconds: float = 2,
                 grace_seconds: int = 10) -> None:
        self.tmp = tmp
        self.nginx = Nginx(tmp, worker_connections=256)
        key, cert, _ = generate_keypair(tmp / "keys")
        users = [{"username": "alice", "id": "id-alice", "groups": ["staff"],
                  "password_hash": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()}]
        self.replicas: list[Replica] = []
        for name in ("a", "b"):
            port = free_port()
            config = {
                "server": {"public_url": "http://127.0.0.1", "port": port, "workers": workers,
                           "drain_seconds": drain_seconds, "shutdown_grace_seconds": grace_seconds},
                "database": {"url": database_url, "auto_migrate": True},
                "logging": {"level": "info", "format": "json", "access_log": False},
                "keys": {"current": {"key": str(key), "cert": str(cert)}},
                "api": {"password_login": True},
                "directory": {"type": "static", "name": "people", "users": users},
                "sts": {"mode": "sandbox"},
                "mapping": {"accounts": [{"id": ACCOUNT, "alias": "core", "roles": [{"name": "Admin"}]}],
                            "mappings": [{"group": "staff", "account": "core", "role": "Admin"}]},
            }
            path = tmp / f"replica-{name}.yaml"
            path.write_text(yaml.safe_dump(config))
            self.replicas.append(Replica(name, path, port, tmp / f"replica-{name}.log"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        for replica in self.replicas:  # one after the other: the first one migrates the database
            replica.start()
        self.nginx.start(self._nginx_http(), f"{self.url}/healthz")

    def _nginx_http(self, out: Replica | None = None) -> str:
        first, second = self.replicas
        return NGINX_HTTP.format(port=self.port, first=first.port, second=second.port,
                                 first_down=" down" if out is first else "", second_down=" down" if out is second else "")

    def rolling_restart(self) -> list[Restart]:
        """Each replica stopped (SIGTERM), started again and ready, one after the other. As it gets
        SIGTERM it leaves nginx's upstream (``down`` and a reload), as Kubernetes removes a pod's
        endpoint when it stops it; its drain serves what is still on the way to it (without this, a
        POST nginx sent as the replica closed its listening socket came back 502 now and then:
        nginx retries no POST). Back once ready."""
        restarts = []
        for replica in self.replicas:
            began = time.monotonic()
            self.nginx.reload(self._nginx_http(out=replica))
            code = replica.stop()
            stopped = time.monotonic()
            replica.start()
            self.nginx.reload(self._nginx_http())
            time.sleep(0.5)  # the new nginx workers route to it again
            restarts.append(Restart(replica.name, code, stopped - began, time.monotonic() - stopped))
        return restarts

    def close(self) -> None:
        self.nginx.stop(timeout=10)
        for replica in self.replicas:
            if replica.proc is not None:
                stop(replica.proc)
