"""`broker audit verify|export|purge`: the audit trail of the configured database (README "Audit
trail"). Only a database that exists and is migrated is looked at (``broker.cli.existing_database``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import IO

from broker.audit import AuditContext
from broker.audit_chain import Report, decode_cursor, encode_cursor, export_line
from broker.cli.existing_database import usable_store
from broker.config import Config
from broker.errors import InvalidCursor, RetentionNotConfigured


def verify(config: Config) -> Report:
    with usable_store(config) as store:
        return store.verify_audit()


def verify_text(report: Report, *, as_json: bool) -> str:
    if as_json:
        return json.dumps(report.as_dict(), indent=2)
    span = f" (ids {report.first_id}..{report.last_id})" if report.checked else ""
    if report.broken is None:
        return f"audit chain intact: {report.checked} row(s) checked{span}; last hash {report.last_hash}"
    b = report.broken
    return "\n".join([
        f"audit chain BROKEN at id {b.id} ({b.kind}): {b.message}",
        f"  expected: {b.expected}",
        f"  found:    {b.found}",
        f"  {report.checked} row(s) before it are intact{span}",
    ])


def export(config: Config, *, out: IO[str], since: datetime | None, cursor: str | None, limit: int) -> str:
    """Write one page of the export to ``out``; the cursor that continues after it."""
    after_id = 0
    if cursor is not None:
        decoded = decode_cursor(cursor)
        if decoded is None:
            raise InvalidCursor()
        after_id = decoded
    with usable_store(config) as store:
        end, rows = store.export_audit(after_id=after_id, limit=limit, since=since)
        for row in rows:
            out.write(export_line(row))
    return encode_cursor(end)


def purge(config: Config, *, dry_run: bool, actor: str) -> str:
    days = config.audit.retention_days
    if days is None:
        raise RetentionNotConfigured()
    with usable_store(config) as store:
        result = store.purge_audit(retention_days=days, ctx=AuditContext(actor=actor), dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    return (f"{verb} {result['rows']} audit row(s) older than {result['before']} ({days} days); "
            f"anchor: id {result['through_id']} {result['anchor_hash']}")
