"""Redis state (redis-py), so replicas share sessions, replay caches, rate limits and caches.

Every key is prefixed (``broker:`` by default). Redis exceptions become ``StateUnavailable``
here, in ``_translate``, and nowhere else.
"""

from __future__ import annotations

import math
import time
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

# SET the key and record it in the index (a sorted set scored by the key's expiry, epoch ms):
# members already expired are dropped, and the index lives as long as its longest-lived member.
_SET_INDEXED = """
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local expires = tonumber(ARGV[3]) + tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('ZADD', KEYS[2], expires, ARGV[4])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[2], math.max(1, tonumber(last[2]) - tonumber(ARGV[3])))
return 1
"""
# DEL every key the index names (members are unprefixed: ARGV[1] is the prefix), then the index.
_DELETE_INDEXED = """
local n = 0
for _, key in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do n = n + redis.call('DEL', ARGV[1] .. key) end
redis.call('DEL', KEYS[1])
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
        self._set_indexed = client.register_script(_SET_INDEXED)
        self._delete_indexed = client.register_script(_DELETE_INDEXED)

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

    def set_indexed(self, key: str, value: str, *, ttl: float, index: str, existing_only: bool = False) -> bool:
        """One script: the key and its index entry are written together. ``delete_indexed`` reads
        the keys an index names inside its script, so a Redis Cluster would need them in one slot."""
        with _translate():
            return bool(self._set_indexed(keys=[self._k(key), self._k(index)],
                                          args=[value, _ms(ttl), int(time.time() * 1000), key, int(existing_only)]))

    def delete_indexed(self, index: str) -> int:
        with _translate():
            return int(self._delete_indexed(keys=[self._k(index)], args=[self._prefix]))

    def ttl(self, key: str) -> float | None:
        with _translate():
            ms = self._r.pttl(self._k(key))
        return None if ms < 0 else ms / 1000  # -2: no such key, -1: no expiry

    def ping(self) -> None:
        with _translate():
            self._r.ping()

    def close(self) -> None:
        self._r.close()
