"""/readyz for a load balancer: its status is this replica's own fitness (database reachable and
migrated, signing keys, state store); a dependency every replica shares (directory, STS) is reported
in the body and in /metrics, never a 503 of /readyz. A replica started with another configuration is
visible by its hashes; one that cannot reach Redis at start does not start."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from broker.minting.keys import generate_keypair
from tests.conftest import _postgres_database, free_port, make_config
from tests.relay import Relay

BROKER = str(Path(sys.executable).parent / "broker")


def test_the_body_names_own_checks_shared_dependencies_and_the_config_hash(app_factory):
    client = app_factory()
    r = client.get("/readyz")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ready"
    assert body["checks"] == {"state": "ok", "keys": "ok", "database": "ok"}
    assert body["dependencies"] == {"sts": "ok"}  # no directory configured
    assert body["config_hash"].startswith("sha256:") and len(body["config_hash"]) == 71
    metrics = client.get("/metrics").text
    assert 'broker_dependency_up{dependency="sts"} 1.0' in metrics
    assert (f'broker_config_info{{effective_config_hash="{body["effective_config_hash"]}",'
            f'mapping_hash="{body["config_hash"]}"}} 1.0') in metrics


def test_a_replica_with_another_mapping_shows_another_hash(tmp_path, app_factory):
    mapping = {"accounts": [{"id": "111122223333", "alias": "core", "roles": [{"name": "Admin"}]}]}
    one = app_factory(make_config(tmp_path / "a", mapping=mapping)).get("/readyz").json()
    same = app_factory(make_config(tmp_path / "a", mapping=mapping)).get("/readyz").json()
    edited = {"accounts": [{"id": "111122223333", "alias": "core", "roles": [{"name": "ReadOnly"}]}]}
    other = app_factory(make_config(tmp_path / "a", mapping=edited)).get("/readyz").json()
    assert one["config_hash"] == same["config_hash"] != other["config_hash"]
    assert one["effective_config_hash"] == same["effective_config_hash"] != other["effective_config_hash"]


def test_the_effective_config_hash_holds_no_secret(tmp_path):
    from broker.readiness import config_hash

    mapping: dict[str, Any] = {"accounts": [{"id": "111122223333", "alias": "core", "roles": [{"name": "Admin"}]}]}
    a = make_config(tmp_path, state={"backend": "redis", "redis_url": "redis://:first-secret@127.0.0.1:1/0"},
                    mapping=mapping)
    b = make_config(tmp_path, state={"backend": "redis", "redis_url": "redis://:other-secret@127.0.0.1:1/0"},
                    mapping=mapping)
    assert config_hash(a) == config_hash(b)  # secrets are masked before hashing


@pytest.fixture
def postgres_behind_relay() -> Iterator[tuple[str, Relay]]:
    for url in _postgres_database():
        real = make_url(url)
        relay = Relay(real.port or 5432, host=real.host or "127.0.0.1")
        try:
            yield real.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False), relay
        finally:
            relay.cut()


@pytest.mark.postgres
def test_a_database_that_is_down_takes_this_replica_out(tmp_path, app_factory, postgres_behind_relay):
    url, relay = postgres_behind_relay
    client = app_factory(make_config(tmp_path, database={"url": url, "auto_migrate": True}))
    assert client.get("/readyz").status_code == 200
    relay.cut()
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "not_ready"
    assert r.json()["checks"]["database"] != "ok" and r.json()["checks"]["keys"] == "ok"
    assert client.get("/healthz").status_code == 200


@pytest.mark.redis
def test_a_replica_with_redis_is_ready(tmp_path, app_factory):
    client = app_factory(state={"backend": "redis", "redis_url": os.environ["BROKER_TEST_REDIS_URL"]})
    assert client.get("/readyz").json()["checks"]["state"] == "ok"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_replica_that_cannot_reach_redis_at_start_refuses_to_start(tmp_path, workers):
    port = free_port()  # nothing listens there
    generate_keypair(tmp_path / "keys", name="signing", common_name="readiness-test", days=30, force=False)
    config = {
        "server": {"public_url": f"http://127.0.0.1:{port}", "port": free_port(), "workers": workers},
        "database": {"url": f"sqlite:///{tmp_path / 'broker.db'}", "auto_migrate": True},
        "state": {"backend": "redis", "redis_url": f"redis://:start-secret-pw@127.0.0.1:{port}/0"},
        "sts": {"mode": "sandbox"},
        "keys": {"current": {"key": str(tmp_path / "keys" / "signing.key.pem"),
                             "cert": str(tmp_path / "keys" / "signing.cert.pem")}},
    }
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([BROKER, "serve", "--config", str(path)], capture_output=True, text=True, timeout=60,
                          check=False, env=os.environ | {"BROKER_ADMIN_TOKEN": "readiness-test-token-0123456789"})
    assert done.returncode == 1, done.stderr[-2000:]
    assert "cannot start:" in done.stderr and "Redis" in done.stderr and "state.redis_url" in done.stderr
    assert "start-secret-pw" not in done.stderr + done.stdout
