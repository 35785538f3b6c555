"""The admin pages that read (server-rendered, for members of the admin groups; see
``broker.web.admin_session``): the accounts × groups matrix (/admin), the audit log
(/admin/audit), explain for a person (/admin/explain) and the access report (/admin/report, and
its CSV at /admin/report.csv, the admin API's own stream, authenticated by the portal session).

Thin, like the admin API: the work is the store's, the flow's and ``broker.reports.access``'s,
the same calls the API's handlers make. Pages are never cached and never framed; every error is a
page a person reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from broker.audit import AuditFilter, Outcome
from broker.errors import BadRequest, BrokerError, NotFound
from broker.reports.access import COLUMNS, ReportFilter, batched, csv_lines, membership_of, rows
from broker.web import admin_matrix
from broker.web.admin_session import AdminVisit, admin_visit
from broker.web.deps import services_of
from broker.web.pages import PAGE_HEADERS

router = APIRouter(prefix="/admin", include_in_schema=False, tags=["admin pages"])

Short = Annotated[str, Query(max_length=256)]
Name = Annotated[str, Query(max_length=1024)]
AUDIT_PAGE = 50
REPORT_ROWS = 200
OUTCOMES: tuple[str, ...] = get_args(Outcome)


@router.get("")
def matrix(request: Request, environment: Short = "", group: Name = "",
           page: Annotated[int, Query(ge=1, le=100000)] = 1) -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    services = services_of(request)
    try:
        snapshot = services.store.full_snapshot()
    except BrokerError as exc:
        return visit.error(exc)
    built = admin_matrix.build(snapshot, environment=environment, group=group, page=page)
    return visit.render("admin_matrix.html", title="Access matrix", nav="matrix", m=built,
                        max_columns=admin_matrix.MAX_COLUMNS, reason_href=admin_matrix.reason_href,
                        reason_label=admin_matrix.reason_label)


# ---- the audit log ----


def _when(value: str, label: str, problems: dict[str, str]) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        problems[label] = "not a date and time (2026-12-03T09:30, UTC unless it names its offset)"
        return None


@router.get("/audit")
def audit(
    request: Request,
    actor: Short = "",
    action: Short = "",
    target_type: Short = "",
    target_id: Short = "",
    outcome: Short = "",
    since: Short = "",
    until: Short = "",
    cursor: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    problems: dict[str, str] = {}
    start, end = _when(since, "since", problems), _when(until, "until", problems)
    if outcome and outcome not in OUTCOMES:
        problems["outcome"] = "one of: " + ", ".join(OUTCOMES)
    filters = {"actor": actor, "action": action, "target_type": target_type, "target_id": target_id,
               "outcome": outcome, "since": since, "until": until}
    items: list[dict[str, Any]] = []
    if not problems:
        flt = AuditFilter(actor.strip() or None, action.strip() or None, target_type.strip() or None,
                          target_id.strip() or None, outcome or None, start, end)
        try:
            items = services_of(request).store.audit_events(flt, limit=AUDIT_PAGE, before_id=cursor)
        except BrokerError as exc:
            return visit.error(exc)
    given = {k: v for k, v in filters.items() if v}
    older = (f"/admin/audit?{urlencode({**given, 'cursor': items[-1]['id']})}"
             if len(items) == AUDIT_PAGE else None)
    first = f"/admin/audit?{urlencode(given)}" if cursor is not None else None
    return visit.render("admin_audit.html", status=422 if problems else 200, title="Audit log", nav="audit",
                        f=filters, problems=problems, items=items, older=older, first=first, outcomes=OUTCOMES)


# ---- explain ----


@router.get("/explain")
def explain(request: Request, user: Short = "") -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    result: dict[str, Any] | None = None
    problem = ""
    status = 200
    if user.strip():
        try:
            result = services_of(request).flow.explain(user.strip()).to_dict()
        except (NotFound, BadRequest) as exc:
            problem, status = exc.message, exc.status
        except BrokerError as exc:
            return visit.error(exc)
    return visit.render("admin_explain.html", status=status, title="Explain", nav="explain", user_q=user,
                        result=result, problem=problem, reason_href=admin_matrix.reason_href)


# ---- the access report ----


def _report_filter(account: str, role: str, group: str, user: str) -> ReportFilter:
    return ReportFilter(account=account.strip() or None, role=role.strip() or None, group=group.strip() or None,
                        user=user.strip() or None)


@router.get("/report")
def report(request: Request, account: Name = "", role: Name = "", group: Name = "", user: Name = "") -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    services = services_of(request)
    filters = {"account": account, "role": role, "group": group, "user": user}
    given = {k: v for k, v in filters.items() if v.strip()}
    try:
        membership = membership_of(services.directory)
        snapshot = services.store.full_snapshot()
        shown: list[dict[str, Any]] = []
        more = False
        for row in rows(membership, snapshot, _report_filter(account, role, group, user), services.access_requests.active_grants()):
            if len(shown) == REPORT_ROWS:
                more = True
                break
            shown.append(row)
    except BadRequest as exc:
        return visit.render("admin_report.html", status=exc.status, title="Access report", nav="report", f=filters,
                            rows=[], more=False, csv_href="", problem=exc.message, columns=COLUMNS)
    except BrokerError as exc:
        return visit.error(exc)
    csv_href = "/admin/report.csv" + (f"?{urlencode(given)}" if given else "")
    return visit.render("admin_report.html", title="Access report", nav="report", f=filters, rows=shown, more=more,
                        limit=REPORT_ROWS, csv_href=csv_href, problem="", columns=COLUMNS,
                        reason_href=admin_matrix.reason_href)


@router.get("/report.csv")
def report_csv(request: Request, account: Name = "", role: Name = "", group: Name = "", user: Name = "") -> Response:
    """The admin API's CSV (``GET /api/v1/admin/reports/access?format=csv``), for the session."""
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    services = services_of(request)
    try:
        membership = membership_of(services.directory)
        snapshot = services.store.full_snapshot()
    except BrokerError as exc:
        return visit.error(exc)
    report_rows = rows(membership, snapshot, _report_filter(account, role, group, user), services.access_requests.active_grants())
    return StreamingResponse(
        batched(csv_lines(report_rows)), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="access-report.csv"',
                 "Cache-Control": PAGE_HEADERS["Cache-Control"], "X-Content-Type-Options": "nosniff"},
    )
