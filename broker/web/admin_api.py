"""The admin API under /api/v1/admin: accounts, roles, mappings, naming rules, explain,
export/import, the AWS side of the trust (aws-setup; the doctor, ``broker.aws.doctor``, cached)
and the audit log. Thin: validation is the mapping model's, work is the store's. Every route
declares its response model and the error statuses it can answer (broker.web.admin_schema)."""

from __future__ import annotations

import json
from datetime import datetime
from email.message import Message
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from broker.audit import AuditFilter, Outcome
from broker.aws import cloudformation
from broker.aws.doctor_report import as_json
from broker.aws.setup_output import SetupFormat, account_files, stackset_file
from broker.aws.stackset import groups as stackset_groups
from broker.aws.stackset import template as stackset_template
from broker.aws.trust import BrokerSide, plan
from broker.errors import (
    InvalidInput,
    UnsupportedMediaType,
)
from broker.mapping.document_parse import parse_document
from broker.mapping.model import AccountFields, AccountSpec, MappingDocument, MappingSpec, RoleSpec, RuleSpec
from broker.mapping.plans import apply_check
from broker.web.admin_schema import (
    COMMON,
    CONFLICT,
    NOT_FOUND,
    WRITE_422,
    AccountView,
    AuditPage,
    AwsSetup,
    DoctorReport,
    Explanation,
    MappingPage,
    MappingView,
    PlacementView,
    Responses,
    RoleView,
    RuleView,
    documented_error,
)
from broker.web.deps import AdminDep, AuditCtx, ServicesDep
from broker.web.errors import validation_response
from broker.web.import_plans import plan_response

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=COMMON)

MAX_ID = 2**63 - 1  # the database's BIGINT: a larger id is a 422, not a driver overflow
MappingId = Annotated[int, Path(ge=1, le=MAX_ID)]
PatchBody = Annotated[dict[str, Any], Body(description="the fields to change; the others keep their values")]
NO_CONTENT: Responses = {204: {"description": "deleted"}}
READ = NOT_FOUND
WRITE: Responses = {**NOT_FOUND, **CONFLICT, **WRITE_422}

# ---- accounts ----


@router.get("/accounts", summary="List registered AWS accounts", response_model=list[AccountView])
def list_accounts(_: AdminDep, services: ServicesDep) -> list[dict[str, Any]]:
    return services.store.list_accounts()


@router.post("/accounts", status_code=201, summary="Register an AWS account (optionally with its roles)",
             response_model=AccountView, responses={**CONFLICT, **WRITE_422})
