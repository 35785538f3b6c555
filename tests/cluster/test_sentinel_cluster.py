"""The cluster on Redis Sentinel: three replicas behind nginx whose shared state is a master and a
replica watched by three Sentinels (``state.redis_url: redis+sentinel://...``). The master is
SIGKILLed under load: each replica finds the promoted one by itself, a portal session made before
the failover (replicated before the kill) still works on every replica, and what the load saw
in between is the broker's own 503 ``state_unavailable`` — never a 500, never a hang.
"""

from __future__ import annotations

import time

import pytest

from tests.cluster.harness import PASSWORD, Cluster
from tests.cluster.load import Load
from tests.cluster.test_shared_state import sign_in
from tests.state.servers import RedisSentinelSet

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.ldap, pytest.mark.sts, pytest.mark.proxy]


@pytest.fixture(scope="module")
def sentinel_cluster(tmp_path_factory: pytest.TempPathFactory):
    from tests.cluster.conftest import require_cluster_components

    postgres = require_cluster_components()
    sentinels = RedisSentinelSet(tmp_path_factory.mktemp("sentinel")).start()
    try:
        with Cluster(tmp_path_factory.mktemp("cluster"), postgres=postgres, redis_url=sentinels.url) as cluster:
            yield cluster, sentinels
    finally:
        sentinels.stop()


def test_a_sentinel_failover_under_load(sentinel_cluster: tuple[Cluster, RedisSentinelSet]):
    cluster, sentinels = sentinel_cluster
    uid = cluster.uids[1]
    with cluster.client() as browser:
        assert sign_in(browser, uid).status_code == 303
        cookies = browser.cookies
    master = sentinels.current_master()
    assert master.client().wait(1, 5000) == 1  # the session is on the replica too (replication is asynchronous)

    with Load(cluster, threads=4) as load:
        time.sleep(2)
        killed_at = time.monotonic()
        assert master.proc is not None
        master.proc.kill()
        sentinels.wait_for_new_master(master.port)
        promoted_at = time.monotonic()
        time.sleep(4)
    failures = load.failures()
    print(f"\nsentinel failover: {len(load.outcomes)} requests, promoted after {promoted_at - killed_at:.1f} s, "
          f"failures {sorted({(f.status, f.code) for f in failures})}")
    assert {(f.status, f.code) for f in failures} <= {(503, "state_unavailable")}
    assert all(f.ended - f.started < 30 for f in failures)  # bounded, not hung
    assert load.ok_after(promoted_at + 2) > 0
    for replica in cluster.replicas:  # each found the promoted master by itself, and kept the session
        with cluster.client(replica.url, cookies=cookies) as direct:
            page = direct.get("/")
            assert page.status_code == 200 and "saml-acct" in page.text, (replica.index, page.status_code)
        with cluster.client(replica.url, auth=(uid, PASSWORD)) as api:
            r = api.post("/api/v1/credentials", json={"account": "saml-acct", "role": "Deploy"})
            assert r.status_code == 200, (replica.index, r.text)
