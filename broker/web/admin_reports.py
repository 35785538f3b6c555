"""GET /api/v1/admin/reports/access: the access report (``broker.reports.access``), as CSV or JSON,
streamed. The directory and the mapping are read before the first byte (an outage is a 503 with
its code); the rows are then produced as they are sent, so memory stays flat."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from broker.reports.access import ReportFilter, batched, csv_lines, json_chunks, membership_of, rows
from broker.web.admin_schema import COMMON
from broker.web.deps import AdminDep, ServicesDep

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=COMMON)
Name = Annotated[str | None, Query(min_length=1, max_length=1024)]


class AccessReportRow(BaseModel):
    """One (person, role, reason); the README's access report section explains each column."""

    account_id: str
    account_alias: str
    environment: str
    role_name: str
    role_arn: str
    username: str
    user_id: str
    display_name: str
    email: str
    group: str
    path: list[str]
    kind: Literal["mapping", "rule"]
    ref: str
    via: str
    console: bool
    cli: bool
    session_cap: int
    role_session_name: str
    source_identity: str


class AccessReport(BaseModel):
    columns: list[str]
    rows: list[AccessReportRow]
    count: int


@router.get(
    "/reports/access",
    summary="Who can assume each role, through which group (nested path), granted by which mapping or rule",
    response_class=StreamingResponse,
    responses={
        200: {
            "model": AccessReport,
            "description": "the report (application/json, or text/csv with ?format=csv: the same columns)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
def access_report(
    _: AdminDep,
    services: ServicesDep,
    account: Annotated[Name, Query(description="12-digit account id or alias")] = None,
    role: Annotated[Name, Query(description="role name or role ARN")] = None,
    group: Annotated[Name, Query(description="rows whose membership path passes through this group")] = None,
    user: Annotated[Name, Query(description="username or immutable id")] = None,
    format: Literal["json", "csv"] = "json",
) -> StreamingResponse:
    """Computed from the directory (every usable account, nested groups) and the whole mapping.
    A filter that names nothing gives an empty report. Runs in a worker thread (a sync route)."""
    membership = membership_of(services.directory)
    snapshot = services.store.full_snapshot()
    report = rows(membership, snapshot, ReportFilter(account=account, role=role, group=group, user=user),
                  services.access_requests.active_grants())
    if format == "csv":
        return StreamingResponse(
            batched(csv_lines(report)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="access-report.csv"'},
        )
    return StreamingResponse(batched(json_chunks(report)), media_type="application/json")
