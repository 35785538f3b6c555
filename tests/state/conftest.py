"""The ``store`` fixture: every shared-state backend — in-process, Redis (the CI server, a Sentinel
set-up, a Redis Cluster, all real) and the database store of CLI logins (SQLite, PostgreSQL).

The test owns the clock: the memory and database stores take a fake one; for Redis, "time
passes" by taking the same amount off every test key's remaining TTL on the server (keys whose
TTL runs out are gone, exactly as if the time had passed). Nothing sleeps.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.state.base import StateStore
from broker.state.memory import MemoryState
from tests.conftest import component_missing, require_program


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def sentinel_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Sentinel set-up for the conformance suite (tests that fail over start their own)."""
    require_program("redis-server")
    from tests.state.servers import RedisSentinelSet

    servers = RedisSentinelSet(tmp_path_factory.mktemp("sentinel")).start()
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_program("redis-server", "redis-cli")
    from tests.state.servers import RedisClusterSet

    servers = RedisClusterSet(tmp_path_factory.mktemp("cluster")).start()
    yield servers
    servers.stop()


def _redis_store(url: str, direct: Any) -> Iterator[tuple[StateStore, Callable[[float], None]]]:
    """A ``RedisState`` on ``url`` under a fresh prefix; ``direct`` (a client of the same data)
    moves time and cleans up."""
    from broker.config import StateConfig
    from broker.state.redis import RedisState

    prefix = f"test:{secrets.token_hex(6)}:"

    def advance(seconds: float) -> None:
        for key in direct.scan_iter(match=prefix + "*"):
            left = direct.pttl(key)
            if left >= 0:
                remaining = left - int(seconds * 1000)
                direct.delete(key) if remaining <= 0 else direct.pexpire(key, remaining)

    state = RedisState.from_config(url, StateConfig(backend="redis", redis_url=url), prefix=prefix)
    yield state, advance
    for key in direct.scan_iter(match=prefix + "*"):
        direct.delete(key)
    state.close()
    direct.close()


def _database_store(url: str) -> Iterator[tuple[StateStore, Callable[[float], None]]]:
    from broker.config import DatabaseConfig
    from broker.db.durable_state import DatabaseState
    from broker.db.session import make_engine, migrate

    engine = make_engine(DatabaseConfig(url=url))
    migrate(engine)
    clock = Clock()

    def advance(seconds: float) -> None:
        clock.now += seconds

    yield DatabaseState(engine, clock=clock, purge_every=4), advance
    engine.dispose()


@pytest.fixture(params=[
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("sentinel", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.redis),
    "database-sqlite",
    pytest.param("database-postgres", marks=pytest.mark.postgres),
])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[StateStore, Callable[[float], None]]]:
    if request.param == "memory":
        clock = Clock()

        def advance(seconds: float) -> None:
            clock.now += seconds

        yield MemoryState(clock=clock, sweep_every=4), advance
        return
    if request.param == "database-sqlite":
        yield from _database_store(f"sqlite:///{tmp_path / 'state.db'}")
        return
    if request.param == "database-postgres":
        from tests.conftest import _postgres_database

        for url in _postgres_database():
            yield from _database_store(url)
        return
    import redis

    if request.param == "sentinel":
        servers = request.getfixturevalue("sentinel_set")
        yield from _redis_store(servers.url, servers.current_master().client())
        return
    if request.param == "cluster":
        from redis.cluster import RedisCluster

        servers = request.getfixturevalue("redis_cluster")
        direct = RedisCluster(host="127.0.0.1", port=servers.nodes[0].port, decode_responses=True)
        yield from _redis_store(servers.url, direct)
        return
    url = os.environ["BROKER_TEST_REDIS_URL"]
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        client.ping()
    except redis.RedisError as exc:
        component_missing(f"Redis at {url}: {exc}")
    yield from _redis_store(url, client)
