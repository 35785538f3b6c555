"""Access reviews under /api/v1/admin/reviews: save the access report as a snapshot (who, when,
its SHA-256), download exactly what was saved, list what changed since (against now or another
snapshot) and why, and attest a snapshot. Thin: the work is the store's (``broker.db.reviews``);
the directory is read here, before the store's transaction. Sync routes: a worker thread each."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, RootModel

from broker.errors import UnknownSnapshot
from broker.reports.access import ReportFilter, batched, json_chunks, membership_of
from broker.reports.review_snapshot import csv_bytes, unpack_rows
from broker.web.admin_schema import COMMON, Timestamp, documented_error
from broker.web.deps import AdminDep, AuditCtx, ServicesDep
from broker.web.review_requests import AttestRequest, Decision, SnapshotRequest

router = APIRouter(prefix="/api/v1/admin/reviews", tags=["admin", "reviews"], responses=COMMON)

MAX_NUMBER = 2**63 - 1
Number = Annotated[int, Path(ge=1, le=MAX_NUMBER, description="the snapshot number")]
UNKNOWN: dict[int | str, dict[str, Any]] = {404: documented_error("unknown_snapshot: no snapshot of that number")}


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SnapshotMeta(_View):
    id: int = Field(description="the snapshot number")
    at: Timestamp
    actor: str = Field(description="who took it")
    request_id: str | None
    title: str | None
    filter: dict[str, str] = Field(description="the filters that were set (account, role, group, user)")
    mapping_version: int | None = Field(description="the mapping version current then (null: none yet)")
    rows: int
    people: int = Field(description="usable people the directory listed then")
    hash: str = Field(description="SHA-256 (hex) of the snapshot's CSV, exactly the bytes ?format=csv answers")
    csv_bytes: int


class SnapshotListItem(SnapshotMeta):
    attestations: int = Field(description="how many attestations it has")


class SnapshotPage(_View):
    items: list[SnapshotListItem]
    next_cursor: int | None = Field(description="pass as ?cursor= for the next (older) page; null on the last page")


class AttestationView(_View):
    id: int
    snapshot: int
    at: Timestamp
    actor: str = Field(description="who reviewed it")
    request_id: str | None
    decision: Decision | None
    comment: str


class SnapshotView(SnapshotMeta):
    attestations: list[AttestationView] = Field(description="oldest first")


class SnapshotRows(_View):
    columns: list[str]
    rows: list[dict[str, Any]] = Field(description="the access report's rows as saved (GET /reports/access's row shape)")
    count: int


class SnapshotAnswer(RootModel[SnapshotView | SnapshotRows]):
    """GET /reviews/snapshots/{n}: the metadata (no format), or the rows (format=json)."""


class Reason(_View):
    kind: Literal["mapping", "rule"]
    ref: str
    group: str
    via: str
    path: list[str]


class Explanation(_View):
    cause: Literal["directory", "mapping", "other"]
    event: str = Field(
        description="directory: left_group, joined_group, account_removed, account_added; mapping: created, "
        "deleted, updated, replaced; other: unexplained")
    text: str = Field(description="the explanation as a sentence")
    groups: list[str] | None = Field(default=None, description="directory: the groups of the reason's path")
    kind: str | None = Field(default=None, description="mapping: accounts, roles, mappings, org_mappings or rules")
    key: str | None = None
    object: str | None = Field(default=None, description="mapping: the object as the import plan names it")
    fields: list[str] | None = Field(default=None, description="mapping, updated: the fields that changed")
    versions: list[dict[str, Any]] | None = Field(
        default=None, description="mapping: the versions that changed it between the two sides (number, actor, at, via, op)")


class Change(_View):
    change: Literal["gained", "lost", "reason_changed"]
    user_id: str
    username: str
    account_id: str
    account_alias: str
    role_name: str
    role_arn: str
    why: list[Literal["directory", "mapping", "other"]]
    before: list[Reason]
    after: list[Reason]
    explanations: list[Explanation]


class Side(_View):
    snapshot: int | None = Field(description="null: the access report now")
    at: Timestamp | None
    mapping_version: int | None


class Changes(_View):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: Side = Field(alias="from")
    to: Side
    filter: dict[str, str]
    counts: dict[str, int] = Field(description="gained, lost, reason_changed")
    changes: list[Change]


@router.post(
    "/snapshots",
    summary="Save the access report now (optionally filtered) as a review snapshot; audited (review.snapshot)",
    status_code=201,
    response_model=SnapshotMeta,
)
def create_snapshot(body: SnapshotRequest, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    membership = membership_of(services.directory)
    flt = ReportFilter(**body.filter.model_dump())
    return services.store.create_review_snapshot(membership, flt, ctx, title=body.title)


@router.get("/snapshots", summary="The review snapshots, newest first, in pages", response_model=SnapshotPage)
def list_snapshots(
    _: AdminDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
    cursor: Annotated[int | None, Query(ge=0, le=MAX_NUMBER, description="the next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    limit = min(limit, services.config.admin.max_page_size)
    items = services.store.list_review_snapshots(limit=limit, before=cursor)
    return {"items": items, "next_cursor": items[-1]["id"] if len(items) == limit else None}


@router.get(
    "/snapshots/{number}",
    summary="A snapshot: its metadata and attestations; ?format=csv|json: its rows, exactly as saved",
    response_class=StreamingResponse,
    responses={
        **UNKNOWN,
        200: {
            "model": SnapshotAnswer,
            "description": "no format: the metadata (SnapshotView); format=json: the rows (SnapshotRows); "
            "format=csv: the CSV whose SHA-256 is the snapshot's hash",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    },
)
def get_snapshot(
    number: Number,
    _: AdminDep,
    services: ServicesDep,
    format: Annotated[Literal["csv", "json"] | None, Query(description="the rows instead of the metadata")] = None,
) -> Response:
    if format == "csv":
        blob = services.store.review_snapshot_csv(number)
        return StreamingResponse(
            csv_bytes(blob),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="access-review-{number}.csv"'},
        )
    if format == "json":
        blob = services.store.review_snapshot_rows(number)
        return StreamingResponse(batched(json_chunks(unpack_rows(blob))), media_type="application/json")
    return JSONResponse(SnapshotView.model_validate(services.store.get_review_snapshot(number)).model_dump(mode="json"))


@router.get(
    "/snapshots/{number}/changes",
    summary="Who gained or lost each role since the snapshot (against=now) or up to another snapshot, and why",
    response_model=Changes,
    response_model_by_alias=True,
    responses={
        **UNKNOWN,
        422: documented_error("invalid_input: the two snapshots were taken with different filters; invalid_value"),
    },
)
def snapshot_changes(
    number: Number,
    _: AdminDep,
    services: ServicesDep,
    against: Annotated[
        str, Query(pattern=r"^(now|[1-9][0-9]{0,18})$", description="now (default), or another snapshot's number")
    ] = "now",
) -> dict[str, Any]:
    if against == "now":
        services.store.get_review_snapshot(number)  # an unknown snapshot is a 404 before the directory is read
        membership = membership_of(services.directory)
        return services.store.review_changes(number, membership=membership)
    other = int(against)
    if other > MAX_NUMBER:
        raise UnknownSnapshot(f"no access-review snapshot {other}")
    return services.store.review_changes(number, against=other)


@router.post(
    "/snapshots/{number}/attestations",
    summary="Attest a snapshot: who reviewed it, when, a decision and a comment; audited (review.attest)",
    status_code=201,
    response_model=AttestationView,
    responses=UNKNOWN,
)
def attest_snapshot(number: Number, body: AttestRequest, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.attest_review_snapshot(number, ctx, decision=body.decision, comment=body.comment)

