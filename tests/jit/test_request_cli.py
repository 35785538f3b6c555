"""`awsbroker request` against a running broker: bob asks for an eligible role with --wait,
alice approves it while the CLI polls, then bob's credentials last no longer than the grant."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Laptop, approve_in_portal
from tests.jit.conftest import jit_sections
from tests.portal.conftest import ALICE_PW, BOB_PW, Live, clock, live  # noqa: F401  (fixtures)

pytestmark = pytest.mark.sts


@pytest.fixture
def bob(tmp_path: Path, live: Callable[..., Live]) -> Laptop:  # noqa: F811
    data = jit_sections()
    server = live(mapping={"mappings": data["mapping"]["mappings"]}, jit=data["jit"], api=data["api"])
    home = tmp_path / "home"
    home.mkdir()
    laptop = Laptop(home, server.url, server=server)
    proc, err, _ = laptop.device_login(lambda code: approve_in_portal(server.url, code, "bob", BOB_PW))
    assert proc.returncode == 0, err
    return laptop


def test_request_waits_for_the_approval_then_credentials_end_with_the_grant(bob: Laptop):
    refused = bob.run("credentials", "-a", "sandbox-prod", "-r", "ReadOnly")
    assert refused.returncode == 4 and "grant_required" in refused.stderr
    listed = bob.run("roles")
    assert "eligible" in listed.stdout

    waiting = bob.start("request", "-a", "sandbox-prod", "-r", "ReadOnly", "--reason", "INC-7 disk full",
                        "--duration", "30m", "--wait", "--interval", "1", "--timeout", "60", "--json")
    with httpx.Client(base_url=bob.url, auth=("alice", ALICE_PW), timeout=10) as alice:
        pending: list[dict] = []
        deadline = time.monotonic() + 30
        while not pending and time.monotonic() < deadline:
            pending = alice.get("/api/v1/requests").json()["to_decide"]
            time.sleep(0.2)
        assert pending and pending[0]["reason"] == "INC-7 disk full"
        assert alice.post(f"/api/v1/requests/{pending[0]['id']}/approve").status_code == 200
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert json.loads(out)["state"] == "approved" and "Approved" in err

    creds = bob.run("credentials", "-a", "sandbox-prod", "-r", "ReadOnly")
    assert creds.returncode == 0, creds.stderr
    expiry = datetime.fromisoformat(json.loads(creds.stdout)["Expiration"])
    assert (expiry - datetime.now(UTC)).total_seconds() <= 1800 + 5


def test_request_wait_ends_when_denied_and_refusals_exit_non_zero(bob: Laptop):
    too_long = bob.run("request", "-a", "sandbox-prod", "-r", "ReadOnly", "--reason", "x", "--duration", "5h")
    assert too_long.returncode == 2 and "duration_above_policy" in too_long.stderr
    not_mine = bob.run("request", "-a", "sandbox-dev", "-r", "Admin", "--reason", "x")
    assert not_mine.returncode == 4 and "not_eligible" in not_mine.stderr
    waiting = bob.start("request", "-a", "sandbox-prod", "-r", "ReadOnly", "--reason", "look", "--wait",
                        "--interval", "1", "--timeout", "60")
    with httpx.Client(base_url=bob.url, auth=("alice", ALICE_PW), timeout=10) as alice:
        pending: list[dict] = []
        deadline = time.monotonic() + 30
        while not pending and time.monotonic() < deadline:
            pending = alice.get("/api/v1/requests").json()["to_decide"]
            time.sleep(0.2)
        assert alice.post(f"/api/v1/requests/{pending[0]['id']}/deny").status_code == 200
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 4 and "denied by alice" in err
    still = bob.run("request", "-a", "sandbox-prod", "-r", "ReadOnly", "--reason", "again", "--wait", "--interval", "1",
                    "--timeout", "2")
    assert still.returncode == 1 and "Still pending" in still.stderr
