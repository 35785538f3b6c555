"""Shared state: small keyed values with a time to live, in-process or in Redis.

One interface (``base.StateStore``) for everything replicas must agree on: sessions, device
codes, replay caches (``set_if_absent``), rate limits (``increment``) and the directory group
cache. ``memory.MemoryState`` serves a single process (the demo, tests); ``redis.RedisState``
makes replicas interchangeable. ``open_state(config.state)`` picks one from the configuration.
"""

from __future__ import annotations

from broker.state.base import StateStore
from broker.state.config import StateConfig

__all__ = ["StateConfig", "StateStore", "open_state"]


def open_state(config: StateConfig, *, prefix: str = "broker:") -> StateStore:
    """The store the configuration names (``state.backend``); Redis is imported only when used."""
    if config.backend == "redis":
        from broker.state.redis import RedisState

        if config.redis_url is None:
            from broker.errors import ConfigError

            raise ConfigError(["state.redis_url: required when state.backend is redis"])
        return RedisState.from_url(config.redis_url.get_secret_value(), prefix=prefix)
    from broker.state.memory import MemoryState

    return MemoryState()
