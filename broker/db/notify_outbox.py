"""The notification outbox: one row per (notification, webhook), written in the transaction of
the change it tells of (``enqueue`` on that transaction's connection) or in its own
(``OutboxNotifier.notify``), deleted once the webhook took it.

``OutboxNotifier`` is the broker's ``broker.notify.Notifier`` over these rows. The delivery
worker (``broker.notify_worker``) works the rows the way the audit forwarder works
its own: ``claim`` leases due rows (``broker.db.outbox.lease_due``: ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so replicas never take the same row), then ``delivered`` deletes a row, ``retry``
puts it back with a later ``next_attempt_at``, ``give_up`` keeps it as ``failed``. No
transaction is held during a send. ``delivery_id`` is stable across retries: receivers dedupe on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from broker import logs
from broker.db.models import Base, NotificationOutbox, utcnow
from broker.db.outbox import lease_due
from broker.notify import Notification
from broker.notify.bodies import note_dict

log = logs.get_logger("broker.notify")

_TABLE = Base.metadata.tables[NotificationOutbox.__tablename__]


def enqueue(conn: Connection, webhooks: Iterable[str], event: str, payload: dict[str, Any]) -> int:
    """A row per webhook, due now, on ``conn`` (the caller's transaction); how many."""
    now = utcnow()
    rows = [{"delivery_id": uuid.uuid4().hex, "webhook": w, "event": event, "payload": payload, "state": "pending",
             "created_at": now, "next_attempt_at": now, "attempts": 0} for w in dict.fromkeys(webhooks)]
    if rows:
        conn.execute(insert(_TABLE), rows)
    return len(rows)


@dataclass(frozen=True)
class Claimed:
    id: int
    delivery_id: str
    webhook: str
    event: str
    payload: dict[str, Any]
    attempts: int


def claim(engine: Engine, webhook: str, *, limit: int, now: datetime, lease: timedelta) -> list[Claimed]:
    """Up to ``limit`` due pending rows of ``webhook``, oldest first, leased until ``now + lease``."""
    due = (
        select(_TABLE.c.id)
        .where(_TABLE.c.state == "pending", _TABLE.c.webhook == webhook, _TABLE.c.next_attempt_at <= now)
        .order_by(_TABLE.c.id)
        .limit(limit)
    )
    ids = lease_due(engine, _TABLE, due, until=now + lease)
    if not ids:
        return []
    cols = (_TABLE.c.id, _TABLE.c.delivery_id, _TABLE.c.webhook, _TABLE.c.event, _TABLE.c.payload, _TABLE.c.attempts)
    with engine.connect() as conn:
        return [Claimed(*r) for r in conn.execute(select(*cols).where(_TABLE.c.id.in_(ids)).order_by(_TABLE.c.id))]


def delivered(engine: Engine, row_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(_TABLE).where(_TABLE.c.id == row_id))


def retry(engine: Engine, row_id: int, *, at: datetime, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(_TABLE).where(_TABLE.c.id == row_id)
                     .values(attempts=_TABLE.c.attempts + 1, next_attempt_at=at, last_error=error[:256]))


def release(engine: Engine, row_ids: Sequence[int], *, at: datetime) -> None:
    """Claimed rows not tried (their webhook is down this pass): due again at ``at``, no attempt counted."""
    if row_ids:
        with engine.begin() as conn:
            conn.execute(update(_TABLE).where(_TABLE.c.id.in_(list(row_ids))).values(next_attempt_at=at))


def give_up(engine: Engine, row_id: int, *, error: str) -> None:
    """The row stays, ``failed``: no further attempt (operators see it in the table)."""
    with engine.begin() as conn:
        conn.execute(update(_TABLE).where(_TABLE.c.id == row_id)
                     .values(attempts=_TABLE.c.attempts + 1, state="failed", last_error=error[:256]))


def depth(engine: Engine) -> dict[str, int]:
    """Pending rows per webhook (also unconfigured ones)."""
    q = select(_TABLE.c.webhook, func.count()).where(_TABLE.c.state == "pending").group_by(_TABLE.c.webhook)
    with engine.connect() as conn:
        return {name: n for name, n in conn.execute(q)}


def rows(engine: Engine, *, states: Sequence[str] = ("pending", "failed")) -> list[dict[str, Any]]:
    """Every row in those states, oldest first (tests, operators' checks)."""
    with engine.connect() as conn:
        q = select(_TABLE).where(_TABLE.c.state.in_(list(states))).order_by(_TABLE.c.id)
        return [dict(r._mapping) for r in conn.execute(q)]


class OutboxNotifier:
    def __init__(self, engine: Engine, known: Collection[str]) -> None:
        self.engine = engine
        self.known = frozenset(known)
        """The configured webhooks (check-config refuses a policy naming another)."""

    def _names(self, webhooks: Sequence[str], note: Notification) -> list[str]:
        unknown = [w for w in webhooks if w not in self.known]
        if unknown:
            log.warning("notification_unknown_webhook", webhooks=unknown, notification=note.event)
        return [w for w in webhooks if w in self.known]

    def queue_on(self, conn: Connection, webhooks: Sequence[str], note: Notification) -> int:
        """The rows on ``conn``, in its transaction (raised errors are the caller's, with its change)."""
        return enqueue(conn, self._names(webhooks, note), note.event, note_dict(note))

    def notify(self, webhooks: tuple[str, ...] | list[str], note: Notification) -> None:
        names = self._names(webhooks, note)
        if not names:
            return
        try:
            with self.engine.begin() as conn:
                enqueue(conn, names, note.event, note_dict(note))
        except SQLAlchemyError as exc:
            log.error("notification_not_queued", notification=note.event, webhooks=names, error=type(exc).__name__)
