"""In-process state: a dict behind a lock, entries expiring on a clock the caller may supply.

For one process (the demo, tests, a single replica). Expired entries are dropped when read and
swept in bulk every ``sweep_every`` writes, so the dict does not grow without bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]


class MemoryState:
    def __init__(self, *, clock: Clock = time.monotonic, sweep_every: int = 1024) -> None:
        self._clock = clock
        self._data: dict[str, tuple[str, float | None]] = {}
        self._indexes: dict[str, dict[str, float]] = {}
        """index → {key: when its record expires}; members are dropped once expired."""
        self._lock = threading.Lock()
        self._sweep_every = sweep_every
        self._writes = 0

    # -- helpers (call with the lock held) --

    def _live(self, key: str, now: float) -> tuple[str, float | None] | None:
        item = self._data.get(key)
        if item is not None and item[1] is not None and item[1] <= now:
            del self._data[key]
            return None
        return item

    def _store(self, key: str, value: str, expires: float | None) -> None:
        self._data[key] = (value, expires)
        self._writes += 1
        if self._writes % self._sweep_every == 0:
            now = self._clock()
            for k in [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]:
                del self._data[k]

    @staticmethod
    def _expiry(now: float, ttl: float | None) -> float | None:
        if ttl is None:
            return None
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        return now + ttl

    # -- StateStore --

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._live(key, self._clock())
            return None if item is None else item[0]

    def set(self, key: str, value: str, *, ttl: float | None) -> None:
        with self._lock:
            self._store(key, value, self._expiry(self._clock(), ttl))

    def set_if_absent(self, key: str, value: str, *, ttl: float) -> bool:
        with self._lock:
            now = self._clock()
            if self._live(key, now) is not None:
                return False
            self._store(key, value, self._expiry(now, ttl))
            return True

    def increment(self, key: str, *, ttl: float, amount: int = 1) -> int:
        with self._lock:
            now = self._clock()
            item = self._live(key, now)
            if item is None:
                count, expires = amount, self._expiry(now, ttl)
            else:
                count, expires = int(item[0]) + amount, item[1]
            self._store(key, str(count), expires)
            return count

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._live(key, self._clock()) is not None and self._data.pop(key, None) is not None

    def set_indexed(self, key: str, value: str, *, ttl: float, index: str, existing_only: bool = False) -> bool:
        with self._lock:
            now = self._clock()
            if existing_only and self._live(key, now) is None:
                return False
            expires = self._expiry(now, ttl)
            assert expires is not None
            self._store(key, value, expires)
            members = self._indexes.setdefault(index, {})
            for k in [k for k, exp in members.items() if exp <= now]:
                del members[k]
            members[key] = expires
            return True

    def delete_indexed(self, index: str) -> int:
        with self._lock:
            now = self._clock()
            members = self._indexes.pop(index, {})
            return sum(1 for k in members if self._live(k, now) is not None and self._data.pop(k, None) is not None)

    def ttl(self, key: str) -> float | None:
        with self._lock:
            now = self._clock()
            item = self._live(key, now)
            if item is None or item[1] is None:
                return None
            return item[1] - now

    def ping(self) -> None:
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)
