"""The TLS handshake of every new (or reopened) directory connection has the connector's
``timeout`` in all: a server that accepts TCP and never answers the handshake, or trickles it a
byte at a time (each read answered before any per-read timeout), costs that long, then the
request goes on (here: the only server, so 503 ``directory_unavailable``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from broker.connectors.config import LdapDirectoryConfig
from broker.connectors.ldap_pool import LdapPool
from broker.errors import DirectoryUnavailable
from tests.hung import HungServer

TIMEOUT = 0.5  # below a whole second: the read timeout (whole seconds) would give it 1 s


@pytest.fixture(params=[None, 0.2], ids=["silent", "trickling"])
def hung(request: pytest.FixtureRequest) -> Iterator[HungServer]:
    server = HungServer(drip=request.param)
    yield server
    server.close()


def _pool(url: str) -> LdapPool:
    return LdapPool(LdapDirectoryConfig.model_validate({
        "type": "ldap", "name": "corp", "servers": [url], "bind_dn": "cn=broker,dc=example,dc=org",
        "bind_password": "pw", "timeout": TIMEOUT, "connect_timeout": 5, "insecure_skip_verify": True,
        "recheck_interval": 60, "user_search": {"base": "dc=example,dc=org", "filter": "(objectClass=*)"},
        "groups": {"strategy": "member_of", "base": "dc=example,dc=org"},
    }))


def test_an_unanswered_handshake_costs_the_timeout_once(hung: HungServer) -> None:
    pool = _pool(f"ldaps://127.0.0.1:{hung.port}")
    try:
        began = time.monotonic()
        with pytest.raises(DirectoryUnavailable):
            pool.search("dc=example,dc=org", "(uid=alice)", attributes=["uid"])
        took = time.monotonic() - began
        assert hung.connections == 1
        assert TIMEOUT - 0.05 <= took < TIMEOUT + 0.35, took
        assert pool.breakers()[0].state == "open"  # the timeout marked it down: not asked again at once
        with pytest.raises(DirectoryUnavailable):
            pool.search("dc=example,dc=org", "(uid=alice)", attributes=["uid"])
        assert hung.connections == 1
    finally:
        pool.close()
