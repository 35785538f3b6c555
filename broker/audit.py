"""The audit log: one row per admin write and per access decision.

Rows are written in the same transaction as the change they describe, so a change without
its audit event (or the reverse) cannot exist. Nothing secret is ever put in an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.db.models import AuditEvent


@dataclass(frozen=True)
class AuditContext:
    actor: str
    request_id: str | None = None
    source_ip: str | None = None


SYSTEM = AuditContext(actor="system")


class Decision(NamedTuple):
    """An access decision (a sign-in, an issuance) waiting to be written."""

    ctx: AuditContext
    action: str
    outcome: str
    target_type: str | None = None
    target_id: str | None = None
    details: dict[str, Any] | None = None
    at: datetime | None = None
    """When it was decided; None: when written."""


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
    s.add(
        AuditEvent(
            actor=ctx.actor,
            action=action,
            outcome=outcome,
            target_type=target_type,
            target_id=target_id,
            request_id=ctx.request_id,
            source_ip=ctx.source_ip,
            before=before,
            after=after,
            details=details,
        )
    )


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    """Exact action, or a prefix ending in '.' / '*' (``mapping.`` matches mapping.create ...)."""
    target_type: str | None = None
    target_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


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


def rfc3339(t: datetime | None) -> str | None:
    """A stored time as RFC 3339 in UTC with its offset, ``2026-12-02T03:07:23.123456Z``: every
    time the admin API answers. SQLite hands back naive datetimes (stored as UTC), PostgreSQL
    aware ones in the session's time zone; both come out the same."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


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
