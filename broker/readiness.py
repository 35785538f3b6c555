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

The configuration's hashes (the mapping, as synced into the database, and the whole effective
configuration with secrets masked) make a replica started with a different file visible.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.breaker import BreakerState
from broker.errors import DirectoryUnavailable, StsUnavailable

Check = Callable[[], object]
"""Raises when what it checks cannot be used; its return value is ignored."""


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
