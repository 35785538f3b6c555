"""The access-review pages of the admin portal: the snapshots (/admin/reviews: the list, a form
to take one), a snapshot (/admin/reviews/{n}: its metadata and full hash, its CSV exactly as
stored, its attestations and a form to attest it) and what changed since (against now, or another
snapshot of the same filter), each change with its reasons and why.

Thin, like the admin API's ``broker.web.admin_reviews``: the same request models (``broker.web.review_requests``) validate the
forms, the same store calls do the work (audited ``review.snapshot`` / ``review.attest``, actor
``directory:<username>``), the directory is read here before the store's transaction. Session
auth for the admin groups and CSRF on every POST (``broker.web.admin_session``).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError

from broker.errors import BrokerError, UnknownSnapshot
from broker.reports.access import ReportFilter, membership_of
from broker.reports.review_snapshot import DECISIONS, MAX_COMMENT, csv_bytes
from broker.web.admin_forms import Problems, problems_of
from broker.web.admin_session import AdminVisit, admin_visit
from broker.web.deps import services_of
from broker.web.errors import validation_details
from broker.web.pages import PAGE_HEADERS
from broker.web.review_requests import AttestRequest, SnapshotRequest

router = APIRouter(prefix="/admin", include_in_schema=False, tags=["admin pages"])

MAX_NUMBER = 2**63 - 1
PAGE = 50
AGAINST_CHOICES = 100
"""How many recent snapshots the "changes since … up to" select offers."""
CHANGES_SHOWN = 500
"""The changes a page lists (the counts are of all of them; the API and ``broker review`` give every one)."""
FILTERS = ("account", "role", "group", "user")
Text = Annotated[str, Form(max_length=1024)]
Comment = Annotated[str, Form(max_length=4 * MAX_COMMENT)]  # longer than the model allows: refused beside the field
Ref = Annotated[str, Path(max_length=40)]
Against = Annotated[str, Query(max_length=40)]
CHANGE_LABELS = {"gained": "Gained", "lost": "Lost", "reason_changed": "Reason changed"}
CAUSE_LABELS = {"directory": "Directory", "mapping": "Mapping", "other": "Other"}
DECISION_LABELS = {"approved": "Approved", "changes_requested": "Changes requested", "rejected": "Rejected",
                   "noted": "Noted"}


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _number(ref: str) -> int:
    """"12" → 12; anything else (not a positive BIGINT): UnknownSnapshot."""
    if not ref.isascii() or not ref.isdigit() or len(ref) > 19 or not 1 <= int(ref) <= MAX_NUMBER:
        raise UnknownSnapshot(f"no access-review snapshot {ref!r}")
    return int(ref)


# ---- the list, and taking a snapshot ----


def _snapshot_problems(exc: ValidationError) -> Problems:
    """The API's messages (``SnapshotRequest``) beside the form's fields (``filter.account`` → account)."""
    found = Problems()
    for d in validation_details(exc.errors()):
        name = str(d["field"]).removeprefix("filter.")
        found.add(name if name in ("title", *FILTERS) else "", f"{d['message']} ({d['code']})")
    return found


def _list(visit: AdminVisit, *, cursor: int | None, form: dict[str, str], problems: Problems) -> Response:
    services = services_of(visit.request)
    limit = min(PAGE, services.config.admin.max_page_size)
    try:
        items = services.store.list_review_snapshots(limit=limit, before=cursor)
        latest = services.store.latest_review_attestations([i["id"] for i in items if i["attestations"]])
    except BrokerError as exc:
        return visit.error(exc)
    older = f"/admin/reviews?{urlencode({'cursor': items[-1]['id']})}" if len(items) == limit else None
    return visit.render("admin_reviews.html", status=problems.status if problems else 200, title="Access reviews",
                        nav="reviews", items=items, latest=latest, older=older, first=cursor is not None,
                        form=form, problems=problems, decision_labels=DECISION_LABELS)


@router.get("/reviews")
def reviews(request: Request, cursor: Annotated[int | None, Query(ge=0, le=MAX_NUMBER)] = None) -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    return _list(visit, cursor=cursor, form=dict.fromkeys(("title", *FILTERS), ""), problems=Problems())


@router.post("/reviews")
def take_snapshot(request: Request, csrf_token: Text = "", title: Text = "", account: Text = "", role: Text = "",
                  group: Text = "", user: Text = "") -> Response:
    visit = admin_visit(request, csrf_token=csrf_token)
    if not isinstance(visit, AdminVisit):
        return visit
    form = {"title": title, "account": account, "role": role, "group": group, "user": user}
    try:
        body = SnapshotRequest.model_validate(
            {"title": title.strip() or None, "filter": {k: form[k].strip() or None for k in FILTERS}})
    except ValidationError as exc:
        return _list(visit, cursor=None, form=form, problems=_snapshot_problems(exc))
    services = services_of(request)
    try:
        membership = membership_of(services.directory)
        made = services.store.create_review_snapshot(membership, ReportFilter(**body.filter.model_dump()), visit.ctx,
                                                     title=body.title)
    except BrokerError as exc:
        return _list(visit, cursor=None, form=form, problems=problems_of(exc, {"title", *FILTERS}))
    return _see(f"/admin/reviews/{made['id']}?taken=1")


# ---- one snapshot ----


@router.get("/reviews/{ref}.csv")
def snapshot_csv(request: Request, ref: Ref) -> Response:
    """The stored CSV, byte for byte (the API's ``?format=csv``), for the session."""
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    try:
        number = _number(ref)
        blob = services_of(request).store.review_snapshot_csv(number)
    except BrokerError as exc:
        return visit.error(exc)
    return StreamingResponse(
        csv_bytes(blob), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="access-review-{number}.csv"',
                 "Cache-Control": PAGE_HEADERS["Cache-Control"], "X-Content-Type-Options": "nosniff"},
    )


