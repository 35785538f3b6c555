"""`broker serve` restarted again and again, with one and with two workers, on SQLite and PostgreSQL:
the whole mapping (every object, its id, source and timestamps) is the same before and after.

The broker runs as an operator runs it: the console script in a subprocess, its own config file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from broker.minting.keys import generate_keypair
from tests.conftest import free_port

BROKER = str(Path(sys.executable).parent / "broker")
TOKEN = "restart-test-admin-token-0123456789"
CORE = "111122223333"

MAPPING: dict[str, Any] = {
    "accounts": [
        {"id": CORE, "alias": "core", "roles": [{"name": "Admin", "max_session_duration": 7200}, {"name": "ReadOnly"}]}
    ],
    "mappings": [{"group": "core-admins", "account": "core", "role": "Admin"}],
    "rules": [{"name": "adfs", "pattern": r"^AWS-(?P<account>\d{12})-(?P<role>[\w+=,.@-]+)$"}],
}


class Broker:
    """One deployment: a config file and a database; start() and stop() it like an operator."""

    def __init__(self, tmp: Path, database_url: str, workers: int) -> None:
        self.tmp, self.port = tmp, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        keys = tmp / "keys"
        generate_keypair(keys, name="signing", common_name="restart-test", days=30, force=False)
        self.config: dict[str, Any] = {
            "server": {"public_url": self.url, "port": self.port, "workers": workers,
                       "drain_seconds": 0},  # restarted often; the drain is tests/test_shutdown.py's
            "database": {"url": database_url, "auto_migrate": True},
            "logging": {"level": "info", "format": "json"},
            "keys": {"current": {"key": str(keys / "signing.key.pem"), "cert": str(keys / "signing.cert.pem")}},
            "sts": {"mode": "sandbox"},
            "mapping": MAPPING,
        }
        self.path = tmp / "broker.yaml"
        self.write()
        self.proc: subprocess.Popen[str] | None = None
        self.api = httpx.Client(base_url=f"{self.url}/api/v1/admin", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def write(self) -> None:
        self.path.write_text(yaml.safe_dump(self.config))

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = os.environ | {"BROKER_ADMIN_TOKEN": TOKEN}
        return subprocess.run([BROKER, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> None:
        env = os.environ | {"BROKER_ADMIN_TOKEN": TOKEN}
        log = (self.tmp / "broker.log").open("a")
        self.proc = subprocess.Popen([BROKER, "serve", "--config", str(self.path)], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        for _ in range(600):
            assert self.proc.poll() is None, f"broker exited: {(self.tmp / 'broker.log').read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the broker did not become ready")
        # every worker answers: with two workers, ask until both have served (each builds its own app)
        for _ in range(20):
            assert self.api.get("/accounts").status_code == 200

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def whole_mapping(self) -> dict[str, Any]:
        accounts = items(self.api.get("/accounts"))
        return {
            "accounts": accounts,
            "roles": [r for a in accounts for r in items(self.api.get(f"/accounts/{a['id']}/roles"))],
            "mappings": items(self.api.get("/mappings", params={"limit": 500})),
            "rules": items(self.api.get("/rules")),
        }


def items(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    body = r.json()
    return body["items"] if isinstance(body, dict) else body


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def broker(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Iterator[Broker]:
    b = Broker(tmp_path, database_url, request.param)
    yield b
    b.stop()
    b.api.close()


@pytest.fixture
def two_workers(tmp_path: Path, database_url: str) -> Iterator[Broker]:
    """The harder case (two syncs at once, a supervisor that respawns workers) for the file-edit tests."""
    b = Broker(tmp_path, database_url, 2)
    yield b
    b.stop()
    b.api.close()


def made_through_the_api(api: httpx.Client) -> None:
    def ok(r: httpx.Response) -> None:
        assert r.status_code in (200, 201), r.text

    ok(api.post("/accounts", json={"id": "444455556666", "alias": "team", "roles": [{"name": "Dev"}]}))
    ok(api.post("/accounts/core/roles", json={"name": "Billing"}))  # an API role under a config account
    ok(api.post("/mappings", json={"group": "finance", "account": "core", "role": "Billing"}))
    ok(api.post("/mappings", json={"group": "ops", "account": "core", "role": "ReadOnly"}))  # on a config role
    ok(api.post("/mappings", json={"group": "devs", "account": "team", "role": "Dev"}))
    ok(api.post("/rules", json={"name": "team-rule", "pattern": r"^team-(?P<account>\d{12})-(?P<role>\w+)$"}))
    imported = api.get("/export", params={"source": "api", "format": "json"}).json()
    imported["mappings"].append({"group": "imported", "account": "team", "role": "Dev"})
    ok(api.post("/import", params={"apply": "true", "allow_deletes": "true"}, json=imported))


def test_restarts_leave_the_whole_mapping_as_it_was(broker: Broker) -> None:
    broker.start()
    made_through_the_api(broker.api)
    before = broker.whole_mapping()
    history = items(broker.api.get("/history/versions"))
    assert history[-1]["actor"] == "config-file" and len(history) == 8  # the start's sync, then the 7 API writes
    assert {m["group"]: m["source"] for m in before["mappings"]} == {
        "core-admins": "config", "finance": "api", "ops": "api", "devs": "api", "imported": "api"
    }
    for _ in range(3):
        broker.stop()
        broker.start()
        assert broker.whole_mapping() == before
        assert items(broker.api.get("/history/versions")) == history  # a restart makes no version
    events = items(broker.api.get("/audit", params={"actor": "config-file", "limit": 200}))
    assert all(e["action"].endswith(".create") for e in events), [e["action"] for e in events]


def test_a_file_edit_dropping_a_role_api_mappings_use_keeps_it(two_workers: Broker) -> None:
    broker = two_workers
    broker.start()
    made_through_the_api(broker.api)
    [ops] = items(broker.api.get("/mappings", params={"group": "ops"}))
    broker.stop()
    broker.config["mapping"] = {**MAPPING, "accounts": [{**MAPPING["accounts"][0], "roles": [{"name": "Admin", "max_session_duration": 7200}]}]}
    broker.write()
    check = broker.run("check-config", str(broker.path))
    assert check.returncode == 0, check.stderr
    assert f"mapping {ops['id']}" in check.stderr and "warning:" in check.stderr and "ReadOnly" in check.stderr
    broker.start()
    role = broker.api.get(f"/accounts/{CORE}/roles/ReadOnly").json()
    assert role["source"] == "api"
    assert broker.api.get(f"/mappings/{ops['id']}").json() == ops
    [event] = items(broker.api.get("/audit", params={"action": "role.release"}))
    assert event["actor"] == "config-file" and f"mapping {ops['id']}" in event["details"]["held_by"][0]
    assert "now managed through the API" in (broker.tmp / "broker.log").read_text()


def test_a_start_that_cannot_sync_names_the_object_and_exits(two_workers: Broker) -> None:
    broker = two_workers
    broker.start()
    assert broker.api.post("/accounts", json={"id": "999988887777", "alias": "edge"}).status_code == 201
    broker.stop()
    broker.config["mapping"] = {**MAPPING, "accounts": [*MAPPING["accounts"], {"id": "555566667777", "alias": "edge"}]}
    broker.write()
    check = broker.run("check-config", str(broker.path))
    assert check.returncode == 2 and "alias 'edge' would name two accounts" in check.stderr, check.stderr
    started = broker.run("serve", "--config", str(broker.path), timeout=120)  # exits by itself: no respawning
    assert started.returncode != 0
    assert "alias 'edge' would name two accounts: account 555566667777 (configuration file) and account 999988887777 (API)" in (
        started.stderr + started.stdout
    )


def test_restarts_keep_review_snapshots_and_attestations(two_workers: Broker) -> None:
    """An access review's snapshot, its CSV (and so its hash) and its attestations survive restarts."""
    import hashlib

    broker = two_workers
    broker.config["directory"] = {"type": "static", "users": [
        {"username": "alice", "password_hash": "$2b$12$LYTJyrgmep47mVJhwtcAcO.ecIPdoQL7e0WhfAYEEqMhfUJ05YdhO",
         "groups": ["core-admins"]}]}
    broker.write()
    broker.start()
    made = broker.api.post("/reviews/snapshots", json={"title": "Q4"})
    assert made.status_code == 201, made.text
    number = made.json()["id"]
    assert broker.api.post(f"/reviews/snapshots/{number}/attestations", json={"decision": "approved"}).status_code == 201
    before = broker.api.get(f"/reviews/snapshots/{number}").json()
    csv = broker.api.get(f"/reviews/snapshots/{number}", params={"format": "csv"}).content
    assert hashlib.sha256(csv).hexdigest() == before["hash"] and before["rows"] == 1
    broker.stop()
    broker.start()
    assert broker.api.get(f"/reviews/snapshots/{number}").json() == before
    assert broker.api.get(f"/reviews/snapshots/{number}", params={"format": "csv"}).content == csv
    assert broker.api.get(f"/reviews/snapshots/{number}/changes").json()["changes"] == []
