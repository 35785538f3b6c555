"""The audit trail over the admin API: the export (JSON Lines, oldest first, with a cursor), the
chain's verification and the retention purge (README "Audit trail"). The work is the store's
(``broker.db.audit_trail``); the export streams its rows a page at a time, so memory stays flat."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from broker.audit_chain import decode_cursor, encode_cursor, export_line
from broker.errors import InvalidCursor, RetentionNotConfigured
from broker.web.admin_schema import COMMON, AuditLine, AuditPurge, ChainReport, documented_error
from broker.web.deps import AdminDep, AuditCtx, ServicesDep

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=COMMON)

NEXT_CURSOR = "X-Next-Cursor"


@router.get(
    "/audit/export",
    summary="The audit trail as JSON Lines, oldest first, with its hash chain; continue with X-Next-Cursor",
    response_class=StreamingResponse,
    responses={
        200: {
            "model": AuditLine,
            "description": (
                "application/x-ndjson: one AuditLine per line, ascending id; the `X-Next-Cursor` header "
                "continues after the last line (fewer lines than `limit`: caught up; poll again with it later)"
            ),
            "content": {"application/x-ndjson": {"schema": {"$ref": "#/components/schemas/AuditLine"}}},
            "headers": {NEXT_CURSOR: {"description": "pass as ?cursor= for the next page", "schema": {"type": "string"}}},
        },
        422: documented_error("invalid_cursor: not a cursor this broker gave; invalid_type, invalid_value"),
    },
)
def export_audit(
    _: AdminDep,
    services: ServicesDep,
    since: Annotated[datetime | None, Query(description="only events at or after this time (RFC 3339)")] = None,
    cursor: Annotated[str | None, Query(max_length=64, description="the X-Next-Cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000, description="lines at most in this page")] = 10_000,
) -> StreamingResponse:
    after_id = 0
    if cursor is not None:
        decoded = decode_cursor(cursor)
        if decoded is None:
            raise InvalidCursor()
        after_id = decoded
    end, rows = services.store.export_audit(after_id=after_id, limit=limit, since=since)
    return StreamingResponse(
        (export_line(row) for row in rows),
        media_type="application/x-ndjson",
        headers={NEXT_CURSOR: encode_cursor(end), "Cache-Control": "no-store"},
    )


@router.get("/audit/verify", summary="Check the audit trail's hash chain from its anchor to its head",
            response_model=ChainReport)
def verify_audit(_: AdminDep, services: ServicesDep) -> dict[str, Any]:
    return services.store.verify_audit().as_dict()


@router.post(
    "/audit/purge",
    summary="Delete the audit rows older than audit.retention_days (oldest first, behind a chain anchor; audited)",
    response_model=AuditPurge,
    responses={409: documented_error("retention_not_configured: audit.retention_days is not set")},
)
def purge_audit(
    ctx: AuditCtx,
    services: ServicesDep,
    dry_run: Annotated[bool, Query(description="only say what would be deleted")] = False,
) -> dict[str, Any]:
    days = services.config.audit.retention_days
    if days is None:
        raise RetentionNotConfigured()
    return services.store.purge_audit(retention_days=days, ctx=ctx, dry_run=dry_run)
