"""The forwarder: works the audit outbox in a background thread of each worker process.

Per destination, a pass claims a batch of due rows (oldest first; a lease, so no other worker or
replica takes them meanwhile), sends it, and deletes the rows once the destination took them. A
failure keeps the rows: they wait ``retry_delay(attempts)`` (exponential, jittered, capped at
``max_backoff_seconds``) and the destination pauses as long, so events keep their order when it
comes back. Nothing is ever dropped. Delivery is at least once: a worker that dies after a send
and before the delete sends that batch again once the lease ends; every message carries the
audit event id for receivers to de-duplicate.

``run_once(now=…)`` is one pass (the tests drive it with their own clock); ``start``/``stop`` run
passes every ``interval`` seconds in a thread (``broker serve``'s lifespan).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from broker import logs
from broker.audit_forward.config import SyslogDestination, WebhookDestination
from broker.audit_forward.errors import DeliveryFailed
from broker.audit_forward.syslog import SyslogSender
from broker.audit_forward.webhook import WebhookSender, header_values
from broker.db import outbox
from broker.db.audit import event_dict
from broker.db.models import utcnow
from broker.metrics import Metrics
from broker.periodic import Periodic

log = logs.get_logger("broker.audit_forward")


class Sender(Protocol):
    def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Deliver the batch or raise DeliveryFailed."""

    def close(self) -> None: ...


def retry_delay(attempts: int, *, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after ``attempts`` failed ones (1 → about 1 s, then 2, 4, …):
    2^(attempts-1), at most ``cap``, times a jitter in [0.5, 1) so workers do not retry in step.
    (No retry library is a dependency of the broker; this is all the policy there is.)"""
    base = min(cap, 2.0 ** min(max(attempts - 1, 0), 32))
    return base * (0.5 + rand() / 2)


@dataclass
class Route:
    name: str
    sender: Sender
    batch_size: int
    timeout: float
    max_backoff: float
    paused_until: datetime | None = None

    @property
    def lease(self) -> timedelta:
        """Longer than any send can take (each of its few steps is bounded by ``timeout``)."""
        return timedelta(seconds=10 * self.timeout + 10)


class Forwarder:
    def __init__(
        self,
        engine: Engine,
        routes: Sequence[Route],
        *,
        metrics: Metrics | None = None,
        interval: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.engine = engine
        self.routes = list(routes)
        self.metrics = metrics
        self.interval = interval
        self._clock = clock
        self._rand = rand
        # each send is bounded by its timeout: a pass ends within a few of them
        self._job = Periodic("audit-forwarder", lambda: self.run_once() > 0, interval=interval,
                             join_timeout=3 * max((r.timeout for r in self.routes), default=1) + 1)

    # ---- one pass ----

    def run_once(self, now: datetime | None = None) -> int:
        """One batch per destination that is not paused; the number of events delivered."""
        now = now or self._clock()
        delivered = 0
        for route in self.routes:
            if route.paused_until is not None and now < route.paused_until:
                continue
            delivered += self._forward(route, now)
        self._gauges(now)
        return delivered

    def _forward(self, route: Route, now: datetime) -> int:
        batch = outbox.claim(self.engine, route.name, limit=route.batch_size, now=now, lease=route.lease)
        if not batch:
            return 0
        ids = [c.outbox_id for c in batch]
        try:
            route.sender.send([event_dict(c.event) for c in batch])
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the rows stay and are retried
            reason = exc.reason if isinstance(exc, DeliveryFailed) else type(exc).__name__
            attempts = max(c.attempts for c in batch) + 1
            delay = retry_delay(attempts, cap=route.max_backoff, rand=self._rand)
            route.paused_until = now + timedelta(seconds=delay)
            outbox.failed(self.engine, ids, retry_at=route.paused_until, error=reason)
            if self.metrics is not None:
                self.metrics.audit_forward_failures.labels(route.name).inc()
            log.warning("audit_forward_failed", destination=route.name, error=reason, events=len(ids),
                        attempts=attempts, retry_in_seconds=round(delay, 1))
            return 0
        outbox.delivered(self.engine, ids)
        route.paused_until = None
        if self.metrics is not None:
            self.metrics.audit_forwarded.labels(route.name).inc(len(ids))
        return len(ids)

    def _gauges(self, now: datetime) -> None:
        if self.metrics is None:
            return
        found = outbox.depth(self.engine)
        for name in {r.name for r in self.routes} | found.keys():
            d = found.get(name)
            oldest = d.oldest if d is not None else None
            if oldest is not None and oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=now.tzinfo)  # SQLite: stored in UTC, read back naive
            self.metrics.audit_outbox_pending.labels(name).set(d.pending if d is not None else 0)
            self.metrics.audit_outbox_oldest.labels(name).set(
                max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0
            )

    # ---- the background thread ----

    @property
    def thread(self) -> threading.Thread | None:
        return self._job.thread

    def start(self) -> None:
        if self._job.thread is not None:
            return
        self._warn_orphans()
        self._job.start()

    def stop(self) -> None:
        """Ends the thread after its current pass (each send is bounded by its timeout)."""
        self._job.stop()

    def close(self) -> None:
        self.stop()
        for route in self.routes:
            route.sender.close()

    def _warn_orphans(self) -> None:
        try:
            found = outbox.depth(self.engine)
        except SQLAlchemyError:
            return
        names = {r.name for r in self.routes}
        for name, d in found.items():
            if name not in names:
                log.warning("audit_outbox_unconfigured_destination", destination=name, pending=d.pending,
                            hint="these events wait until a destination of that name is configured again")


def build_forwarder(
    destinations: Sequence[SyslogDestination | WebhookDestination],
    *,
    engine: Engine,
    metrics: Metrics | None,
    env: Mapping[str, str],
    interval: float = 1.0,
) -> Forwarder | None:
    """The forwarder of ``audit.forward`` (None when it is empty); a webhook header's missing
    environment variable is a ConfigError."""
    if not destinations:
        return None
    routes: list[Route] = []
    for i, dest in enumerate(destinations):
        sender: Sender
        if isinstance(dest, SyslogDestination):
            sender = SyslogSender(dest)
        else:
            sender = WebhookSender(dest, headers=header_values(dest, env, path=f"audit.forward[{i}]"))
        routes.append(Route(dest.key, sender, dest.batch_size, dest.timeout_seconds, dest.max_backoff_seconds))
    return Forwarder(engine, routes, metrics=metrics, interval=interval)
