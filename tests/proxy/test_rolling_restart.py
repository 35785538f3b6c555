"""Issue 15: a rolling restart behind nginx loses no request (tests/proxy/rolling.py has the
deployment and explains its nginx configuration).

Two replicas of two workers each on one database; a client issuing credentials and listing its
roles through nginx without pause; each replica in turn stopped with SIGTERM (it drains, stops
accepting, finishes what it took, exits 0), started again and ready before the other one goes.
Every request the client made got its 200.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import component_missing
from tests.nginx import nginx_program
from tests.proxy.rolling import Deployment, Load

pytestmark = pytest.mark.proxy


# PostgreSQL, as replicas share it in production (SQLite serves one host; tests/test_shutdown.py uses it)
@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_rolling_restart_of_both_replicas_loses_no_request(tmp_path, database_url):
    if nginx_program() is None:
        component_missing("Debian nginx (apt-get install -y nginx; see `make test-deps`)")
    deployment = Deployment(tmp_path, database_url, workers=2, drain_seconds=2, grace_seconds=10)
    try:
        deployment.start()
        load = Load(deployment.url)
        load.start()
        time.sleep(1)
        before = load.requests
        restarts = deployment.rolling_restart()
        during = load.requests - before
        time.sleep(1)
        load.stop()
    finally:
        deployment.close()
    assert [r.exit_code for r in restarts] == [0, 0]  # each replica stopped by itself, within drain and grace
    assert load.failures == [], load.failures[:10]
    assert during > 20, load.statuses  # the client kept going through both restarts
    for replica in deployment.replicas:  # both generations of both replicas served and closed
        assert replica.log.read_text().count('"event": "closed"') == 4, replica.name
