"""Graceful shutdown (broker.serving), with `broker serve` run as an operator runs it: a subprocess
sent SIGTERM, as Kubernetes sends it to a pod's first process.

What a person notices: at SIGTERM /readyz turns 503 ``draining`` while every other request is
still answered; after ``server.drain_seconds`` the port refuses connections; a request already
in flight (a sign-in waiting for a frozen directory server: SIGSTOP, its kernel still accepts)
still gets its answer; the broker exits 0 well within drain + grace, and every worker says it
closed what it opened. Rolling restarts behind nginx are in tests/proxy/test_rolling_restart.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from broker.minting.keys import generate_keypair
from tests.conftest import ADMIN_TOKEN, free_port
from tests.directory.conftest import _need
from tests.directory.servers import SERVICE_DN, SUFFIX, Slapd, make_pki, population_seed

pytestmark = pytest.mark.ldap

PASSWORD = "shutdown-test-pw-1"
DRAIN, GRACE, DIRECTORY_TIMEOUT = 3.0, 15, 8


def log_lines(path: Path, event: str) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            record = json.loads(line)
            if record.get("event") == event:
                lines.append(record)
    return lines


def wait_for(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"waited {timeout} s for {what}")


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


@pytest.fixture
def frozen_directory(tmp_path: Path) -> Any:
    for name in ("slapd", "ldapadd"):
        _need(name, "Debian slapd + ldap-utils")
    pki = make_pki(tmp_path / "pki", names=("localhost",))
    server = Slapd(tmp_path / "slapd", pki)
    server.start()
    try:
        population_seed(server, users=1, groups=1, groups_per_user=1, password=PASSWORD, everyone=("staff",))
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


def serve(tmp_path: Path, slapd: Slapd, *, workers: int, drain: float, grace: int) -> tuple[subprocess.Popen[Any], int, Path]:
    """`broker serve` on slapd with a sign-in on the user API (HTTP Basic): (process, port, log)."""
    port = free_port()
    key, cert, _ = generate_keypair(tmp_path / "keys")
    config = {
        "server": {"public_url": f"http://127.0.0.1:{port}", "port": port, "workers": workers,
                   "drain_seconds": drain, "shutdown_grace_seconds": grace},
        "database": {"url": f"sqlite:///{tmp_path / 'broker.db'}", "auto_migrate": True},
        "logging": {"level": "info", "format": "json"},
        "keys": {"current": {"key": str(key), "cert": str(cert)}},
        "api": {"password_login": True},
        "directory": {
            "type": "ldap", "name": "corp", "servers": [slapd.ldaps_url], "ca_file": str(slapd.pki.ca),
            "bind_dn": SERVICE_DN, "bind_password": slapd.service_password,
            "connect_timeout": 2, "timeout": DIRECTORY_TIMEOUT,
            "user_search": {"base": f"ou=people,{SUFFIX}", "filter": "(objectClass=inetOrgPerson)"},
            "groups": {"strategy": "member_of", "base": f"ou=groups,{SUFFIX}"},
            "cache": {"ttl_seconds": 0},
        },
    }
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "broker.log"
    broker = subprocess.Popen([sys.executable, "-m", "broker", "serve", "--config", str(path)],
                              env=os.environ | {"BROKER_ADMIN_TOKEN": ADMIN_TOKEN}, stdout=log.open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)

    def ready() -> bool:
        assert broker.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for("the broker to be ready", ready, timeout=120)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for _ in range(4 * workers):  # every worker has answered a sign-in (and holds LDAP connections)
            me = client.get("/api/v1/whoami", auth=("bench0000", PASSWORD))
            assert me.status_code == 200, me.text
    return broker, port, log


def sign_in_in_flight(port: int, slow: dict[str, Any]) -> threading.Thread:
    """A sign-in started now, in a thread: what it got lands in ``slow``."""

    def sign_in() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            try:
                response = client.get("/api/v1/whoami", auth=("bench0000", PASSWORD))
                slow.update(status=response.status_code, type=response.headers.get("content-type"), text=response.text)
            except httpx.HTTPError as exc:
                slow.update(error=type(exc).__name__)

    thread = threading.Thread(target=sign_in)
    thread.start()
    return thread


@pytest.mark.parametrize("workers", [1, 2], ids=["1-worker", "2-workers"])
def test_sigterm_drains_then_stops_accepting_and_finishes_what_is_in_flight(tmp_path, frozen_directory, workers):
    slapd: Slapd = frozen_directory
    broker, port, log = serve(tmp_path, slapd, workers=workers, drain=DRAIN, grace=GRACE)
    url = f"http://127.0.0.1:{port}"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        os.kill(slapd.proc.pid, signal.SIGSTOP)  # the directory freezes: a sign-in now waits `timeout` s
        slow: dict[str, Any] = {}
        in_flight = sign_in_in_flight(port, slow)
        time.sleep(0.5)  # it has reached the directory
        started = time.monotonic()
        broker.send_signal(signal.SIGTERM)  # to the first process only, as Kubernetes does

        wait_for("every worker to start draining", lambda: len(log_lines(log, "shutdown_started")) == workers, 10)
        answers = []
        with httpx.Client(base_url=url, timeout=10) as client:
            while time.monotonic() - started < DRAIN - 0.5:  # during the drain
                readyz = client.get("/readyz")
                assert (readyz.status_code, readyz.json()["status"]) == (503, "draining")
                accounts = client.get("/api/v1/admin/accounts", headers=admin)
                assert accounts.status_code == 200, accounts.text
                assert accounts.headers["connection"] == "close"  # a keep-alive client moves on
                answers.append(accounts.status_code)
                time.sleep(0.1)
        assert answers  # at least one such round trip during the drain, however loaded the machine
        wait_for("the port to refuse connections after the drain", lambda: refuses(port), timeout=DRAIN + 5)
        stopped_accepting = time.monotonic() - started
        assert in_flight.is_alive(), "the slow sign-in was still in flight when the port closed"

        in_flight.join(timeout=DIRECTORY_TIMEOUT + GRACE)
        assert slow["status"] == 503 and json.loads(slow["text"])["error"]["code"] == "directory_unavailable", slow
        assert broker.wait(timeout=DRAIN + GRACE + 5) == 0
        assert stopped_accepting >= DRAIN - 0.5  # it kept accepting through the drain
    finally:
        if broker.poll() is None:
            os.killpg(broker.pid, signal.SIGKILL)
            broker.wait()
    closed = log_lines(log, "closed")
    assert len({c["pid"] for c in closed}) == workers == len(closed), closed
    for line in closed:
        assert {"directory", "database", "aws"} <= set(line["closed"]), line
    assert len(log_lines(log, "shutdown_draining_done")) == workers


def test_a_request_still_running_after_the_grace_period_is_cut(tmp_path, frozen_directory):
    """A sign-in that would wait longer than drain + grace for the frozen directory is cut at the grace
    period: 503 shutting_down (not uvicorn's plain 500); the worker still closes what it opened, exits 0."""
    slapd: Slapd = frozen_directory
    broker, port, log = serve(tmp_path, slapd, workers=1, drain=0.5, grace=1)
    try:
        os.kill(slapd.proc.pid, signal.SIGSTOP)
        slow: dict[str, Any] = {}
        in_flight = sign_in_in_flight(port, slow)
        time.sleep(0.5)
        broker.send_signal(signal.SIGTERM)
        in_flight.join(timeout=DIRECTORY_TIMEOUT + 10)
        assert slow["status"] == 503, slow  # cut at the grace period, with the broker's own answer
        assert json.loads(slow["text"])["error"]["code"] == "shutting_down"
        assert broker.wait(timeout=0.5 + 1 + 10) == 0  # not held by the thread still blocked on the directory
    finally:
        if broker.poll() is None:
            os.killpg(broker.pid, signal.SIGKILL)
            broker.wait()
    text = log.read_text()
    assert "timeout graceful shutdown exceeded" in text and "Exception in ASGI application" not in text
    [closed] = log_lines(log, "closed")
    assert "directory" in closed["closed"]
