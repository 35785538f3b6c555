"""Directory faults with two real slapd servers: one frozen (SIGSTOP: its kernel still accepts
connections, nothing is ever answered), thawed, killed; every server down.

What a person notices: no failed sign-in while one of two servers is frozen or killed; a frozen
server costs one wait for its timeout, then it is skipped; a returning server is used again
within seconds; with every server down, 503 ``directory_unavailable``, and it recovers by itself.
Times are in bench/faults.py, not here.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from broker.domain import Identity
from broker.errors import BrokerError, DirectoryUnavailable
from tests.directory.conftest import _need
from tests.directory.servers import SERVICE_DN, SUFFIX, Pki, Slapd, population_seed
from tests.directory.test_directory_app import basic
from tests.relay import Relay

pytestmark = pytest.mark.ldap
PASSWORD = "twin-servers-pw-1"
USERS = [f"bench{i:04d}" for i in range(4)]


@pytest.fixture
def twins(tmp_path, ldap_pki: Pki) -> Iterator[tuple[Slapd, Slapd]]:
    """Two slapd servers holding the same people, the same service account and password."""
    for name in ("slapd", "ldapadd"):
        _need(name, "Debian slapd + ldap-utils")
    first = Slapd(tmp_path / "a", ldap_pki)
    second = Slapd(tmp_path / "b", ldap_pki, service_password=first.service_password)
    try:
        for server in (first, second):
            server.start()
            population_seed(server, users=len(USERS), groups=2, groups_per_user=1, password=PASSWORD,
                            everyone=("developers",))
        yield first, second
    finally:
        for server in (first, second):
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)
            server.stop()


def _directory(servers: list[str], service_password: str, ca: str, **over: Any) -> dict[str, Any]:
    return {
        "type": "ldap",
        "name": "twins",
        "servers": servers,
        "ca_file": ca,
        "bind_dn": SERVICE_DN,
        "bind_password": service_password,
        "connect_timeout": 1,
        "timeout": 1,
        "recheck_interval": 0.2,
        "user_search": {"base": f"ou=people,{SUFFIX}", "filter": "(objectClass=inetOrgPerson)"},
        "groups": {"strategy": "member_of", "base": f"ou=groups,{SUFFIX}"},
        "cache": {"ttl_seconds": 0},
        **over,
    }


@pytest.fixture
def proxies() -> Iterator[Callable[[int], Relay]]:
    made: list[Relay] = []

    def make(port: int) -> Relay:
        made.append(Relay(port))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


@contextmanager
def frozen(server: Slapd) -> Iterator[None]:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


def _sign_ins(connector: Any, count: int, *, threads: int = 1) -> list[Any]:
    """``count`` sign-ins (spread over ``threads``): each an Identity, or the error it ended with."""
    results: list[Any] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(n):
            try:
                result: Any = connector.login(USERS[i % len(USERS)], PASSWORD)
            except BrokerError as exc:
                result = exc
            with lock:
                results.append(result)

    workers = [threading.Thread(target=work, args=(count // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def _failures(results: list[Any]) -> list[Any]:
    return [r for r in results if not isinstance(r, Identity)]


def _eventually(action: Callable[[], bool], seconds: float = 15.0) -> bool:
    """Poll ``action`` until it is true (a bounded loop; no timing asserted)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if action():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("scheme", ["ldaps", "starttls", "ldap"])
def test_a_frozen_server_is_asked_once_then_skipped_and_no_sign_in_fails(
    connectors, twins, ldap_pki, proxies, scheme
):
    """SECURITY.md, Faults: one of two servers frozen → 0 failed sign-ins; it costs its timeout once."""
    first, second = twins
    relay = proxies(first.tls_port if scheme == "ldaps" else first.port)
    url = "ldaps" if scheme == "ldaps" else "ldap"
    servers = [f"{url}://127.0.0.1:{relay.port}", second.ldaps_url if scheme == "ldaps" else second.url]
    # plain LDAP: opening a connection sends nothing, so the first request meets the freeze
    extra = {"start_tls": False, "insecure_no_tls": True} if scheme == "ldap" else {}
    # no background check during the test: every request counted comes from a sign-in
    c = connectors(_directory(servers, first.service_password, str(ldap_pki.ca), recheck_interval=60, **extra))
    assert not _failures(_sign_ins(c, 8, threads=4))  # both pools hold connections to the first server
    relay.freeze()
    before = c.stats.snapshot()["timeouts"]
    assert _failures(_sign_ins(c, 20)) == []
    assert len(relay.asked) == 1  # one wait for the timeout, then the server is skipped
    assert c.stats.snapshot()["timeouts"] - before == 1
    assert _failures(_sign_ins(c, 20, threads=4)) == []
    assert len(relay.asked) == 1


