"""Just-in-time access over /api/v1: requests for eligible roles, their approval, denial and
cancellation, and ending a grant early (the person's API, and the admin API's end).

Thin: every decision is ``broker.flow.Flow``'s (directory re-read, policy, audit)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from broker.errors import UnknownRequest
from broker.web.admin_schema import COMMON, documented_error
from broker.web.deps import AdminDep, CallerDep, ServicesDep, decision_context
from broker.web.errors import Error
from broker.web.request_schema import AccessRequestOut

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Error, "description": text}
    for status, text in {
        400: "malformed_json, bad_request",
        401: "unauthenticated, invalid_credentials: log in again (awsbroker login)",
        403: "not_eligible, self_approval, not_approver, csrf_failed",
        404: "unknown_request",
        409: "request_exists, request_not_pending, already_approved, grant_not_active",
        413: "body_too_large",
        422: "invalid_duration, duration_above_policy, reason_required, ticket_invalid, missing_field, ...",
        429: "rate_limited (HTTP Basic sign-ins); see Retry-After",
        503: "directory_unavailable, storage_unavailable, state_unavailable",
    }.items()
}

router = APIRouter(prefix="/api/v1", tags=["access requests"], responses=ERRORS)

RequestId = Annotated[int, Path(ge=1, le=2**62)]


class NewAccessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    account: Annotated[str, Field(min_length=1, max_length=63, description="12-digit account id or alias")]
    role: Annotated[str, Field(min_length=1, max_length=64)]
    reason: Annotated[str, Field(max_length=1024)] = ""
    duration: int | Annotated[str, Field(max_length=16)] | None = (
        Field(default=None, description="seconds, or e.g. 2h, 90m, 1h30m; absent: the policy's maximum"))
    ticket: Annotated[str, Field(max_length=128)] | None = None


class ListedRequest(AccessRequestOut):
    active: bool = Field(description="approved and its end not reached: issuance works under it")
    can_approve: bool
    can_end: bool


class RequestLists(BaseModel):
    mine: list[ListedRequest]
    to_decide: list[ListedRequest] = Field(description="open requests and active grants I may decide or end")


@router.post("/requests", status_code=201, response_model=AccessRequestOut,
             summary="Request an eligible role with a reason and a duration")
def create_request(body: NewAccessRequest, request: Request, caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
    with services.flow.one_audit_write():
        made = services.access_requests.request_access(identity=caller.identity(), account=body.account, role=body.role,
                                            duration=body.duration, reason=body.reason, ticket=body.ticket,
                                            ctx=decision_context(request))
    return made.to_dict()


@router.get("/requests", response_model=RequestLists, summary="My requests, and those I may approve")
def list_requests(request: Request, caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
    return services.access_requests.list_requests(identity=caller.identity(), ctx=decision_context(request))


@router.get("/requests/{request_id}", response_model=AccessRequestOut, summary="One of my requests, or one I may decide")
def get_request(request_id: RequestId, request: Request, caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
    lists = services.access_requests.list_requests(identity=caller.identity(), ctx=decision_context(request))
    for item in lists["mine"] + lists["to_decide"]:
        if item["id"] == request_id:
            return item
    raise UnknownRequest()


def _decide(choice: str, request_id: int, request: Request, caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
    ctx = decision_context(request)
    with services.flow.one_audit_write():
        identity = caller.identity()
        if choice in ("approve", "deny"):
            done = services.access_requests.decide_request(identity=identity, request_id=request_id,
                                                choice="approve" if choice == "approve" else "deny", ctx=ctx)
        elif choice == "cancel":
            done = services.access_requests.cancel_request(identity=identity, request_id=request_id, ctx=ctx)
        else:
            done = services.access_requests.end_grant(identity=identity, request_id=request_id, ctx=ctx)
    return done.to_dict()


@router.post("/requests/{request_id}/approve", response_model=AccessRequestOut,
             summary="Approve (an approver of the role's policy, never the requester)")
def approve(request_id: RequestId, request: Request, caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
    return _decide("approve", request_id, request, caller, services)


@router.post("/requests/{request_id}/deny", response_model=AccessRequestOut, summary="Deny (an approver)")
def deny(request_id: RequestId, request: Request, caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
    return _decide("deny", request_id, request, caller, services)


@router.post("/requests/{request_id}/cancel", response_model=AccessRequestOut, summary="Withdraw my pending request")
def cancel(request_id: RequestId, request: Request, caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
    return _decide("cancel", request_id, request, caller, services)


@router.post("/grants/{request_id}/end", response_model=AccessRequestOut,
             summary="End a grant early (an approver, or the person); sessions already issued run on")
def end_grant(request_id: RequestId, request: Request, caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
    return _decide("end", request_id, request, caller, services)


@router.post("/admin/grants/{request_id}/end", response_model=AccessRequestOut, tags=["admin"],
             responses={**COMMON, 404: documented_error("unknown_request"),
                        409: documented_error("grant_not_active: ended, expired or never approved")},
             summary="End a grant early (admin); sessions already issued run on")
def admin_end_grant(request_id: RequestId, request: Request, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    done = services.access_requests.end_grant(identity=None, admin=admin.actor, request_id=request_id,
                                   ctx=decision_context(request, via="admin-api"))
    return done.to_dict()
