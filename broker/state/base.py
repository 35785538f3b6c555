"""The shared-state interface: string values under string keys, each with a time to live.

Every write takes ``ttl`` in seconds (a float; ``None`` only where noted means "no expiry").
Implementations are thread-safe. Outages raise ``broker.errors.StateUnavailable``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class StateStore(Protocol):
    def get(self, key: str) -> str | None:
        """The value, or None when absent or expired."""

    def set(self, key: str, value: str, *, ttl: float | None) -> None:
        """Store ``value``; it expires after ``ttl`` seconds (``None``: never)."""

    def set_if_absent(self, key: str, value: str, *, ttl: float) -> bool:
        """Store only if the key is absent (or expired); True if stored. Replay caches use this."""

    def increment(self, key: str, *, ttl: float, amount: int = 1) -> int:
        """Add ``amount`` and return the new count. A new counter expires ``ttl`` seconds after its
        first increment (a fixed window: later increments do not extend it). Rate limits use this."""

    def delete(self, key: str) -> bool:
        """Remove the key; True if it existed."""

    def set_indexed(self, key: str, value: str, *, ttl: float, index: str, existing_only: bool = False) -> bool:
        """``set`` and, in the same step, record ``key`` under ``index`` (until the key expires), so
        that ``delete_indexed`` finds it; True if stored. ``existing_only``: only if the key is there
        (an update never brings back a key deleted meanwhile). A person's logins are indexed so
        (``broker.logins``)."""

    def delete_indexed(self, index: str) -> int:
        """Delete every key recorded under ``index``, and the index; the number of keys that still existed."""

    def ttl(self, key: str) -> float | None:
        """Seconds left before the key expires; None when it is absent or never expires."""

    def ping(self) -> None:
        """Raise ``StateUnavailable`` if the store cannot be used (readiness)."""
