"""The mapping's history under /api/v1/admin/history: the numbered versions (every change to the
mapping: admin writes, imports, restores, the config sync), one version's whole document, the diff
of two versions, and a restore, which is an import of that version's document (a dry run first,
then applied with its plan hash). Thin: the work is the store's (``broker.db.history``)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from broker.mapping.model import MappingDocument
from broker.mapping.plans import apply_check
from broker.web.admin_schema import COMMON, NOT_FOUND, Timestamp, documented_error
from broker.web.deps import AdminDep, AuditCtx, ServicesDep
from broker.web.import_plans import plan_response

router = APIRouter(prefix="/api/v1/admin/history", tags=["admin", "history"], responses=COMMON)

MAX_NUMBER = 2**63 - 1
Number = Annotated[int, Path(ge=1, le=MAX_NUMBER, description="the version number")]


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


Summary = dict[str, dict[str, int]]


class VersionMeta(_View):
    number: int
    at: Timestamp
    actor: str = Field(
        description="who made the change: the admin, config-file (the config sync), history (baseline)"
    )
    via: Literal["api", "import", "restore", "config-sync", "baseline"]
    request_id: str | None
    details: dict[str, Any] | None = Field(description="restore: {restored_from: N}; baseline: a note")
    summary: Summary = Field(
        description="per kind (accounts, roles, mappings, rules): created, updated, deleted"
    )
    changes: int


class VersionPage(_View):
    items: list[VersionMeta]
    next_cursor: int | None = Field(
        description="pass as ?cursor= for the next (older) page; null on the last page"
    )


class VersionView(VersionMeta):
    diff: dict[str, Any] = Field(description="the change from the version before (see /history/diff)")
    document: dict[str, Any] = Field(description="the whole mapping document as it was (GET /export's shape)")


class VersionDiff(_View):
    from_: int = Field(alias="from")
    to: int
    changes: int
    summary: Summary
    diff: dict[str, Any] = Field(
        description="per kind: created [{key, label, after}], updated [{key, label, changes: {field: {before, after}}, "
        "after}], deleted [{key, label, before}]"
    )


class KindChanges(_View):
    create: list[dict[str, Any]]
    update: list[dict[str, Any]]
    delete: list[dict[str, Any]]
    release: list[dict[str, Any]]
    unchanged: int


class RestorePlan(_View):
    """The import plan of a restore (POST /import's answer)."""

    applied: bool
    changes: int
    conflicts: list[str]
    notices: list[str] = Field(
        description="what the restore leaves as it is and why (configuration-file objects)"
    )
    accounts: KindChanges
    roles: KindChanges
    mappings: KindChanges
    rules: KindChanges
    org_mappings: KindChanges
    deletes: int
    plan_hash: str = Field(description="apply with ?apply=true&plan_hash=... to apply exactly this plan")


@router.get("/versions", summary="The mapping's versions, newest first, in pages", response_model=VersionPage)
def list_versions(
    _: AdminDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
    cursor: Annotated[
        int | None, Query(ge=0, le=MAX_NUMBER, description="the next_cursor of the previous page")
    ] = None,
) -> dict[str, Any]:
    limit = min(limit, services.config.admin.max_page_size)
    items = services.store.list_versions(limit=limit, before=cursor)
    return {"items": items, "next_cursor": items[-1]["number"] if len(items) == limit else None}


@router.get(
    "/versions/{number}",
    summary="One version: who, when, its diff, and the whole mapping document then",
    response_model=VersionView,
    responses=NOT_FOUND,
)
def get_version(number: Number, _: AdminDep, services: ServicesDep) -> dict[str, Any]:
    return services.store.get_version(number)


@router.get(
    "/versions/{number}/document",
    summary="A version's mapping document alone, as YAML (or JSON), like GET /export",
    response_class=Response,
    responses={
        **NOT_FOUND,
        200: {
            "model": MappingDocument,
            "description": "the mapping document (YAML, or JSON with ?format=json)",
            "content": {"application/yaml": {"schema": {"$ref": "#/components/schemas/MappingDocument"}}},
        },
    },
)
def version_document(
    number: Number, _: AdminDep, services: ServicesDep, format: Literal["yaml", "json"] = "yaml"
) -> Response:
    data = services.store.version_document(number)
    if format == "json":
        return Response(json.dumps(data, indent=2), media_type="application/json")
    return Response(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), media_type="application/yaml")


@router.get(
    "/diff",
    summary="What changed from one version to another (0: the empty mapping before the first)",
    response_model=VersionDiff,
    response_model_by_alias=True,
    responses=NOT_FOUND,
)
def diff_versions(
    _: AdminDep,
    services: ServicesDep,
    from_: Annotated[int, Query(alias="from", ge=0, le=MAX_NUMBER)],
    to: Annotated[int, Query(ge=0, le=MAX_NUMBER)],
) -> dict[str, Any]:
    return services.store.diff_versions(from_, to)


@router.post(
    "/versions/{number}/restore",
    summary="Restore a version: a dry-run import plan by default, ?apply=true&plan_hash=... applies it",
    description=(
        "Restoring is an import of the version's document: the plan shows what it creates, updates and deletes. "
        "Objects declared in the configuration file are left as the file declares them (a notice names each one "
        "that differs from the version); objects the file declared then and no longer declares are not brought "
        "back. A version that names an account removed since is refused (restore_account_removed). Deleting "
        "objects the version does not have needs allow_deletes=true, as for an import."
    ),
    responses={
        **NOT_FOUND,
        200: {
            "model": RestorePlan,
            "description": "the plan (JSON), or with format=text as readable lines",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        409: documented_error(
            "restore_account_removed (the version names an account removed since), conflict (plan_hash: the mapping "
            "changed since that dry run), deletes_not_allowed (apply with allow_deletes=true), read_only"
        ),
        422: documented_error(
            "invalid_import: the restored document has dangling references, or fails today's validation"
        ),
    },
)
async def restore_version(
    number: Number,
    ctx: AuditCtx,
    services: ServicesDep,
    apply: bool = False,
    plan_hash: Annotated[
        str | None, Query(description="apply only if the plan is still the one this dry run showed")
    ] = None,
    allow_deletes: Annotated[
        bool, Query(description="let the restore delete API objects the version does not have")
    ] = False,
    format: Annotated[
        Literal["json", "text"], Query(description="the plan as JSON, or as readable lines")
    ] = "json",
) -> Response:
    if not apply:
        return await run_in_threadpool(lambda: plan_response(services.store.plan_restore(number), format))
    check = apply_check(expected_hash=plan_hash, allow_deletes=allow_deletes)
    return await run_in_threadpool(
        lambda: plan_response(services.store.apply_restore(number, ctx, check=check), format)
    )
