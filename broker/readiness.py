"""What /readyz and /metrics say about this replica (``broker.web.ops`` presents it).

Two kinds of check, because a load balancer acts on the status code:

- *own fitness* (``Readiness.checks``: database reachable and migrated, signing keys usable,
  the state store reachable): what a restart or another replica can fix. Any failing → 503, and
  the load balancer takes this replica out.
- *shared dependencies* (``Readiness.dependencies``: the directory, AWS STS): every replica uses
  the same ones, so their outage would take every replica out at once, and the broker could not
  even answer its clear 503 ``directory_unavailable`` / ``sts_unavailable``. They are reported
  (body, ``broker_dependency_up``), never turned into a 503 of /readyz.

STS is never called for readiness: it is "up" while every STS endpoint's circuit breaker is
closed. The directory: its breakers, and an authenticated bind (bounded by its timeouts) unless
every server's breaker is open already.

/metrics reuses the dependencies' outcomes for ``DEPENDENCY_SECONDS`` (per process,
``Readiness.recent_dependencies``), so a scrape every second does not bind to the directory each
time; /readyz always runs them (and refreshes what /metrics reuses).

The configuration's hashes (the mapping, as synced into the database, and the whole effective
configuration with secrets masked) make a replica started with a different file visible.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.breaker import BreakerState
from broker.errors import DirectoryUnavailable, StsUnavailable

Check = Callable[[], object]
"""Raises when what it checks cannot be used; its return value is ignored."""

DEPENDENCY_SECONDS = 2.0
"""How long /metrics reuses the dependencies' outcomes."""


@dataclass
class _Recent:
    """The last outcomes and when (``clock``) they were taken; one run at a time."""

    clock: Callable[[], float] = time.monotonic
    at: float | None = None
    outcomes: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Readiness:
    checks: Mapping[str, Check]
    """Own fitness, by name: any failing makes /readyz answer 503."""
    dependencies: Mapping[str, Check] = field(default_factory=dict)
    """Shared dependencies, by name: reported, never a 503 of /readyz."""
    breakers: Callable[[], list[BreakerState]] = list
    """Every circuit breaker (directory servers, STS endpoints)."""
    mapping_hash: str = ""
    config_hash: str = ""
    _recent: _Recent = field(default_factory=_Recent, compare=False, repr=False)

    def run_dependencies(self) -> dict[str, str]:
        """Each dependency's outcome now (``ok`` or ``down: <why>``), kept for ``recent_dependencies``."""
        with self._recent.lock:
            return self._run_locked()

    def recent_dependencies(self, seconds: float = DEPENDENCY_SECONDS) -> dict[str, str]:
        """The outcomes of at most ``seconds`` ago, else run now. Scrapes at once wait for one run."""
        with self._recent.lock:
            at = self._recent.at
            if at is not None and self._recent.clock() - at < seconds:
                return dict(self._recent.outcomes)
            return self._run_locked()

    def _run_locked(self) -> dict[str, str]:
        found = run(self.dependencies, prefix="down: ")
        self._recent.at, self._recent.outcomes = self._recent.clock(), found
        return dict(found)


def config_hash(document: Any) -> str:
    """``sha256:`` of a pydantic model's canonical JSON (``SecretStr`` values dump masked)."""
    text = json.dumps(document.model_dump(mode="json"), sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def sts_check(breakers: Callable[[], list[BreakerState]]) -> Check:
    def sts() -> None:
        down = [b.target for b in breakers() if b.state != "closed"]
        if down:
            raise StsUnavailable(f"circuit open for {', '.join(down)}")

    return sts


def directory_check(probe: Check, breakers: Callable[[], list[BreakerState]]) -> Check:
    def directory() -> None:
        states = breakers()
        if states and all(b.state != "closed" for b in states):
            raise DirectoryUnavailable(f"circuit open for every server ({', '.join(b.target for b in states)})")
        probe()

    return directory


def run(checks: Mapping[str, Check], *, prefix: str = "") -> dict[str, str]:
    """Each check's outcome: ``ok``, or ``<prefix><why>`` (a check never raises out of here)."""
    out: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            out[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - a readiness probe reports, it never raises
            out[name] = f"{prefix}{getattr(exc, 'message', None) or type(exc).__name__}"
    return out
