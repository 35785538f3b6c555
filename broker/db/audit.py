"""Audit rows: written in the transaction of the change they describe (so a change without
its event, or the reverse, cannot exist), decisions in batches, and the log read back in pages.

Every row is written by ``_write``, chained (``broker.db.chain``: ids, ``prev_hash``, ``hash``)
in the same transaction: the decisions at once, in one batch; an ORM session's events
(``record``) together at its COMMIT (a ``before_commit`` hook, so the chain lock is taken last
and held only for the insert). A rolled-back session writes none of them. On PostgreSQL the
issuance path's decisions, which have a transaction of their own, are written by
``commit_decisions`` instead (``broker.db.chain_pg``: the same rows, in two round trips).

The value types (AuditContext, Decision, AuditFilter) are ``broker.audit``'s."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, event, select
from sqlalchemy.orm import Session, SessionTransaction

from broker.audit import AuditContext, AuditFilter, Decision, rfc3339
from broker.db import chain, chain_pg, outbox
from broker.db.models import AuditEvent, utcnow

_PENDING = "audit.pending"
"""``Session.info`` key: the session's events not written yet (written at its COMMIT)."""


def _write(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The one place audit rows are written: chained and inserted on ``conn``'s transaction;
    returns them as written (with ``id``, ``prev_hash``, ``hash``)."""
    written = chain.append(conn, rows)
    outbox.enqueue_ids(conn, [r["id"] for r in written])  # forwarding: their outbox rows, same transaction
    return written


def record(
    s: Session,
    ctx: AuditContext,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    outcome: str = "allow",
    details: dict[str, Any] | None = None,
) -> None:
    """One event in the session's transaction (an admin write, a sync step), written when the
    session commits."""
    s.info.setdefault(_PENDING, []).append(
        {
            "at": utcnow(),
            "actor": ctx.actor,
            "action": action,
            "outcome": outcome,
            "target_type": target_type,
            "target_id": target_id,
            "request_id": ctx.request_id,
            "source_ip": ctx.source_ip,
            "before": before,
            "after": after,
            "details": details,
        }
    )


@event.listens_for(Session, "before_commit")
def _write_pending(s: Session) -> None:
    rows = s.info.pop(_PENDING, None)
    if rows:
        s.flush()  # the session's own writes first: the chain lock is the transaction's last
        _write(s.connection(), rows)


@event.listens_for(Session, "after_transaction_end")
def _drop_pending(s: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the session's transaction ended: a rollback drops its events
        s.info.pop(_PENDING, None)


def record_decisions(conn: Connection, events: Sequence[Decision]) -> None:
    """Decisions as rows, chained and inserted in one batch on the caller's connection (its transaction)."""
    _write(conn, _decision_rows(events))


def can_commit_decisions(engine: Engine) -> bool:
    """Whether ``commit_decisions`` serves ``engine``: PostgreSQL, with libpq's pipeline mode."""
    return engine.dialect.name == "postgresql" and chain_pg.supported()


def commit_decisions(conn: Connection, events: Sequence[Decision]) -> None:
    """PostgreSQL: decisions as rows, chained, inserted with their outbox rows and committed in a
    transaction of their own on ``conn`` (none open): ``chain_pg``, two round trips."""
    chain_pg.append_committed(conn, _decision_rows(events), destinations=outbox.destinations(conn))


def _decision_rows(events: Sequence[Decision]) -> list[dict[str, Any]]:
    return [
        {
            "at": e.at or utcnow(),
            "actor": e.ctx.actor,
            "action": e.action,
            "outcome": e.outcome,
            "target_type": e.target_type,
            "target_id": e.target_id,
            "request_id": e.ctx.request_id,
            "source_ip": e.ctx.source_ip,
            "before": None,
            "after": None,
            "details": e.details,
        }
        for e in events
    ]


def query(s: Session, f: AuditFilter, *, limit: int, before_id: int | None = None) -> list[AuditEvent]:
    """Newest first; ``before_id`` is the keyset cursor (the last id of the previous page)."""
    q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(AuditEvent.id < before_id)
    if f.actor:
        q = q.where(AuditEvent.actor == f.actor)
    if f.action:
        if f.action.endswith(("*", ".")):
            prefix = f.action.rstrip("*")
            q = q.where(AuditEvent.action.startswith(prefix, autoescape=True))
        else:
            q = q.where(AuditEvent.action == f.action)
    if f.target_type:
        q = q.where(AuditEvent.target_type == f.target_type)
    if f.target_id:
        q = q.where(AuditEvent.target_id == f.target_id)
    if f.outcome:
        q = q.where(AuditEvent.outcome == f.outcome)
    if f.since:
        q = q.where(AuditEvent.at >= _utc(f.since))
    if f.until:
        q = q.where(AuditEvent.at < _utc(f.until))
    return list(s.scalars(q))


def _utc(t: datetime) -> datetime:
    """A filter time in UTC (no offset: UTC), so it compares right with what either database stored."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def event_dict(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": rfc3339(e.at),
        "actor": e.actor,
        "action": e.action,
        "outcome": e.outcome,
        "target_type": e.target_type,
        "target_id": e.target_id,
        "request_id": e.request_id,
        "source_ip": e.source_ip,
        "before": e.before,
        "after": e.after,
        "details": e.details,
    }


def chained_dict(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the export answers it: the event, ``prev_hash`` and ``hash``."""
    out = {name: row[name] for name in ("id", "actor", "action", "outcome", "target_type", "target_id",
                                       "request_id", "source_ip", "before", "after", "details")}
    return {"id": out.pop("id"), "at": rfc3339(row["at"]), **out, "prev_hash": row["prev_hash"], "hash": row["hash"]}
