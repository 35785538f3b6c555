"""Redis state (redis-py), so replicas share sessions, replay caches, rate limits and caches.

Every key is prefixed (``broker:`` by default). Redis exceptions become ``StateUnavailable``
here, in ``_translate``, and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import RedisError

from broker.errors import StateUnavailable
from broker.logs import get_logger

log = get_logger("broker.state")

# INCRBY, and start the window on the first increment only (also for a key left without expiry).
_INCREMENT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
"""


def _ms(ttl: float) -> int:
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    return max(1, math.ceil(ttl * 1000))


@contextmanager
def _translate() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        log.warning("state_unavailable", error_type=type(exc).__name__)
        raise StateUnavailable() from None


class RedisState:
    def __init__(self, client: redis.Redis, *, prefix: str = "broker:") -> None:
        self._r = client
        self._prefix = prefix
        self._increment = client.register_script(_INCREMENT)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "broker:", timeout: float = 2.0) -> RedisState:
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
        return cls(client, prefix=prefix)

    def _k(self, key: str) -> str:
        return self._prefix + key

    def get(self, key: str) -> str | None:
        with _translate():
            value = self._r.get(self._k(key))
        return value.decode("utf-8") if isinstance(value, bytes) else value  # bytes: a client without decode_responses

    def set(self, key: str, value: str, *, ttl: float | None) -> None:
        with _translate():
            self._r.set(self._k(key), value, px=None if ttl is None else _ms(ttl))

    def set_if_absent(self, key: str, value: str, *, ttl: float) -> bool:
        with _translate():
            return bool(self._r.set(self._k(key), value, px=_ms(ttl), nx=True))

    def increment(self, key: str, *, ttl: float, amount: int = 1) -> int:
        with _translate():
            return int(self._increment(keys=[self._k(key)], args=[amount, _ms(ttl)]))

    def delete(self, key: str) -> bool:
        with _translate():
            return bool(self._r.delete(self._k(key)))

    def ttl(self, key: str) -> float | None:
        with _translate():
            ms = self._r.pttl(self._k(key))
        return None if ms < 0 else ms / 1000  # -2: no such key, -1: no expiry

    def ping(self) -> None:
        with _translate():
            self._r.ping()

    def close(self) -> None:
        self._r.close()
