"""Redis in production: every URL form fails as ``StateUnavailable`` when nothing answers, TLS
with a test CA (a wrong CA is refused), and a Sentinel failover under load: errors during the
failover are ``StateUnavailable`` only, nothing hangs, and calls succeed again afterwards."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from broker.config import StateConfig
from broker.errors import ConfigError, StateUnavailable
from broker.state import open_state
from broker.state.redis import RedisState
from tests.conftest import require_program
from tests.directory.servers import free_port


def _config(url: str, **over: object) -> StateConfig:
    return StateConfig.model_validate({"backend": "redis", "redis_url": url, **over})


@pytest.mark.parametrize("form", ["redis://127.0.0.1:{p}/0", "rediss://127.0.0.1:{p}/0", "unix://{tmp}/none.sock",
                                  "redis+sentinel://127.0.0.1:{p},127.0.0.1:{q}/mymaster/0",
                                  "redis+cluster://127.0.0.1:{p},127.0.0.1:{q}"])
def test_every_url_form_answers_state_unavailable_when_nothing_listens(form, tmp_path):
    url = form.format(p=free_port(), q=free_port(), tmp=tmp_path)
    state = open_state(_config(url, timeout_seconds=0.5, retries=1))
    started = time.monotonic()
    with pytest.raises(StateUnavailable) as err:
        state.ping()
    assert err.value.code == "state_unavailable" and err.value.status == 503
    with pytest.raises(StateUnavailable):
        state.set("k", "v", ttl=10)
    assert time.monotonic() - started < 20  # a liveness guard: bounded, not hung


@pytest.mark.parametrize("url", ["redis+sentinel://127.0.0.1:1", "redis+sentinel://127.0.0.1:1/m/x",
                                 "redis+sentinel://:secret-pw@127.0.0.1:nope/m", "redis+cluster://127.0.0.1:1/3"])
def test_a_malformed_url_is_a_config_error_without_its_password(url):
    with pytest.raises(ConfigError) as err:
        open_state(_config(url))
    assert "state.redis_url" in str(err.value) and "secret-pw" not in str(err.value)


def test_an_unknown_scheme_is_refused_by_the_config():
    with pytest.raises(ValueError, match="redis_url must start with"):
        _config("http://127.0.0.1:6379")


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def redis_tls(tmp_path_factory):
    require_program("redis-server")
    from tests.state.servers import RedisTls

    server = RedisTls(tmp_path_factory.mktemp("redis-tls")).start()
    yield server
    server.stop()


def test_tls_with_the_right_ca_works(redis_tls):
    state = open_state(_config(redis_tls.url, tls={"ca_file": str(redis_tls.pki.ca)}))
    state.ping()
    state.set("tls:k", "v", ttl=10)
    assert state.get("tls:k") == "v" and state.increment("tls:n", ttl=10) == 1


@pytest.mark.parametrize("tls", ["other", "system"])
def test_tls_with_a_ca_that_did_not_sign_the_server_is_refused(redis_tls, tls):
    ca = {"ca_file": str(redis_tls.pki.other_ca)} if tls == "other" else None
    state = open_state(_config(redis_tls.url, tls=ca, retries=0))
    with pytest.raises(StateUnavailable):
        state.ping()


def test_plain_redis_to_a_tls_port_is_refused(redis_tls):
    state = open_state(_config(f"redis://127.0.0.1:{redis_tls.port}/0", timeout_seconds=0.5, retries=0))
    with pytest.raises(StateUnavailable):
        state.ping()


def test_tls_with_a_client_certificate_when_the_server_requires_one(tmp_path):
    require_program("redis-server")
    from tests.forwarding.receivers import make_client_pki
    from tests.state.servers import RedisTls

    clients = make_client_pki(tmp_path / "clients")
    server = RedisTls(tmp_path / "mtls", clients=clients).start()
    try:
        tls = {"ca_file": str(server.pki.ca), "cert_file": str(clients.cert), "key_file": str(clients.key)}
        state = open_state(_config(server.url, tls=tls))
        state.set("mtls:k", "v", ttl=10)
        assert state.get("mtls:k") == "v"
        without = open_state(_config(server.url, tls={"ca_file": str(server.pki.ca)}, retries=0))
        with pytest.raises(StateUnavailable):
            without.ping()  # no client certificate: the server hangs up
    finally:
        server.stop()


# ---------------------------------------------------------------- Sentinel failover


@pytest.fixture
def own_sentinel_set(tmp_path: Path):
    require_program("redis-server")
    from tests.state.servers import RedisSentinelSet

    servers = RedisSentinelSet(tmp_path).start()
    yield servers
    servers.stop()


def test_a_sentinel_failover_under_load(own_sentinel_set):
    """Four threads set, get and increment while the master is SIGKILLed: every error is
    StateUnavailable, no call hangs, and after the failover every thread succeeds again."""
    servers = own_sentinel_set
    state = RedisState.from_config(servers.url, _config(servers.url, timeout_seconds=0.5, retries=1), prefix="fo:")
    state.set("before", "kept", ttl=300)
    servers.current_master().client().execute_command("WAIT", 1, 2000)  # replicated before the crash
    stop = threading.Event()
    unavailable: list[float] = []
    unexpected: list[BaseException] = []
    last_ok: dict[int, float] = {}

    def work(i: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                state.set(f"k{i}", str(n), ttl=60)
                assert state.get(f"k{i}") == str(n)
                state.increment(f"c{i}", ttl=60)
                last_ok[i] = time.monotonic()
            except StateUnavailable:
                unavailable.append(time.monotonic())
            except BaseException as exc:  # noqa: BLE001 - anything else is the failure under test
                unexpected.append(exc)
                return

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(last_ok) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    old = servers.master_port()
    servers.current_master().kill()
    killed = time.monotonic()
    new = servers.wait_for_new_master(old)
    promoted = time.monotonic()
    deadline = promoted + 30  # liveness guard: calls work again soon after the promotion
    while time.monotonic() < deadline and not all(last_ok.get(i, 0) > promoted for i in range(4)):
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "a call hung"
    assert unexpected == []
    assert all(last_ok[i] > promoted for i in range(4)), "not every thread recovered after the failover"
    assert unavailable and min(unavailable) >= killed  # errors came with the crash, and only as 503s
    assert new != old and state.get("before") == "kept"


def test_a_broker_on_sentinel_keeps_portal_sessions_across_a_failover(own_sentinel_set, app_factory):
    """The replica had the session (replication is asynchronous: WAIT makes sure here; a session
    written in the last instant before a crash can be lost)."""
    from tests.portal.conftest import sections, sign_in

    servers = own_sentinel_set
    client = app_factory(**sections(), state={"backend": "redis", "redis_url": servers.url, "timeout_seconds": 0.5})
    client.follow_redirects = False
    assert sign_in(client).status_code == 303
    assert client.get("/").status_code == 200
    servers.current_master().client().execute_command("WAIT", 1, 2000)
    old = servers.master_port()
    servers.current_master().kill()
    servers.wait_for_new_master(old)
    deadline = time.monotonic() + 30
    while (r := client.get("/")).status_code == 503 and time.monotonic() < deadline:
        assert "unavailable" in r.text.lower()  # the 503 page or body, never a 500
        time.sleep(0.1)
    assert r.status_code == 200 and "alice" in r.text.lower()  # still signed in, on the promoted replica
