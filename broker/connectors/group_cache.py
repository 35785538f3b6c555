"""A user's resolved groups, reused for a short time (``directory.cache.ttl_seconds``).

Kept in the shared state store (in-process or Redis), keyed by the user's immutable id, so
replicas share it. Only groups are cached: the account itself (exists, enabled, not locked or
expired) is read from the directory at every lookup. ``ttl_seconds: 0`` turns it off.
"""

from __future__ import annotations

import hashlib
import json

from broker.state.base import StateStore


class GroupCache:
    def __init__(self, state: StateStore, *, ttl: float, namespace: str) -> None:
        if ttl <= 0:
            raise ValueError("a group cache needs a positive ttl")
        self._state = state
        self._ttl = ttl
        self._namespace = namespace

    def _key(self, user_id: str) -> str:
        return f"dir:{self._namespace}:groups:{hashlib.sha256(user_id.encode()).hexdigest()}"

    def get(self, user_id: str) -> tuple[str, ...] | None:
        raw = self._state.get(self._key(user_id))
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return tuple(value) if isinstance(value, list) else None

    def put(self, user_id: str, groups: tuple[str, ...]) -> None:
        self._state.set(self._key(user_id), json.dumps(list(groups)), ttl=self._ttl)
