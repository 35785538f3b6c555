"""SqlRequestStore: access requests and their time-bound grants (``broker.jit.RequestStore``).

Every change is one conditional UPDATE (``WHERE id = :id AND version = :version``): two
approvers at once cannot both move a request, the loser re-reads it (``broker.flow``).
A change's notification (``note=``) is queued in the change's own transaction
(``OutboxNotifier.queue_on``): no crash can leave one without the other.
Times are stored in UTC; SQLite hands them back naive, so every read makes them aware.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.orm import Session

from broker.db.models import AccessRequest as Row
from broker.db.notify_outbox import OutboxNotifier
from broker.db.queries import find_account
from broker.db.session import session_factory
from broker.db.tx import aware, transaction
from broker.jit import NoteFor
from broker.jit.requests import AccessRequest, NewRequest, RequestFilter

_OPEN = ("pending", "approved")
_TIMES = ("created_at", "decided_at", "starts_at", "ends_at", "ended_at")


def _value(row: Row) -> AccessRequest:
    data: dict[str, Any] = {f.name: getattr(row, f.name) for f in fields(AccessRequest)}
    for name in _TIMES:
        data[name] = aware(data[name])
    data["approvals"] = tuple(data["approvals"] or ())
    return AccessRequest(**data)


class SqlRequestStore:
    """``notifier``: where a change's notification goes, in the change's transaction (None: nowhere)."""

    def __init__(self, engine: Engine, notifier: OutboxNotifier | None = None) -> None:
        self._sessions = session_factory(engine)
        self._notifier = notifier

    def _queue(self, s: Session, value: AccessRequest, note: NoteFor | None) -> None:
        out = note(value) if note is not None and self._notifier is not None else None
        if out is not None and out[0] and self._notifier is not None:
            self._notifier.queue_on(s.connection(), out[0], out[1])

    def _tx(self) -> AbstractContextManager[Session]:
        return transaction(self._sessions)

    def create(self, new: NewRequest, *, note: NoteFor | None = None) -> AccessRequest:
        with self._tx() as s:
            row = Row(
                requester_id=new.requester_id, requester=new.requester, account_id=new.account_id,
                role_name=new.role_name, role_key=new.role_name.lower(), policy=new.policy, reason=new.reason,
                ticket=new.ticket, duration=new.duration, state="pending", approvals_needed=new.approvals_needed,
                approvals=[], created_at=new.created_at.astimezone(UTC), version=0,
            )
            s.add(row)
            s.flush()
            value = _value(row)
            self._queue(s, value, note)
            return value

    def get(self, request_id: int) -> AccessRequest | None:
        with self._tx() as s:
            row = s.get(Row, request_id)
            return None if row is None else _value(row)

    def update(self, request: AccessRequest, *, note: NoteFor | None = None, **changes: Any) -> AccessRequest | None:
        stored = {k: (v.astimezone(UTC) if isinstance(v, datetime) else
                      [dict(a) for a in v] if k == "approvals" else v) for k, v in changes.items()}
        with self._tx() as s:
            done = s.execute(
                update(Row).where(Row.id == request.id, Row.version == request.version)
                .values(**stored, version=request.version + 1)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row = s.get(Row, request.id, populate_existing=True)
            if row is None:
                return None
            value = _value(row)
            self._queue(s, value, note)
            return value

    def of_requester(self, requester_id: str, *, limit: int = 100) -> list[AccessRequest]:
        with self._tx() as s:
            q = select(Row).where(Row.requester_id == requester_id).order_by(Row.id.desc()).limit(limit)
            return [_value(r) for r in s.scalars(q)]

    def open(self, *, limit: int = 500) -> list[AccessRequest]:
        with self._tx() as s:
            q = select(Row).where(Row.state.in_(_OPEN)).order_by(Row.id.desc()).limit(limit)
            return [_value(r) for r in s.scalars(q)]

    def active_grant(self, requester_id: str, account_id: str, role_name: str, now: datetime) -> AccessRequest | None:
        with self._tx() as s:
            q = (select(Row).where(Row.requester_id == requester_id, Row.account_id == account_id,
                                   Row.role_key == role_name.lower(), Row.state == "approved",
                                   Row.ends_at > now.astimezone(UTC))
                 .order_by(Row.ends_at.desc()).limit(1))
            row = s.scalars(q).first()
            return None if row is None else _value(row)

    def active_grants(self, now: datetime) -> list[AccessRequest]:
        with self._tx() as s:
            q = (select(Row).where(Row.state == "approved", Row.ends_at > now.astimezone(UTC))
                 .order_by(Row.ends_at).limit(10000))
            return [_value(r) for r in s.scalars(q)]

    def lapsed(self, now: datetime, *, limit: int = 500) -> list[AccessRequest]:
        with self._tx() as s:
            q = (select(Row).where(Row.state == "approved", Row.ends_at <= now.astimezone(UTC))
                 .order_by(Row.ends_at).limit(limit))
            return [_value(r) for r in s.scalars(q)]

    def pending_since(self, before: datetime, *, limit: int = 500) -> list[AccessRequest]:
        with self._tx() as s:
            q = (select(Row).where(Row.state == "pending", Row.created_at < before.astimezone(UTC))
                 .order_by(Row.id).limit(limit))
            return [_value(r) for r in s.scalars(q)]

    def search(self, flt: RequestFilter, *, now: datetime, limit: int, before_id: int | None = None
               ) -> list[AccessRequest]:
        at = now.astimezone(UTC)
        lapsed = and_(Row.state == "approved", Row.ends_at <= at)
        with self._tx() as s:
            q = select(Row).order_by(Row.id.desc()).limit(limit)
            if before_id is not None:
                q = q.where(Row.id < before_id)
            if flt.state == "expired":
                q = q.where(or_(Row.state == "expired", lapsed))
            elif flt.state == "approved":
                q = q.where(Row.state == "approved", Row.ends_at > at)
            elif flt.state is not None:
                q = q.where(Row.state == flt.state)
            if flt.requester:
                q = q.where(func.lower(Row.requester) == flt.requester.lower())
            if flt.account:
                acc = find_account(s, flt.account)
                q = q.where(Row.account_id == (acc.id if acc is not None else flt.account))
            if flt.role:
                q = q.where(Row.role_key == flt.role.lower())
            return [_value(r) for r in s.scalars(q)]