def create_account(spec: AccountSpec, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.create_account(spec, ctx)


@router.get("/accounts/{account}", summary="One account, by 12-digit id or alias", response_model=AccountView,
            responses=READ)
def get_account(account: str, _: AdminDep, services: ServicesDep) -> dict[str, Any]:
    return services.store.get_account(account)


@router.put("/accounts/{account}", summary="Replace an account's fields", response_model=AccountView, responses=WRITE)
def replace_account(account: str, fields: AccountFields, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.update_account(account, fields, ctx)


@router.patch("/accounts/{account}", summary="Change some of an account's fields (one transaction)",
              response_model=AccountView, responses=WRITE)
def patch_account(account: str, patch: PatchBody, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.patch_account(account, patch, ctx)


@router.delete("/accounts/{account}", status_code=204, summary="Remove an account (it must have no roles)",
               response_class=Response, responses={**NO_CONTENT, **NOT_FOUND, **CONFLICT})
def delete_account(account: str, ctx: AuditCtx, services: ServicesDep) -> Response:
    services.store.delete_account(account, ctx)
    return Response(status_code=204)


# ---- roles ----


@router.get("/accounts/{account}/roles", summary="An account's roles", response_model=list[RoleView], responses=READ)
def list_roles(account: str, _: AdminDep, services: ServicesDep) -> list[dict[str, Any]]:
    return services.store.list_roles(account)


@router.post("/accounts/{account}/roles", status_code=201, summary="Register a role in an account",
             response_model=RoleView, responses={**CONFLICT, **WRITE_422})
def create_role(account: str, spec: RoleSpec, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.create_role(account, spec, ctx)


@router.get("/accounts/{account}/roles/{role}", summary="One role (the name ignores case)", response_model=RoleView,
            responses=READ)
def get_role(account: str, role: str, _: AdminDep, services: ServicesDep) -> dict[str, Any]:
    return services.store.get_role(account, role)


@router.put("/accounts/{account}/roles/{role}", summary="Replace a role's fields", response_model=RoleView,
            responses=WRITE)
def replace_role(account: str, role: str, spec: RoleSpec, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.update_role(account, role, spec, ctx)


@router.patch("/accounts/{account}/roles/{role}", summary="Change some of a role's fields (one transaction)",
              response_model=RoleView, responses=WRITE)
def patch_role(account: str, role: str, patch: PatchBody, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.patch_role(account, role, patch, ctx)


@router.delete("/accounts/{account}/roles/{role}", status_code=204, summary="Remove a role (no mapping may use it)",
               response_class=Response, responses={**NO_CONTENT, **NOT_FOUND, **CONFLICT})
def delete_role(account: str, role: str, ctx: AuditCtx, services: ServicesDep) -> Response:
    services.store.delete_role(account, role, ctx)
    return Response(status_code=204)


# ---- mappings ----


@router.get("/mappings", summary="Group-to-role mappings, filtered, in pages", response_model=MappingPage)
def list_mappings(
    _: AdminDep,
    services: ServicesDep,
    group: str | None = None,
    account: str | None = None,
    role: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
    cursor: Annotated[int | None, Query(ge=0, le=MAX_ID, description="the next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    limit = min(limit, services.config.admin.max_page_size)
    items = services.store.list_mappings(group=group, account=account, role=role, limit=limit, after_id=cursor)
    return {"items": items, "next_cursor": items[-1]["id"] if len(items) == limit else None}


@router.post("/mappings", status_code=201, summary="Map a directory group to an account role",
             response_model=MappingView, responses={**CONFLICT, **WRITE_422})
def create_mapping(spec: MappingSpec, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.create_mapping(spec, ctx)


@router.get("/mappings/{mapping_id}", summary="One mapping", response_model=MappingView, responses=READ)
def get_mapping(mapping_id: MappingId, _: AdminDep, services: ServicesDep) -> dict[str, Any]:
    return services.store.get_mapping(mapping_id)


@router.put("/mappings/{mapping_id}", summary="Replace a mapping", response_model=MappingView, responses=WRITE)
def replace_mapping(mapping_id: MappingId, spec: MappingSpec, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.update_mapping(mapping_id, spec, ctx)


@router.patch("/mappings/{mapping_id}", summary="Change some of a mapping's fields (one transaction)",
              response_model=MappingView, responses=WRITE)
def patch_mapping(mapping_id: MappingId, patch: PatchBody, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.patch_mapping(mapping_id, patch, ctx)


@router.delete("/mappings/{mapping_id}", status_code=204, summary="Remove a mapping", response_class=Response,
               responses={**NO_CONTENT, **NOT_FOUND, **CONFLICT})
def delete_mapping(mapping_id: MappingId, ctx: AuditCtx, services: ServicesDep) -> Response:
    services.store.delete_mapping(mapping_id, ctx)
    return Response(status_code=204)


# ---- org mappings: accounts: an OU or a tag (their own id space) ----


@router.get("/org-mappings", summary="Mappings that target an OU or an account tag (accounts:)",
            response_model=list[MappingView])
def list_org_mappings(_: AdminDep, services: ServicesDep, group: str | None = None) -> list[dict[str, Any]]:
    return services.store.list_org_mappings(group=group)


@router.post("/org-mappings", status_code=201, summary="Map a directory group to a role in every account of an OU or "
             "with a tag", response_model=MappingView, responses={**CONFLICT, **WRITE_422})
def create_org_mapping(spec: MappingSpec, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.create_org_mapping(spec, ctx)


@router.get("/org-mappings/{mapping_id}", summary="One org mapping", response_model=MappingView, responses=READ)
def get_org_mapping(mapping_id: MappingId, _: AdminDep, services: ServicesDep) -> dict[str, Any]:
    return services.store.get_org_mapping(mapping_id)


@router.put("/org-mappings/{mapping_id}", summary="Replace an org mapping", response_model=MappingView,
            responses=WRITE)
def replace_org_mapping(
    mapping_id: MappingId, spec: MappingSpec, ctx: AuditCtx, services: ServicesDep
) -> dict[str, Any]:
    return services.store.update_org_mapping(mapping_id, spec, ctx)


@router.patch("/org-mappings/{mapping_id}", summary="Change some of an org mapping's fields (one transaction)",
              response_model=MappingView, responses=WRITE)
def patch_org_mapping(mapping_id: MappingId, patch: PatchBody, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.patch_org_mapping(mapping_id, patch, ctx)


@router.delete("/org-mappings/{mapping_id}", status_code=204, summary="Remove an org mapping", response_class=Response,
               responses={**NO_CONTENT, **NOT_FOUND, **CONFLICT})
def delete_org_mapping(mapping_id: MappingId, ctx: AuditCtx, services: ServicesDep) -> Response:
    services.store.delete_org_mapping(mapping_id, ctx)
    return Response(status_code=204)


@router.get("/org-placements", summary="Where the last `broker org discover --apply` found each registered account "
            "(what org mappings resolve against)", response_model=list[PlacementView])
def list_org_placements(_: AdminDep, services: ServicesDep) -> list[dict[str, Any]]:
    return services.store.list_placements()


# ---- naming rules ----


@router.get("/rules", summary="Naming rules (regular expressions over group names)", response_model=list[RuleView])
def list_rules(_: AdminDep, services: ServicesDep) -> list[dict[str, Any]]:
    return services.store.list_rules()


@router.post("/rules", status_code=201, summary="Add a naming rule", response_model=RuleView,
             responses={**CONFLICT, **WRITE_422})
def create_rule(spec: RuleSpec, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.create_rule(spec, ctx)


@router.get("/rules/{name}", summary="One naming rule", response_model=RuleView, responses=READ)
def get_rule(name: str, _: AdminDep, services: ServicesDep) -> dict[str, Any]:
    return services.store.get_rule(name)


@router.put("/rules/{name}", summary="Replace a naming rule (it cannot be renamed)", response_model=RuleView,
            responses=WRITE)
def replace_rule(name: str, spec: RuleSpec, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.update_rule(name, spec, ctx)


@router.patch("/rules/{name}", summary="Change some of a naming rule's fields (one transaction)",
              response_model=RuleView, responses=WRITE)
def patch_rule(name: str, patch: PatchBody, ctx: AuditCtx, services: ServicesDep) -> dict[str, Any]:
    return services.store.patch_rule(name, patch, ctx)


@router.delete("/rules/{name}", status_code=204, summary="Remove a naming rule", response_class=Response,
               responses={**NO_CONTENT, **NOT_FOUND, **CONFLICT})
def delete_rule(name: str, ctx: AuditCtx, services: ServicesDep) -> Response:
    services.store.delete_rule(name, ctx)
    return Response(status_code=204)


# ---- explain ----


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(min_length=1, max_length=256)]
    groups: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=5000)] | None = None
    """Omitted: the user's groups are read from the directory (nested included)."""


@router.post("/explain", summary="Which roles would this user get, and why (groups given, or read from the directory)",
             response_model=Explanation,
             responses={**NOT_FOUND, 400: COMMON[400] | {"description": "bad_request: no directory to read the groups from"}})
def explain(body: ExplainRequest, _: AdminDep, services: ServicesDep) -> dict[str, Any]:
    return services.flow.explain(body.username, body.groups).to_dict()


# ---- doctor ----


@router.get("/doctor", summary="Whether each account's IAM provider and roles let the broker in (read-only IAM checks)",
            response_model=DoctorReport, responses=READ)
def doctor(
    _: AdminDep,
    services: ServicesDep,
    account: Annotated[list[str] | None, Query(description="account ids or aliases (repeat it); default: all")] = None,
) -> dict[str, Any]:
    """``broker doctor --json``'s document; each account's report is reused for ``doctor.cache_seconds``."""
    broker = services.doctor.broker
    trusts = plan(services.store.full_snapshot(), broker, account or ())
    return as_json(services.doctor.reports(trusts))


# ---- export / import ----


@router.get(
    "/export",
    summary="The whole mapping as YAML (or JSON)",
    response_class=Response,
    responses={200: {"model": MappingDocument, "description": "the mapping document (YAML, or JSON with ?format=json)",
                     "content": {"application/yaml": {"schema": {"$ref": "#/components/schemas/MappingDocument"}}}}},
)
def export(
    _: AdminDep,
    services: ServicesDep,
    source: Literal["all", "config", "api"] = "all",
    format: Literal["yaml", "json"] = "yaml",
) -> Response:
    doc = services.store.export(source=None if source == "all" else source)
    data = doc.model_dump(mode="json", exclude_defaults=False)
    if format == "json":
        return Response(json.dumps(data, indent=2), media_type="application/json")
    return Response(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), media_type="application/yaml")


_YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
_JSON_TYPES = frozenset({"application/json", "text/json"})
MAX_REPORTED_PROBLEMS = 100


def _import_syntax(content_type: str | None) -> Literal["yaml", "json"]:
    """The parser a Content-Type asks for: YAML when none is given; anything else is a 415."""
    if content_type is None or not content_type.strip():
        return "yaml"
    header = Message()
    header["content-type"] = content_type
    media, charset = header.get_content_type(), str(header.get_param("charset") or "utf-8").lower()
    if charset not in ("utf-8", "utf8", "us-ascii"):
        raise UnsupportedMediaType(f"an import document is UTF-8, not {charset}")
    if media in _JSON_TYPES or media.endswith("+json"):
        return "json"
    if media in _YAML_TYPES or media.endswith("+yaml"):
        return "yaml"
    raise UnsupportedMediaType(
        f"an import document is YAML (application/yaml) or JSON (application/json), not {media}"
    )


def _read_document(raw: bytes, syntax: Literal["yaml", "json"]) -> MappingDocument | list[dict[str, Any]]:
    """Parse and validate (in a worker thread): the document, or the first validation problems."""
    data = parse_document(raw, syntax)
    try:
        return MappingDocument.model_validate(data)
    except ValidationError as exc:
        return [
            {**e, "loc": ("document", *e["loc"])} for e in exc.errors(include_input=False)[:MAX_REPORTED_PROBLEMS]
        ]


def _import_schema() -> dict[str, Any]:
    """The mapping document's JSON schema with its definitions inlined (the OpenAPI operation
    cannot carry ``$defs``), so schemathesis and clients see the body for what it is."""
    schema = MappingDocument.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items() if k != "discriminator"}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


_IMPORT_SCHEMA = _import_schema()


@router.post(
    "/import",
    summary="Import a mapping document: a dry-run diff by default, ?apply=true applies it atomically",
    description=(
        "The body is the whole mapping (as GET /export gives it), YAML (`application/yaml`, also when no "
        "Content-Type is given) or JSON (`application/json`), UTF-8. Objects of the API the document does "
        "not mention are deleted: applying such a plan needs `allow_deletes=true`. `format=text` answers "
        "the plan as readable lines (`+` create, `~` update, `-` delete)."
    ),
    responses={
        200: {"description": "the plan (JSON), or with format=text as readable lines",
              "content": {"text/plain": {"schema": {"type": "string"}}}},
        409: documented_error("read_only (it would change objects of the configuration file), conflict (plan_hash: the mapping "
                    "changed since that dry run), deletes_not_allowed (apply with allow_deletes=true)"),
        415: documented_error("unsupported_media_type: the body is neither YAML nor JSON"),
        422: documented_error("invalid_import: the document cannot be read, or has dangling or duplicate references"),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/yaml": {"schema": _IMPORT_SCHEMA}, "application/json": {"schema": _IMPORT_SCHEMA}},
        }
    },
)
async def import_mapping(
    request: Request,
    ctx: AuditCtx,
    services: ServicesDep,
    apply: bool = False,
    plan_hash: Annotated[str | None, Query(description="apply only if the plan is still the one this dry run showed")] = None,
    allow_deletes: Annotated[bool, Query(description="let the import delete API objects the document does not mention")] = False,
    format: Annotated[Literal["json", "text"], Query(description="the plan as JSON, or as readable lines")] = "json",
) -> Any:
    syntax = _import_syntax(request.headers.get("content-type"))
    raw = await request.body()
    # Off the event loop, and capped (depth, nodes, digits): /healthz and issuance go on meanwhile.
    doc = await run_in_threadpool(_read_document, raw, syntax)
    if isinstance(doc, list):
        return validation_response(request, doc)

    if not apply:
        return await run_in_threadpool(lambda: plan_response(services.store.plan_import(doc), format))

    check = apply_check(expected_hash=plan_hash, allow_deletes=allow_deletes)
    return await run_in_threadpool(lambda: plan_response(services.store.apply_import(doc, ctx, check=check), format))


# ---- the AWS side of the trust ----


@router.get(
    "/aws-setup",
    summary="Each account's IAM provider and role trust policies, as CloudFormation or Terraform",
    description=(
        "What `broker aws-setup` generates, from this broker's whole mapping and its own SAML metadata, OIDC "
        "issuer and SAML recipient: per account its notes and files (a CloudFormation template, or a Terraform "
        "module directory), so a pipeline can fetch and deploy them. `account` (id or alias) may be repeated; "
        "none: every account."
    ),
    response_model=AwsSetup,
    responses=READ,
)
def aws_setup(
    _: AdminDep,
    services: ServicesDep,
    format: Annotated[SetupFormat, Query(description="cloudformation or terraform")] = "cloudformation",
    account: Annotated[list[str] | None, Query(description="an account id or alias; repeat it")] = None,
    stackset: Annotated[bool, Query(description="also one template per provider for a StackSet (CloudFormation)")] = False,
) -> dict[str, Any]:
    if stackset and format != "cloudformation":
        raise InvalidInput("stackset=true is for format=cloudformation (a Terraform module serves every account already)")
    trusts = plan(services.store.full_snapshot(), BrokerSide.of(services.minting), account or ())
    stacksets = [
        {"group": name, "accounts": [t.account_id for t in group], "file": stackset_file(name),
         "template": stackset_template(group)}
        for name, group in stackset_groups(trusts).items()
    ] if stackset else []
    return {"format": format, "stacksets": stacksets, "accounts": [
        {"account_id": t.account_id, "alias": t.alias, "notes": list(t.notes), "files": account_files(t, format),
         "template": cloudformation.template(t) if format == "cloudformation" else None}
        for t in trusts
    ]}


# ---- audit ----


@router.get("/audit", summary="The audit log, newest first, filtered and paged", response_model=AuditPage)
def audit_log(
    _: AdminDep,
    services: ServicesDep,
    actor: str | None = None,
    action: Annotated[str | None, Query(description="exact action, or a prefix ending in '.' or '*'")] = None,
    target_type: str | None = None,
    target_id: str | None = None,
    outcome: Outcome | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
    cursor: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> dict[str, Any]:
    limit = min(limit, services.config.admin.max_page_size)
    items = services.store.audit_events(
        AuditFilter(actor, action, target_type, target_id, outcome, since, until), limit=limit, before_id=cursor
    )
    return {"items": items, "next_cursor": items[-1]["id"] if len(items) == limit else None}
