"""The audit outbox: one row per (audit event, forwarding destination), written in the
transaction of the audit row, so an event is forwarded exactly when it was recorded.

Which destinations exist is told to the engine (``with_destinations``): the store's engine carries
their names as an execution option, so ``broker.db.audit`` finds them on the session or connection
it is given, and writes nothing when forwarding is not configured.

The forwarder (``broker.audit_forward``) works the rows: ``claim`` leases a batch of due rows
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers and replicas share the work without taking
the same row; SQLite's single writer serialises the claim), then ``delivered`` deletes them or
``failed`` puts them back with a later ``next_attempt_at``. No transaction is held during a send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, delete, func, insert, select, update
from sqlalchemy.orm import Session

from broker.db.models import AuditEvent, AuditOutbox, Base, utcnow

OPTION = "broker_audit_destinations"
"""The execution option naming the destinations (a tuple of names) on the store's engine."""

_TABLE = Base.metadata.tables[AuditOutbox.__tablename__]
_INSERT = insert(_TABLE)


def with_destinations(engine: Engine, names: Sequence[str]) -> Engine:
    """``engine`` (same pool) whose audit writes also fill the outbox for ``names``."""
    return engine.execution_options(**{OPTION: tuple(names)}) if names else engine


def destinations(bind: Engine | Connection) -> tuple[str, ...]:
    value: tuple[str, ...] = bind.get_execution_options().get(OPTION, ())
    return value


def enqueue_ids(conn: Connection, event_ids: Sequence[int]) -> None:
    """The rows of these just-chained events (``broker.db.audit._write``, both paths) in one executemany,
    in id order (one INSERT's ids grow in the order of its rows; RETURNING may answer them in any)."""
    names = destinations(conn)
    if not names or not event_ids:
        return
    now = utcnow()
    conn.execute(
        _INSERT,
        [
            {"event_id": i, "destination": d, "created_at": now, "next_attempt_at": now, "attempts": 0}
            for i in sorted(event_ids)
            for d in names
        ],
    )


@dataclass(frozen=True)
class Claimed:
    outbox_id: int
    attempts: int
    event: AuditEvent


def claim(engine: Engine, destination: str, *, limit: int, now: datetime, lease: timedelta) -> list[Claimed]:
    """Up to ``limit`` due rows of ``destination``, oldest first, leased until ``now + lease``
    (no other forwarder takes them meanwhile; a forwarder that dies leaves them due again then)."""
    due = (
        select(AuditOutbox.id)
        .where(AuditOutbox.destination == destination, AuditOutbox.next_attempt_at <= now)
        .order_by(AuditOutbox.id)
        .limit(limit)
    )
    ids = lease_due(engine, _TABLE, due, until=now + lease)
    if not ids:
        return []
    with Session(engine) as s:
        rows = s.execute(
            select(AuditOutbox.id, AuditOutbox.attempts, AuditEvent)
            .join(AuditEvent, AuditEvent.id == AuditOutbox.event_id)
            .where(AuditOutbox.id.in_(ids))
            .order_by(AuditOutbox.id)
        ).all()
        return [Claimed(outbox_id=r[0], attempts=r[1], event=r[2]) for r in rows]


def lease_due(engine: Engine, table: Table, due: Select[int], *, until: datetime) -> list[int]:
    """The ids ``due`` selects (an outbox's due rows, its ``id`` column, ordered and limited),
    their ``next_attempt_at`` moved to ``until`` in the same transaction: a lease no other worker
    or replica sees through (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's single writer,
    taken before the read and only when there is work). Every outbox of the broker claims so."""
    if engine.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    else:
        with engine.connect() as conn:
            if not list(conn.scalars(due)):
                return []
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        ids = list(conn.scalars(due))
        if ids:
            conn.execute(update(table).where(table.c.id.in_(ids)).values(next_attempt_at=until))
        return ids


def delivered(engine: Engine, outbox_ids: Sequence[int]) -> None:
    with engine.begin() as conn:
        conn.execute(delete(_TABLE).where(_TABLE.c.id.in_(list(outbox_ids))))


def failed(engine: Engine, outbox_ids: Sequence[int], *, retry_at: datetime, error: str) -> None:
    """The rows stay; they are due again at ``retry_at``."""
    with engine.begin() as conn:
        conn.execute(
            update(_TABLE)
            .where(_TABLE.c.id.in_(list(outbox_ids)))
            .values(attempts=_TABLE.c.attempts + 1, next_attempt_at=retry_at, last_error=error[:256])
        )


@dataclass(frozen=True)
class Depth:
    pending: int
    oldest: datetime | None


def depth(engine: Engine) -> dict[str, Depth]:
    """Pending rows and the oldest one's creation time, per destination (also unconfigured ones)."""
    q = select(AuditOutbox.destination, func.count(), func.min(AuditOutbox.created_at)).group_by(
        AuditOutbox.destination
    )
    with engine.connect() as conn:
        return {name: Depth(pending=n, oldest=oldest) for name, n, oldest in conn.execute(q)}


def pending_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every outbox row (tests, operators' checks)."""
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(_TABLE).order_by(_TABLE.c.id))]
