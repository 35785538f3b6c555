"""What the admin API answers: one response model per route (so /openapi.json documents every
body, and FastAPI checks each answer against it) and the error statuses each route can give.

The models describe the store's views (``broker.db.store``); they carry no input validators,
so an answer is never refused because a validator changed after the object was stored.
Times are RFC 3339 in UTC with their offset (``2026-12-02T03:07:23.123456Z``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from broker.aws.partitions import PartitionName
from broker.web.errors import Error

Source = Literal["config", "api"]
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"}, description="RFC 3339, UTC (Z)")]


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Meta(_View):
    source: Source = Field(description="config: declared in the configuration file (read-only here); api: managed here")
    created_at: Timestamp | None
    updated_at: Timestamp | None


class SamlFederationView(_View):
    path: Literal["saml"]
    saml_provider: str


class WebIdentityFederationView(_View):
    path: Literal["web_identity"]
    audience: str | None


class AccountView(Meta):
    id: str = Field(description="the 12-digit AWS account id")
    alias: str | None
    partition: PartitionName
    default_region: str | None
    environment: str | None
    owner: str | None
    description: str
    federation: Annotated[SamlFederationView | WebIdentityFederationView, Field(discriminator="path")]


class RoleView(Meta):
    account: str = Field(description="the account id")
    arn: str
    name: str
    path: str
    max_session_duration: int = Field(description="seconds")
    description: str


class MappingView(Meta):
    id: int
    group: str
    account: str = Field(description="the account id")
    role: str
    session_duration: int | None = Field(description="cap on the session this mapping allows (seconds)")
    console: bool
    cli: bool
    description: str


class RuleView(Meta):
    name: str
    pattern: str
    session_duration: int | None
    console: bool
    cli: bool
    description: str


class MappingPage(_View):
    items: list[MappingView]
    next_cursor: int | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class AuditEventView(_View):
    id: int
    at: Timestamp
    actor: str
    action: str
    outcome: Literal["allow", "deny", "error"]
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


class GrantReasonView(_View):
    kind: Literal["mapping", "rule"]
    ref: str = Field(description="the mapping id or the rule name")
    group: str
    console: bool
    cli: bool
    session_duration: int | None
    source: Source


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
    federation_path: Literal["saml", "web_identity"]
    provider: str | None
    console: bool
    cli: bool
    max_session_duration: Durations
    reasons: list[GrantReasonView]


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


# ---- the error statuses, per route ----


def documented_error(text: str) -> dict[str, Any]:
    return {"model": Error, "description": text}


COMMON: dict[int | str, dict[str, Any]] = {
    400: documented_error("malformed_json (the body is not JSON), bad_request (e.g. an invalid Content-Length)"),
    401: documented_error("unauthenticated, invalid_credentials: no, or no valid, admin credentials"),
    403: documented_error("forbidden: the directory account signed in but is not an admin"),
    413: documented_error("body_too_large: the body is over server.max_body_bytes"),
    422: documented_error("the request is invalid: missing_field, unknown_field, invalid_type, invalid_value, or a more specific code"),
    429: documented_error("rate_limited: too many failed password sign-ins (HTTP Basic); see Retry-After"),
    503: documented_error("storage_unavailable, directory_unavailable, state_unavailable: try again shortly"),
}
"""Every admin route: authentication, body and validation problems, rate limits, outages."""

NOT_FOUND = {404: documented_error("not_found: no such account, role, mapping or rule")}
CONFLICT = {409: documented_error("duplicate, read_only (declared in the configuration file), in_use, conflict")}
WRITE_422 = {
    422: documented_error(
        "invalid_account_id, invalid_alias, invalid_region, invalid_role_name, invalid_role_path, reserved_role, "
        "invalid_regex, invalid_group, unknown_account, unknown_role, duplicate (listed twice), missing_field, "
        "unknown_field, invalid_type, invalid_value, invalid_input"
    )
}
