"""STS that hangs, then answers again, behind the broker: the circuit breaker per STS endpoint.

A relay in front of moto's STS (tests.relay): frozen, it accepts connections and answers nothing.
What a person notices: the first request waits for the timeout and gets 503 ``sts_unavailable``;
the next ones get the same 503 at once, without the broker asking the frozen endpoint; /readyz stays
200 and says STS is down; once the endpoint answers again, credentials are issued again by
themselves. Times are in bench/faults.py, not here.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from tests.conftest import make_config
from tests.portal.conftest import ALICE_PW, sections
from tests.relay import Relay

pytestmark = pytest.mark.sts
ALICE = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_PW}".encode()).decode()}
WANT = {"account": "sandbox-dev", "role": "Developer"}


@pytest.fixture
def relay(moto_sts: str) -> Iterator[Relay]:
    port = urlsplit(moto_sts).port
    assert port is not None
    r = Relay(port)
    yield r
    r.cut()


def _eventually(action: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if action():
            return True
        time.sleep(0.1)
    return False


def test_a_hung_sts_costs_one_timeout_then_fast_503s_and_recovers_by_itself(tmp_path, app_factory, relay: Relay):
    data = sections() | {
        "api": {"password_login": True},
        "sts": {"mode": "sandbox", "endpoint_url": relay.url, "connect_timeout": 0.5, "read_timeout": 0.5,
                "max_attempts": 1, "breaker_open_seconds": 2},
    }
    client = app_factory(make_config(tmp_path, **data))
    assert client.post("/api/v1/credentials", json=WANT, headers=ALICE).status_code == 200
    assert client.get("/readyz").json()["dependencies"]["sts"] == "ok"

    relay.hang()
    started = time.monotonic()
    first = client.post("/api/v1/credentials", json=WANT, headers=ALICE)
    assert first.status_code == 503 and first.json()["error"]["code"] == "sts_unavailable"
    assert time.monotonic() - started < 30  # liveness guard: bounded by the timeout, not hanging
    asked = relay.held
    assert asked >= 1
    second = client.post("/api/v1/credentials", json=WANT, headers=ALICE)
    assert second.status_code == 503 and second.json()["error"]["code"] == "sts_unavailable"
    assert "not answering" in second.json()["error"]["message"]  # refused by the breaker ...
    assert relay.held == asked  # ... without asking the frozen endpoint again

    ready = client.get("/readyz")
    assert ready.status_code == 200  # a shared dependency never takes the replica out
    assert ready.json()["dependencies"]["sts"].startswith("down: ")
    assert [b["state"] for b in ready.json()["breakers"] if b["kind"] == "sts"] == ["open"]
    metrics = client.get("/metrics").text
    assert 'broker_dependency_up{dependency="sts"} 0.0' in metrics
    assert 'broker_breaker_open{kind="sts",target="aws/eu-west-1 ' + relay.url + '"} 1.0' in metrics

    relay.forward()
    assert _eventually(lambda: client.post("/api/v1/credentials", json=WANT, headers=ALICE).status_code == 200)
    assert client.post("/api/v1/credentials", json=WANT, headers=ALICE).status_code == 200
    assert client.get("/readyz").json()["dependencies"]["sts"] == "ok"
    assert 'broker_dependency_up{dependency="sts"} 1.0' in client.get("/metrics").text


def test_refused_connections_open_the_breaker_after_the_configured_failures(tmp_path, app_factory, relay: Relay):
    data = sections() | {
        "api": {"password_login": True},
        "sts": {"mode": "sandbox", "endpoint_url": relay.url, "connect_timeout": 0.5, "read_timeout": 0.5,
                "max_attempts": 1, "breaker_failures": 2, "breaker_open_seconds": 60},
    }
    client = app_factory(make_config(tmp_path, **data))
    relay.cut()  # the endpoint refuses connections
    messages = []
    for _ in range(3):
        r = client.post("/api/v1/credentials", json=WANT, headers=ALICE)
        assert r.status_code == 503 and r.json()["error"]["code"] == "sts_unavailable"
        messages.append(r.json()["error"]["message"])
    assert ["not answering" in m for m in messages] == [False, False, True]
    assert client.get("/healthz").status_code == 200
