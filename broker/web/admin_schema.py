"""What the admin API answers: one response model per route (so /openapi.json documents every
body, and FastAPI checks each answer against it) and the error statuses each route can give.

The account, role, mapping and rule answers are derived from the mapping model's fields
(``broker.mapping.model``: the one definition) plus what the database adds (``broker.db.views``);
they carry no input validators, so an answer is never refused because a validator changed after
the object was stored.
Times are RFC 3339 in UTC with their offset (``2026-12-02T03:07:23.123456Z``).
"""

from __future__ import annotations

import functools
import operator
from types import GenericAlias, UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, create_model

from broker.audit import Outcome
from broker.audit_chain import BreakKind
from broker.domain import FederationPath, ReasonKind, Source
from broker.mapping.model import (
    AccountSpec,
    AssertionEncryption,
    MappingSpec,
    RoleSpec,
    RuleSpec,
    SamlFederation,
    WebIdentityFederation,
)
from broker.web.errors import Error

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"}, description="RFC 3339, UTC (Z)")]


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Meta(_View):
    source: Source = Field(description="config: declared in the configuration file (read-only here); api: managed here")
    created_at: Timestamp | None
    updated_at: Timestamp | None


def _plain(tp: Any, views: dict[type[BaseModel], type[BaseModel]]) -> Any:
    """A model field's type without its validators (``Annotated`` metadata), nested models
    replaced by their views: the shape of what is stored, not the rules a write obeys."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _plain(get_args(tp)[0], views)
    if origin is Union or origin is UnionType:
        return functools.reduce(operator.or_, (_plain(a, views) for a in get_args(tp)))
    if origin is list:
        return GenericAlias(list, (_plain(get_args(tp)[0], views),))
    if isinstance(tp, type) and tp in views:
        return views[tp]
    return tp


def view_of(
    model: type[BaseModel],
    *,
    name: str,
    base: type[BaseModel] = _View,
    first: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    views: dict[type[BaseModel], type[BaseModel]] | None = None,
    stored: dict[str, str] | None = None,
) -> type[BaseModel]:
    """The response model of ``model``: its fields (every one required, as every view has them
    all), their types without validators, after ``first`` (what the database adds). ``stored``:
    the description of a field whose stored value says more than what a write accepts (a write
    names an account by id or alias; the view answers its id)."""
    fields: dict[str, Any] = dict(first or {})
    for field_name, info in model.model_fields.items():
        if field_name not in drop:
            annotation = _plain(info.annotation, views or {})
            description = (stored or {}).get(field_name, info.description)
            fields[field_name] = (annotation, Field(description=description, discriminator=info.discriminator))
    return create_model(name, __base__=base, __doc__=model.__doc__, **fields)


_ENCRYPTION_VIEWS: dict[type[BaseModel], type[BaseModel]] = {
    AssertionEncryption: view_of(AssertionEncryption, name="AssertionEncryptionView"),
}
_FEDERATION_VIEWS: dict[type[BaseModel], type[BaseModel]] = {
    SamlFederation: view_of(SamlFederation, name="SamlFederationView", views=_ENCRYPTION_VIEWS),
    WebIdentityFederation: view_of(WebIdentityFederation, name="WebIdentityFederationView"),
}

if TYPE_CHECKING:  # what type checkers see; the models themselves are derived below

    class AccountView(Meta): ...

    class RoleView(Meta): ...

    class MappingView(Meta): ...

    class RuleView(Meta): ...

else:
    AccountView = view_of(AccountSpec, name="AccountView", base=Meta, drop=("roles",), views=_FEDERATION_VIEWS)
    RoleView = view_of(
        RoleSpec,
        name="RoleView",
        base=Meta,
        first={"account": (str, Field(description="the account id")), "arn": (str, Field(description="the role's ARN"))},
    )
    MappingView = view_of(MappingSpec, name="MappingView", base=Meta, first={"id": (int, Field(description="the mapping id"))},
                          stored={"account": "the account id"})
    RuleView = view_of(RuleSpec, name="RuleView", base=Meta)


class MappingPage(_View):
    items: list[MappingView]
    next_cursor: int | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class AuditEventView(_View):
    id: int
    at: Timestamp
    actor: str
    action: str
    outcome: Outcome
    target_type: str | None
    target_id: str | None
    request_id: str | None
    source_ip: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    details: dict[str, Any] | None


class AuditPage(_View):
    items: list[AuditEventView]
    next_cursor: int | None = Field(description="pass as ?cursor= for the next (older) page; null on the last page")


class AuditLine(AuditEventView):
    """One line of the export: the event, and its place in the chain."""

    prev_hash: str = Field(description="the hash of the row before it (the first row: 64 zeros)")
    hash: str = Field(description="hex SHA-256 of this line's canonical JSON without `hash` (README: Audit trail)")


class ChainBreak(_View):
    id: int = Field(description="the row where the chain breaks (for deleted rows: the first missing id)")
    kind: BreakKind
    expected: str | None = Field(description="the hash the chain expects there")
    found: str | None = Field(description="the hash found there")
    message: str


class ChainReport(_View):
    ok: bool = Field(description="true: every row from the anchor to the head is as written")
    checked: int = Field(description="rows checked")
    first_id: int | None
    last_id: int | None
    last_hash: str | None = Field(description="the hash of the last row checked: keep a copy elsewhere to compare")
    broken: ChainBreak | None = Field(description="the first broken link; null when ok")


class AuditPurge(_View):
    dry_run: bool
    retention_days: int
    before: str = Field(description="rows older than this (RFC 3339, UTC) are purged, oldest first")
    rows: int = Field(description="how many rows were (dry run: would be) deleted")
    through_id: int = Field(description="the last purged id: the chain's anchor (0: none yet)")
    anchor_hash: str = Field(description="that row's hash, where verification starts")


class GrantReasonView(_View):
    kind: ReasonKind
    ref: str = Field(description="the mapping id (org-<id>: a mapping with accounts:, /org-mappings) or the rule name")
    group: str
    console: bool
    cli: bool
    session_duration: int | None
    source: Source
    via: str | None = Field(
        default=None,
        description="how the account was reached when the mapping or rule targets accounts: 'OU ou-...', "
        "'root r-...' or 'tag env=prod' (as the last discovery placed it); null: the account is named",
    )
    access: Literal["eligible"] | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="eligible: this reason lets the person request the role (absent: standing)")
    policy: str | None = Field(default=None, exclude_if=lambda v: v is None,
                               description="the access policy of an eligible reason (absent: standing)")
    require_mfa: bool | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="true: issuance through this reason needs a second factor of this sign-in (absent: none)")
    mfa_max_age: int | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="the oldest second factor (seconds) this reason accepts; null with require_mfa: "
        "mfa.default_max_age")


class PlacementView(_View):
    account: str
    ou_id: str = Field(description="the account's parent: an OU id, or the root id")
    ou_path: list[str] = Field(description="the root id, then each OU down to the parent")
    tags: dict[str, str]
    discovered_at: str = Field(description="when `broker org discover --apply` recorded it (RFC 3339)")


class Durations(_View):
    console: int
    cli: int


class GrantView(_View):
    account_id: str
    account_alias: str | None
    environment: str | None
    partition: str
    region: str
    role_name: str
    role_arn: str
    federation_path: FederationPath
    provider: str | None
    console: bool
    cli: bool
    max_session_duration: Durations
    reasons: list[GrantReasonView]
    access: Literal["standing", "eligible"] = Field(
        description="eligible: issued only while an approved request's time-bound grant is active")
    grant_ends_at: str | None = Field(
        default=None, description="eligible roles, groups read from the directory: the end of the person's "
        "active grant (RFC 3339); null: none is active")


class GroupView(_View):
    given: str
    name: str


class DirectoryPerson(_View):
    id: str
    username: str
    display_name: str
    source: str


class Explanation(_View):
    username: str
    groups_from: Literal["request", "directory"]
    groups: list[GroupView]
    grants: list[GrantView]
    unmatched_groups: list[str]
    notes: list[str]
    directory: DirectoryPerson | None = None


class AwsSetupAccount(_View):
    account_id: str
    alias: str | None
    notes: list[str] = Field(description="what to know before deploying (the same notes `broker aws-setup` prints)")
    files: dict[str, str] = Field(
        description="file path -> content, the path relative to the output directory `broker aws-setup --out` writes")
    template: dict[str, Any] | None = Field(description="CloudFormation: the template as a JSON object; Terraform: null")


class AwsStackSet(_View):
    group: str = Field(description="the accounts' shared provider: saml-<saml_provider>, oidc (and partition, encryption)")
    accounts: list[str] = Field(description="the account ids its Mappings cover")
    file: str = Field(description="the file name `broker aws-setup --stackset --out` writes")
    template: dict[str, Any]


class AwsSetup(_View):
    format: Literal["cloudformation", "terraform"]
    accounts: list[AwsSetupAccount]
    stacksets: list[AwsStackSet] = Field(
        default_factory=list, description="with stackset=true (CloudFormation): one template per provider, for a StackSet")


DoctorSeverity = Literal["ok", "warning", "error"]


class DoctorCheck(_View):
    severity: DoctorSeverity
    code: str = Field(description="stable: provider.*, saml.*, oidc.*, role.*, trust.*, access.* (see the README)")
    subject: str = Field(description="account, or the IAM object's ARN resource part (role/Admin, saml-provider/broker)")
    reason: str
    fix: str


class DoctorAccount(_View):
    account: str
    alias: str | None
    severity: DoctorSeverity
    checked_at: Timestamp = Field(description="when IAM was read (a cached report keeps its time)")
    checks: list[DoctorCheck]


class DoctorSummary(_View):
    accounts: int
    ok: int
    warning: int
    error: int
    severity: DoctorSeverity


class DoctorReport(_View):
    accounts: list[DoctorAccount]
    summary: DoctorSummary


# ---- the error statuses, per route ----


Responses = dict[int | str, dict[str, Any]]
"""A route's documented answers by status (FastAPI's ``responses=``)."""


def documented_error(text: str) -> dict[str, Any]:
    return {"model": Error, "description": text}


COMMON: Responses = {
    400: documented_error("malformed_json (the body is not JSON), bad_request (e.g. an invalid Content-Length)"),
    401: documented_error("unauthenticated, invalid_credentials: no, or no valid, admin credentials"),
    403: documented_error("forbidden: the directory account signed in but is not an admin"),
    413: documented_error("body_too_large: the body is over server.max_body_bytes"),
    422: documented_error("the request is invalid: missing_field, unknown_field, invalid_type, invalid_value, or a more specific code"),
    429: documented_error("rate_limited: too many failed password sign-ins (HTTP Basic); see Retry-After"),
    503: documented_error("storage_unavailable, directory_unavailable, state_unavailable: try again shortly"),
}
"""Every admin route: authentication, body and validation problems, rate limits, outages."""

NOT_FOUND: Responses = {404: documented_error("not_found: no such account, role, mapping or rule")}
CONFLICT: Responses = {409: documented_error("duplicate, read_only (declared in the configuration file), in_use, conflict")}
WRITE_422: Responses = {
    422: documented_error(
        "invalid_account_id, invalid_alias, invalid_region, invalid_role_name, invalid_role_path, reserved_role, "
        "invalid_policy_arn, policy_limit, wrong_partition, foreign_policy, invalid_regex, invalid_group, "
        "unknown_account, unknown_role, duplicate (listed twice), missing_field, unknown_field, invalid_type, "
        "invalid_value, invalid_input"
    )
}
