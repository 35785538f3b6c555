"""What an access request looks like in JSON (the person's API, ``broker.web.requests_api``, and
the admin listing, ``broker.web.admin_requests``): ``AccessRequest.to_dict`` as a response model."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Approval(BaseModel):
    by: str | None
    at: str | None
    groups: list[str] = Field(description="the approver's approver groups at the moment of approval")


class AccessRequestOut(BaseModel):
    id: int
    requester: str
    account_id: str
    role_name: str
    policy: str
    reason: str
    ticket: str | None
    duration: int = Field(description="seconds the grant lasts from its approval")
    state: str = Field(description="pending, approved, denied, cancelled, expired or ended")
    approvals_needed: int
    approvals: list[Approval]
    created_at: str | None
    decided_at: str | None
    decided_by: str | None
    starts_at: str | None
    ends_at: str | None
    ended_at: str | None
    ended_by: str | None
