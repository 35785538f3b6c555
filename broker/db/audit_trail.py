"""The audit trail as a whole: its chain verified, exported in id order, and purged behind an
anchor (``broker.db.chain`` for the rows, ``broker.audit_chain`` for the hashes).

Every function takes its connection explicitly; the store opens them (``SqlMappingStore``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from broker.audit import AuditContext, Decision, rfc3339
from broker.audit_chain import PURGE_ACTION, Report, verify
from broker.db import audit, chain

PAGE = 1000
"""Rows read per query by the walks (verify, export): memory stays flat."""


def snapshot(conn: Connection) -> None:
    """Make every read on ``conn`` see one state of the database (the chain head and the rows
    together, while writers go on): REPEATABLE READ on PostgreSQL, a read transaction on SQLite."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")


def check(conn: Connection, *, page: int = PAGE) -> Report:
    """The whole chain from its anchor, in id order, stopping at the first broken link."""
    anchor = chain.anchor(conn)
    return verify(_rows(conn, after_id=anchor.anchor_id, page=page), anchor)


def _rows(conn: Connection, *, after_id: int, page: int, through_id: int | None = None,
          since: datetime | None = None) -> Iterator[dict[str, Any]]:
    while True:
        rows = chain.rows_after(conn, after_id=after_id, limit=page, since=since)
        for row in rows:
            if through_id is not None and row["id"] > through_id:
                return
            yield row
        if len(rows) < page:
            return
        after_id = rows[-1]["id"]


def export_end(conn: Connection, *, after_id: int, limit: int, since: datetime | None) -> int:
    """The last id of an export page (``after_id`` when the page is empty): its next cursor."""
    end = chain.last_id_of_page(conn, after_id=after_id, limit=limit, since=since)
    return after_id if end is None else end


def export_page(conn: Connection, *, after_id: int, through_id: int, since: datetime | None,
                page: int = PAGE) -> Iterator[dict[str, Any]]:
    """The rows after ``after_id`` up to ``through_id``, as the export answers them."""
    for row in _rows(conn, after_id=after_id, page=page, through_id=through_id, since=since):
        yield audit.chained_dict(row)


def purge(conn: Connection, *, retention_days: int, ctx: AuditContext, now: datetime, dry_run: bool) -> dict[str, Any]:
    """Delete the rows older than ``retention_days`` (from the oldest, up to the first that is
    not older), keep the last one's id and hash as the anchor and write an ``audit.purge`` event,
    chained, in the same transaction. A dry run says what it would delete and writes nothing."""
    before = now - timedelta(days=retention_days)
    current = chain.anchor(conn)
    bound = chain.purge_bound(conn, before=before)
    through_id, anchor_hash, rows = bound if bound else (current.anchor_id, current.anchor_hash, 0)
    result: dict[str, Any] = {
        "dry_run": dry_run,
        "retention_days": retention_days,
        "before": rfc3339(before),
        "rows": rows,
        "through_id": through_id,
        "anchor_hash": anchor_hash,
    }
    if dry_run:
        return result
    if bound:
        result["rows"] = chain.purge_through(conn, through_id=through_id, anchor_hash=anchor_hash)
    details = {k: result[k] for k in ("rows", "through_id", "anchor_hash", "retention_days", "before")}
    audit.record_decisions(conn, [Decision(ctx, PURGE_ACTION, "allow", target_type="audit", details=details)])
    return result
