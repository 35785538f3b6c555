"""Shared state: small keyed values with a time to live, in-process or in Redis.

One interface (``base.StateStore``) for everything replicas must agree on: sessions, device
codes, replay caches (``set_if_absent``), rate limits (``increment``) and the directory group
cache. ``memory.MemoryState`` serves a single process (the demo, tests); ``redis.RedisState``
makes replicas interchangeable. ``open_state(config.state)`` picks one from the configuration.
CLI logins (refresh tokens) live in the database by default (``state.durable``;
``broker.db.durable_state``), so a Redis restart does not sign every CLI user out.
"""

from __future__ import annotations

from broker.state.base import StateStore
from broker.state.config import StateConfig

__all__ = ["StateConfig", "StateStore", "open_state"]


def open_state(config: StateConfig, *, prefix: str = "broker:") -> StateStore:
    """The store the configuration names (``state.backend``); Redis is imported only when used.
    It does not connect yet: ``ping`` says whether it can be used (``StateUnavailable``)."""
    if config.backend == "redis":
        from broker.errors import ConfigError
        from broker.state.redis import RedisState

        if config.redis_url is None:
            raise ConfigError(["state.redis_url: required when state.backend is redis"])
        try:
            return RedisState.from_config(config.redis_url.get_secret_value(), config, prefix=prefix)
        except ValueError as exc:  # the URL's form (its text, with the password, is never shown)
            raise ConfigError([f"state.redis_url: {exc}"]) from None
    from broker.state.memory import MemoryState

    return MemoryState()
