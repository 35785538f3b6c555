"""The ``store`` fixture: every shared-state backend, in-process and Redis (a real server).

The test owns the clock: the memory store takes a fake one; for Redis, "time passes" by
taking the same amount off every test key's remaining TTL on the server (keys whose TTL runs
out are gone, exactly as if the time had passed). Nothing sleeps.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest

from broker.state.base import StateStore
from broker.state.memory import MemoryState


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[tuple[StateStore, Callable[[float], None]]]:
    if request.param == "memory":
        clock = Clock()

        def advance(seconds: float) -> None:
            clock.now += seconds

        yield MemoryState(clock=clock, sweep_every=4), advance
        return
    import redis

    from broker.state.redis import RedisState

    url = os.environ["BROKER_TEST_REDIS_URL"]
    prefix = f"test:{secrets.token_hex(6)}:"
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        client.ping()
    except redis.RedisError as exc:
        from tests.conftest import component_missing

        component_missing(f"Redis at {url}: {exc}")

    def advance(seconds: float) -> None:
        for key in client.scan_iter(match=prefix + "*"):
            left = client.pttl(key)
            if left >= 0:
                remaining = left - int(seconds * 1000)
                client.delete(key) if remaining <= 0 else client.pexpire(key, remaining)

    state = RedisState.from_url(url, prefix=prefix)
    yield state, advance
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    state.close()
    client.close()
