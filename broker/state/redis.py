"""Redis state (redis-py), so replicas share sessions, replay caches, rate limits and caches.

Every key is prefixed (``broker:`` by default). Redis exceptions become ``StateUnavailable``
here, in ``_call``, and nowhere else. A call that meets a connection error or a timeout is tried
again (``retries`` times, exponential backoff 50 ms → 500 ms, redis-py's ``Retry``), so one call
takes at most (retries + 1) attempts, each bounded by the client's socket timeouts
(``broker.state.redis_client``). A retried write may have landed the first time: an increment
may count twice, a replay-cache entry may answer "seen" — both err on the safe side.

Redis Cluster (``cluster=True``): the index of ``set_indexed`` lives in another hash slot than
its keys (a key is found by its own name — a session id, a device code — never by its person),
so there the key and its index entry are written one after the other, key first, and
``delete_indexed`` deletes the keys it read from the index and then only those members: a key
written meanwhile stays indexed, and a later ``delete_indexed`` finds it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from broker.errors import StateUnavailable
from broker.logs import get_logger

log = get_logger("broker.state")

T = TypeVar("T")

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
# Cluster: the index half of _SET_INDEXED alone (one key, so one slot).
_INDEX_ADD = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(last[2]) - tonumber(ARGV[1])))
return 1
"""

_TRANSIENT = (RedisConnectionError, RedisTimeoutError)


def _ms(ttl: float) -> int:
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    return max(1, math.ceil(ttl * 1000))


class RedisState:
    def __init__(self, client: Any, *, prefix: str = "broker:", retries: int = 0, cluster: bool = False) -> None:
        """``client``: a ``redis.Redis`` (or ``redis.cluster.RedisCluster`` with ``cluster``), or a
        function that makes one on first use (a cluster client connects as it is made)."""
        self._make: Callable[[], Any] | None = client if callable(client) and not hasattr(client, "execute_command") else None
        self._r: Any = None if self._make is not None else client
        self._prefix = prefix
        self._cluster = cluster
        self._retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries, supported_errors=_TRANSIENT)
        self._scripts: dict[str, Any] = {}

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "broker:", timeout: float = 2.0) -> RedisState:
        from broker.state.config import StateConfig

        config = StateConfig(timeout_seconds=timeout, retries=0)
        return cls.from_config(url, config, prefix=prefix)

    @classmethod
    def from_config(cls, url: str, config: Any, *, prefix: str = "broker:") -> RedisState:
        """The store for ``url`` with ``config``'s timeouts, retries and TLS (a ``StateConfig``)."""
        from broker.state.redis_client import build_client, parse_cluster_url

        cluster = url.startswith(("redis+cluster://", "rediss+cluster://"))
        if cluster:
            parse_cluster_url(url)  # a malformed URL fails now; the client connects on first use
            return cls(lambda: build_client(url, config), prefix=prefix, retries=config.retries, cluster=True)
        return cls(build_client(url, config), prefix=prefix, retries=config.retries)

    # -- plumbing --

    def _client(self) -> Any:
        if self._r is None:
            assert self._make is not None
            self._r = self._make()
        return self._r

    def _script(self, source: str) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._client().register_script(source)
        return script

    def _call(self, do: Callable[[], T]) -> T:
        """``do`` with bounded retries; any Redis failure becomes ``StateUnavailable``."""
        try:
            return self._retry.call_with_retry(do, lambda _error: None)
        except (RedisError, RedisClusterException) as exc:
            log.warning("state_unavailable", error_type=type(exc).__name__)
            raise StateUnavailable() from None

    def _k(self, key: str) -> str:
        return self._prefix + key

    # -- StateStore --

    def get(self, key: str) -> str | None:
        value = self._call(lambda: self._client().get(self._k(key)))
        return value.decode("utf-8") if isinstance(value, bytes) else value  # bytes: a client without decode_responses

    def set(self, key: str, value: str, *, ttl: float | None) -> None:
        px = None if ttl is None else _ms(ttl)
        self._call(lambda: self._client().set(self._k(key), value, px=px))

    def set_if_absent(self, key: str, value: str, *, ttl: float) -> bool:
        px = _ms(ttl)
        return bool(self._call(lambda: self._client().set(self._k(key), value, px=px, nx=True)))

    def increment(self, key: str, *, ttl: float, amount: int = 1) -> int:
        px = _ms(ttl)
        return int(self._call(lambda: self._script(_INCREMENT)(keys=[self._k(key)], args=[amount, px])))

    def delete(self, key: str) -> bool:
        return bool(self._call(lambda: self._client().delete(self._k(key))))

    def set_indexed(self, key: str, value: str, *, ttl: float, index: str, existing_only: bool = False) -> bool:
        """One script: the key and its index entry are written together (on a cluster: key first)."""
        px = _ms(ttl)

        def single() -> bool:
            now = int(time.time() * 1000)
            return bool(self._script(_SET_INDEXED)(keys=[self._k(key), self._k(index)],
                                                   args=[value, px, now, key, int(existing_only)]))

        def cluster() -> bool:
            if not self._client().set(self._k(key), value, px=px, xx=existing_only or None):
                return False
            self._script(_INDEX_ADD)(keys=[self._k(index)], args=[int(time.time() * 1000), px, key])
            return True

        return self._call(cluster if self._cluster else single)

    def delete_indexed(self, index: str) -> int:
        def single() -> int:
            return int(self._script(_DELETE_INDEXED)(keys=[self._k(index)], args=[self._prefix]))

        def cluster() -> int:
            r = self._client()
            members = r.zrange(self._k(index), 0, -1)
            if not members:
                return 0
            ended = sum(int(r.delete(self._k(m))) for m in members)
            r.zrem(self._k(index), *members)
            return ended

        return self._call(cluster if self._cluster else single)

    def ttl(self, key: str) -> float | None:
        ms = self._call(lambda: self._client().pttl(self._k(key)))
        return None if ms < 0 else ms / 1000  # -2: no such key, -1: no expiry

    def ping(self) -> None:
        self._call(lambda: self._client().ping())

    def close(self) -> None:
        if self._r is not None:
            self._r.close()
