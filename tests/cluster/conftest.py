"""One cluster per test module (tests/cluster/harness.py): three replicas behind nginx, started once."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster
from tests.conftest import component_missing
from tests.nginx import nginx_program


def require_cluster_components() -> str:
    """The PostgreSQL base URL; every other component checked (skip locally, fail in CI)."""
    postgres = os.environ.get("BROKER_TEST_DATABASE_URL", "")
    if not postgres.startswith("postgresql"):
        component_missing("PostgreSQL: set BROKER_TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    if nginx_program() is None:
        component_missing("Debian nginx (apt-get install -y nginx; see `make test-deps`)")
    for program in ("redis-server", "slapd", "ldapadd"):
        if shutil.which(program) is None and not Path(f"/usr/sbin/{program}").exists():
            component_missing(f"program {program!r} (see `make test-deps`)")
    try:
        import moto.moto_server.werkzeug_app  # noqa: F401
    except ImportError:
        component_missing("Python package 'moto[server]'")
    return postgres


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    postgres = require_cluster_components()
    limits = {"login_failures_per_address": 6}  # test_shared_state.ADDRESS_LIMIT
    with Cluster(tmp_path_factory.mktemp("cluster"), postgres=postgres, rate_limits=limits) as running:
        yield running