def _changes(visit: AdminVisit, number: int, against: str) -> tuple[dict[str, Any] | None, str, int]:
    """(the changes, a problem to show, its status): against "now" or another snapshot's number."""
    services = services_of(visit.request)
    try:
        if against == "now":
            return services.store.review_changes(number, membership=membership_of(services.directory)), "", 200
        return services.store.review_changes(number, against=_number(against)), "", 200
    except BrokerError as exc:  # another filter, an unknown snapshot, the directory down: said above the changes
        return None, f"{exc.message} ({exc.code})", exc.status


def _snapshot_page(visit: AdminVisit, number: int, *, against: str, form: dict[str, str], problems: Problems,
                   notice: str = "") -> Response:
    store = services_of(visit.request).store
    try:
        view = store.get_review_snapshot(number)
        recent = store.list_review_snapshots(limit=AGAINST_CHOICES)
    except BrokerError as exc:
        return visit.error(exc)
    others = [r for r in recent if r["id"] != number and (r["filter"] or {}) == (view["filter"] or {})]
    # a comparison only when asked for: against now reads the whole directory and recomputes the report
    diff, problem, status = _changes(visit, number, against) if against else (None, "", 200)
    if problems:
        status = problems.status
    return visit.render(
        "admin_review.html", status=status, title=f"Review snapshot {number}", nav="reviews", view=view,
        others=others, against=against or "now", compared=bool(against), diff=diff, problem=problem,
        form=form, problems=problems, notice=notice, decisions=DECISIONS, decision_labels=DECISION_LABELS,
        change_labels=CHANGE_LABELS, cause_labels=CAUSE_LABELS, max_comment=MAX_COMMENT, shown=CHANGES_SHOWN,
    )


@router.get("/reviews/{ref}")
def snapshot(request: Request, ref: Ref, against: Against = "",
             taken: Annotated[str, Query(max_length=8)] = "",
             attested: Annotated[str, Query(max_length=8)] = "") -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    try:
        number = _number(ref)
    except BrokerError as exc:
        return visit.error(exc)
    notice = "Snapshot taken." if taken else "Attestation saved." if attested else ""
    return _snapshot_page(visit, number, against=against, form={"decision": "", "comment": ""}, problems=Problems(),
                          notice=notice)


@router.post("/reviews/{ref}/attestations")
def attest(request: Request, ref: Ref, csrf_token: Text = "", decision: Text = "", comment: Comment = "") -> Response:
    visit = admin_visit(request, csrf_token=csrf_token)
    if not isinstance(visit, AdminVisit):
        return visit
    store = services_of(request).store
    try:
        number = _number(ref)
        store.get_review_snapshot(number)
    except BrokerError as exc:
        return visit.error(exc)
    form = {"decision": decision, "comment": comment}
    try:
        body = AttestRequest.model_validate({"decision": decision or None, "comment": comment})
        store.attest_review_snapshot(number, visit.ctx, decision=body.decision, comment=body.comment)
    except (ValidationError, BrokerError) as exc:
        return _snapshot_page(visit, number, against="", form=form, problems=problems_of(exc, {"decision", "comment"}))
    return _see(f"/admin/reviews/{number}?attested=1#attestations")
