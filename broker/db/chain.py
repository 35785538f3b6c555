"""The audit chain on the database: rows appended with their hashes in the writer's transaction,
read back in id order in pages, and the oldest rows purged behind an anchor.

An append takes the chain lock as its first statement (an UPDATE of the one ``audit_chain_head``
row that allocates the ids: its row lock on PostgreSQL, the write lock on SQLite), computes the
hashes, then inserts the rows and records the new head (one statement on PostgreSQL); the lock is released by
the writer's COMMIT. Writers therefore extend the chain one at a time, ids are dense and in chain
order, and a rolled-back writer leaves no trace (its ids and head update roll back with it).
The canonical form and the hash are ``broker.audit_chain``'s.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import Executable

from broker.audit_chain import GENESIS, JSON_FIELDS, Anchor, as_stored, event_hash
from broker.db.models import AuditChainHead, AuditEvent, AuditOutbox, Base

_EVENTS = Base.metadata.tables[AuditEvent.__tablename__]
_HEAD = Base.metadata.tables[AuditChainHead.__tablename__]
_OUTBOX = Base.metadata.tables[AuditOutbox.__tablename__]
HEAD_ID = 1


def append(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chain ``rows`` (the event columns, without id) after the head and insert them on
    ``conn`` (its transaction); returns them as written, with ``id``, ``prev_hash`` and ``hash``.
    (PostgreSQL's issuance path writes in a transaction of its own: ``broker.db.chain_pg``.)"""
    if not rows:
        return rows
    last_id, prev_hash = conn.execute(
        update(_HEAD)
        .where(_HEAD.c.id == HEAD_ID)
        .values(last_id=_HEAD.c.last_id + len(rows))
        .returning(_HEAD.c.last_id, _HEAD.c.last_hash)
    ).one()
    new_hash = link(rows, last_id=last_id, prev_hash=prev_hash)
    if conn.dialect.name == "postgresql" and len(rows) <= _MAX_ONE_STATEMENT:
        # one round trip: the rows and the new head together (a statement built once per row count)
        params = {f"r{i}_{name}": row[name] for i, row in enumerate(rows) for name in _COLUMNS}
        conn.execute(_insert_and_head(len(rows), conn.dialect), {**params, "new_hash": new_hash})
    else:
        conn.execute(insert(_EVENTS), rows)
        conn.execute(update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(last_hash=new_hash))
    return rows


def link(rows: list[dict[str, Any]], *, last_id: int, prev_hash: str) -> str:
    """Give ``rows`` (in place) their ids, ending at ``last_id`` (the head just moved there), their
    stored form and their hashes, the first linked to ``prev_hash``; the new head's hash."""
    next_id = last_id - len(rows) + 1
    for offset, row in enumerate(rows):
        row["id"] = next_id + offset
        row["at"] = _utc(row["at"])
        for name in JSON_FIELDS:
            row[name] = as_stored(row[name])
        row["prev_hash"] = prev_hash
        row["hash"] = prev_hash = event_hash(row)
    return prev_hash


_COLUMNS = tuple(c.name for c in _EVENTS.columns)
_MAX_ONE_STATEMENT = 16


@functools.cache
def _insert_and_head(n: int, dialect: Dialect) -> Executable:
    """PostgreSQL: ``WITH chained AS (INSERT ... n rows) UPDATE audit_chain_head SET last_hash``,
    as text with typed parameters (a multi-row INSERT construct is not in SQLAlchemy's statement
    cache, and compiling one costs more than the round trip it saves)."""
    rows = ", ".join(
        "(" + ", ".join(f"CAST(:r{i}_{c.name} AS {c.type.compile(dialect=dialect)})" for c in _EVENTS.columns) + ")"
        for i in range(n)
    )
    sql = (
        f"WITH chained AS (INSERT INTO {_EVENTS.name} ({', '.join(_COLUMNS)}) VALUES {rows}) "
        f"UPDATE {_HEAD.name} SET last_hash = :new_hash WHERE id = {HEAD_ID}"
    )
    typed = [bindparam(f"r{i}_{c.name}", type_=c.type) for i in range(n) for c in _EVENTS.columns]
    return text(sql).bindparams(*typed, bindparam("new_hash", type_=_HEAD.c.last_hash.type))


def _utc(t: datetime) -> datetime:
    """Aware, in UTC, microseconds kept: what either database gives back (SQLite stores the
    wall-clock fields and hands them back naive, so anything else would hash differently)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def anchor(conn: Connection) -> Anchor:
    row = conn.execute(select(_HEAD).where(_HEAD.c.id == HEAD_ID)).one()
    return Anchor(anchor_id=row.anchor_id, anchor_hash=row.anchor_hash, head_id=row.last_id, head_hash=row.last_hash)


def rows_after(conn: Connection, *, after_id: int, limit: int, since: datetime | None = None) -> list[dict[str, Any]]:
    """Up to ``limit`` rows with id > ``after_id`` (and ``at`` >= ``since``), in id order."""
    q = select(_EVENTS).where(_EVENTS.c.id > after_id).order_by(_EVENTS.c.id).limit(limit)
    if since is not None:
        q = q.where(_EVENTS.c.at >= _utc(since))
    return [dict(r._mapping) for r in conn.execute(q)]


def last_id_of_page(conn: Connection, *, after_id: int, limit: int, since: datetime | None) -> int | None:
    """The id of the ``limit``-th row after ``after_id`` (or the last one): a page's end."""
    q = select(_EVENTS.c.id).where(_EVENTS.c.id > after_id).order_by(_EVENTS.c.id).limit(limit)
    if since is not None:
        q = q.where(_EVENTS.c.at >= _utc(since))
    return conn.execute(select(func.max(q.subquery().c.id))).scalar()


def purge_bound(conn: Connection, *, before: datetime) -> tuple[int, str, int] | None:
    """What a purge of the rows older than ``before`` removes: (through id, its hash, how many),
    the oldest rows up to the first that is not older, nor still waiting to be forwarded (an
    ``audit_outbox`` row: forwarding never loses an event to retention); None: nothing."""
    start = anchor(conn).anchor_id
    first_kept = conn.execute(
        select(func.min(_EVENTS.c.id)).where(_EVENTS.c.id > start, _EVENTS.c.at >= _utc(before))
    ).scalar()
    first_pending = conn.execute(select(func.min(_OUTBOX.c.event_id))).scalar()
    if first_pending is not None and (first_kept is None or first_pending < first_kept):
        first_kept = first_pending
    through = conn.execute(
        select(func.max(_EVENTS.c.id)).where(_EVENTS.c.id > start, *([_EVENTS.c.id < first_kept] if first_kept else []))
    ).scalar()
    if through is None:
        return None
    found = conn.execute(select(_EVENTS.c.hash).where(_EVENTS.c.id == through)).scalar_one()
    count = conn.execute(
        select(func.count()).select_from(_EVENTS).where(_EVENTS.c.id > start, _EVENTS.c.id <= through)
    ).scalar_one()
    return through, found, count


def purge_through(conn: Connection, *, through_id: int, anchor_hash: str) -> int:
    """Delete the rows up to ``through_id`` and make it the anchor; how many were deleted."""
    deleted = conn.execute(delete(_EVENTS).where(_EVENTS.c.id <= through_id)).rowcount
    conn.execute(
        update(_HEAD)
        .where(_HEAD.c.id == HEAD_ID, _HEAD.c.anchor_id < through_id)
        .values(anchor_id=through_id, anchor_hash=anchor_hash)
    )
    return deleted


__all__ = ["GENESIS", "anchor", "append", "link", "purge_bound", "purge_through", "rows_after"]
