"""/metrics reports the directory's state without a bind per scrape: the dependencies' outcomes
are reused for 2 s (per process). Counted on a real slapd behind a relay: the readiness probe
opens a connection and binds as the service account, so each new connection is one bind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from broker.readiness import DEPENDENCY_SECONDS
from tests.directory.conftest import FakeClock
from tests.relay import Relay

pytestmark = pytest.mark.ldap


@pytest.fixture
def relay(slapd: Any) -> Iterator[Relay]:
    r = Relay(slapd.tls_port)
    yield r
    r.close()


def test_two_scrapes_within_two_seconds_bind_once_and_readyz_always_binds(app_factory, ldap_settings, relay):
    client = app_factory(directory=ldap_settings(servers=[f"ldaps://127.0.0.1:{relay.port}"]))
    clock = FakeClock()
    client.app.state.services.ready._recent.clock = clock
    before = relay.accepted
    first = client.get("/metrics")
    assert first.status_code == 200 and 'broker_dependency_up{dependency="directory"} 1.0' in first.text
    assert relay.accepted == before + 1  # the probe's bind
    clock.advance(DEPENDENCY_SECONDS - 0.1)
    second = client.get("/metrics")
    assert 'broker_dependency_up{dependency="directory"} 1.0' in second.text
    assert relay.accepted == before + 1  # reused: no bind
    clock.advance(0.2)
    client.get("/metrics")
    assert relay.accepted == before + 2  # older than 2 s: bound again

    assert client.get("/readyz").json()["dependencies"]["directory"] == "ok"
    assert relay.accepted == before + 3  # /readyz never reuses

    relay.cut()  # the directory goes away: /metrics within the window still says what it saw ...
    assert 'broker_dependency_up{dependency="directory"} 1.0' in client.get("/metrics").text
    clock.advance(DEPENDENCY_SECONDS)
    assert 'broker_dependency_up{dependency="directory"} 0.0' in client.get("/metrics").text  # ... then the outage
