"""Replicas going away under load, and a config change rolled out replica by replica.

- SIGKILL: a replica dies mid-request. Only requests in flight to it at that instant may fail
  (nginx answers them 502: a POST already sent is not retried elsewhere); every request that
  starts afterwards is served by the others (a refused connection is retried on the next
  replica, ``proxy_next_upstream error``), and the replica serves again once restarted.
- SIGTERM, replica by replica (a rolling restart, ``Cluster.roll``: the replica leaves nginx's
  upstream as it gets SIGTERM, as Kubernetes takes a pod out of its endpoints): what a client
  notices. The drain (``server.drain_seconds``, longer than nginx's upstream keep-alive timeout)
  serves what was already on its way to the replica; the restart loses no request (see the
  README's "Rolling restarts and replica failures").
- A mapping change in the config file rolled out by restarting the replicas one at a time: the
  first restarted replica syncs the shared database and every replica answers from it at once, so
  two replicas never disagree about what a person gets for longer than one request's read.
"""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest

from tests.cluster.harness import PASSWORD, TEAM_ACCOUNT, Cluster, mapping_document
from tests.cluster.load import Load

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.ldap, pytest.mark.sts, pytest.mark.proxy]

# The drain outlasts nginx's upstream keepalive_timeout (4 s, tests/cluster/harness.py): by its end
# nginx has closed every idle connection it held to the stopping replica itself, and each one used
# during the drain was answered "Connection: close" -- none is left for the replica to close under
# a request nginx is sending (which nginx would answer 502: a POST already sent is not retried).
DRAIN = {"drain_seconds": 5, "shutdown_grace_seconds": 20}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    from tests.cluster.conftest import require_cluster_components

    postgres = require_cluster_components()
    with Cluster(tmp_path_factory.mktemp("cluster"), postgres=postgres, server=DRAIN) as running:
        yield running


def test_a_replica_killed_mid_load_loses_only_its_in_flight_requests(cluster: Cluster):
    victim = cluster.replicas[1]
    with Load(cluster, threads=6) as load:
        time.sleep(3)
        victim.kill()  # returns once the process is gone
        killed_at = time.monotonic()
        time.sleep(4)
    failures = load.failures()
    print(f"\nSIGKILL: {len(load.outcomes)} requests, failures {[(f.status, f.code) for f in failures]}")
    # only requests already in flight when the process died fail (at most one per client thread), with 502
    assert all(f.started <= killed_at for f in failures), failures
    assert len(failures) <= load.threads
    assert {f.status for f in failures} <= {502}
    assert load.ok_after(killed_at + 0.5) > 0  # the other two replicas kept serving
    victim.start()
    with httpx.Client(base_url=victim.url, auth=(cluster.uids[0], PASSWORD), timeout=30) as direct:
        assert direct.post("/api/v1/credentials", json={"account": "saml-acct", "role": "Deploy"}).status_code == 200


def test_a_rolling_restart_under_load(cluster: Cluster):
    stopping: list[tuple[float, float]] = []  # each replica's SIGTERM .. its exit
    with Load(cluster, threads=6) as load:
        time.sleep(2)
        for replica in cluster.replicas:
            t0 = time.monotonic()
            cluster.roll(replica)
            stopping.append((t0, time.monotonic()))
            time.sleep(1)
    failures = load.failures()
    print(f"\nrolling restart: {len(load.outcomes)} requests, "
          f"failures {[(f.status, f.code[:40]) for f in failures]}")
    assert load.ok_after(stopping[-1][1]) > 0
    assert failures == []


def test_a_config_rollout_replica_by_replica_never_leaves_replicas_disagreeing(cluster: Cluster):
    uid = cluster.uids[0]  # in g-000: ReadOnly in the team account before, Operator after
    seen: list[tuple[float, float, int, frozenset[tuple[str, str]]]] = []  # request start, answer, replica, team roles
    hashes: list[tuple[float, int, str]] = []  # when /readyz reports the replica's config hash
    polled: dict[int, float] = {}
    stop = threading.Event()

    def watch(index: int) -> None:
        with httpx.Client(base_url=cluster.replicas[index].url, auth=(uid, PASSWORD), timeout=10) as client:
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    r = client.get("/api/v1/roles")
                except httpx.HTTPError:
                    time.sleep(0.05)  # this replica is restarting
                    continue
                if time.monotonic() - polled.get(index, 0.0) > 0.2:  # the config hash, where /readyz has one
                    polled[index] = time.monotonic()
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        ready = client.get("/readyz").json()
                        if isinstance(ready, dict) and "config_hash" in ready:
                            hashes.append((time.monotonic(), index, str(ready["config_hash"])))
                if r.status_code == 200:
                    team = frozenset((g["account_id"], g["role_name"]) for g in r.json() if g["account_id"] == TEAM_ACCOUNT)
                    seen.append((t0, time.monotonic(), index, team))
                time.sleep(0.02)

    watchers = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(len(cluster.replicas))]
    for w in watchers:
        w.start()
    time.sleep(1)
    for replica in cluster.replicas:
        config = replica.config
        config["mapping"] = mapping_document(team_role="Operator")
        replica.write_config(config)
        replica.restart()
        time.sleep(1)
    stop.set()
    for w in watchers:
        w.join(timeout=30)

    before, after = frozenset({(TEAM_ACCOUNT, "ReadOnly")}), frozenset({(TEAM_ACCOUNT, "Operator")})
    assert {answer for *_, answer in seen} <= {before, after}
    # per replica: the start of the last request answered with the old mapping, and the end of
    # the first answered with the new one
    last_old = {i: max((t0 for t0, _, j, a in seen if j == i and a == before), default=None) for i in range(3)}
    first_new = {i: min((t1 for _, t1, j, a in seen if j == i and a == after), default=None) for i in range(3)}
    print(f"\nrollout: last old answer {last_old}, first new answer {first_new}")
    assert all(first_new.values()), "a replica never answered the new mapping"
    switch = min(t for t in first_new.values() if t is not None)
    overlap = max(t or 0 for t in last_old.values()) - switch
    print(f"rollout: last old request started {-overlap:.3f} s before the first new answer (watchers poll every ~0.02 s)")
    # once one replica has answered the new mapping, no request started later gets the old one
    # from any replica (they all read the one database; nothing is cached in a replica)
    assert all(t is None or t < switch for t in last_old.values()), (last_old, switch)
    if hashes:  # the files themselves differ while the rollout runs: that is what a rollout is
        final = {i: h for _, i, h in sorted(hashes)}
        print(f"rollout: config hashes at the end {final}")
        assert len(set(final.values())) == 1