def test_a_returning_server_is_used_again_within_seconds(connectors, twins, ldap_pki):
    first, second = twins
    c = connectors(_directory([first.ldaps_url, second.ldaps_url], first.service_password, str(ldap_pki.ca)))
    assert not _failures(_sign_ins(c, 8, threads=4))
    with frozen(first):  # a real slapd, stopped by SIGSTOP
        assert _failures(_sign_ins(c, 20, threads=4)) == []  # on the second server now
    second.stop()  # the first is back (thawed), the second gone
    assert _eventually(lambda: not _failures(_sign_ins(c, 1)))
    assert _failures(_sign_ins(c, 20, threads=4)) == []


def test_a_killed_server_costs_no_sign_in(connectors, twins, ldap_pki):
    first, second = twins
    c = connectors(_directory([first.ldaps_url, second.ldaps_url], first.service_password, str(ldap_pki.ca)))
    assert not _failures(_sign_ins(c, 8, threads=4))
    first.stop()
    assert _failures(_sign_ins(c, 20, threads=4)) == []
    # refused connections open its breaker after directory.breaker_failures (3) in a row
    assert [b.state for b in c.breakers()] == ["open", "closed"]


def test_a_server_that_refuses_fewer_times_than_breaker_failures_stays_in_use(connectors, twins, ldap_pki):
    first, second = twins
    c = connectors(_directory([first.ldaps_url, second.ldaps_url], first.service_password, str(ldap_pki.ca),
                              breaker_failures=50))
    assert not _failures(_sign_ins(c, 4))
    first.stop()
    assert _failures(_sign_ins(c, 10)) == []  # each sign-in tried the first (refused at once), then the second
    assert [b.state for b in c.breakers()] == ["closed", "closed"]
    assert c.breakers()[0].failures >= 1


def test_every_server_frozen_is_a_503_once_per_timeout_then_recovers_by_itself(app_factory, twins, ldap_pki):
    first, second = twins
    directory = _directory([first.ldaps_url, second.ldaps_url], first.service_password, str(ldap_pki.ca))
    client = app_factory(directory=directory, admin={"directory_groups": ["developers"]})
    stats = client.app.state.services.directory.stats
    person = basic(USERS[0], PASSWORD)
    assert client.get("/api/v1/admin/accounts", headers=person).status_code == 200
    with frozen(first), frozen(second):
        r = client.get("/api/v1/admin/accounts", headers=person)
        assert r.status_code == 503 and r.json()["error"]["code"] == "directory_unavailable"
        waited = stats.snapshot()["timeouts"]
        assert waited >= 1
        for _ in range(5):  # both marked down: refused at once, no further waits
            r = client.get("/api/v1/admin/accounts", headers=person)
            assert r.status_code == 503 and r.json()["error"]["code"] == "directory_unavailable"
        assert stats.snapshot()["timeouts"] == waited
        # a directory outage is every replica's: /readyz stays 200 (the load balancer keeps the
        # replica, which answers its clear 503) and reports it, without waiting for frozen servers
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
        assert ready.json()["dependencies"]["directory"].startswith("down: ")
        states = {b["target"]: b["state"] for b in ready.json()["breakers"] if b["kind"] == "directory"}
        assert states.keys() == {first.ldaps_url, second.ldaps_url}
        assert set(states.values()) <= {"open", "half_open"}  # half_open: its background check is running
        metrics = client.get("/metrics").text
        assert 'broker_dependency_up{dependency="directory"} 0.0' in metrics
        assert f'broker_breaker_open{{kind="directory",target="{first.ldaps_url}"}} 1.0' in metrics
        assert stats.snapshot()["timeouts"] == waited
    assert _eventually(lambda: client.get("/api/v1/admin/accounts", headers=person).status_code == 200)
    assert _eventually(lambda: client.get("/readyz").json()["dependencies"]["directory"] == "ok")
    assert 'broker_dependency_up{dependency="directory"} 1.0' in client.get("/metrics").text


def test_the_recheck_interval_is_validated(ldap_pki):
    from broker.connectors.config import LdapDirectoryConfig

    settings = _directory(["ldaps://127.0.0.1:1"], "x", str(ldap_pki.ca), recheck_interval=0)
    with pytest.raises(ValueError, match="recheck_interval"):
        LdapDirectoryConfig.model_validate(settings)


def test_a_wrong_password_is_an_answer_not_a_failed_server(connectors, twins, ldap_pki):
    first, second = twins
    c = connectors(_directory([first.ldaps_url, second.ldaps_url], first.service_password, str(ldap_pki.ca)))
    for _ in range(3):
        assert not isinstance(c.login(USERS[0], "wrong-password"), Identity)
    second.stop()
    assert isinstance(c.login(USERS[0], PASSWORD), Identity)  # the first server was never skipped
    first.stop()
    with pytest.raises(DirectoryUnavailable):
        c.login(USERS[0], PASSWORD)
