"""Every just-in-time access request, for admins: ``GET /api/v1/admin/requests`` (filters
``state``, ``requester``, ``account``, ``role``; newest first, in pages), the list the admin
requests page (``broker.web.admin_request_pages``) shows (both ``broker.web.request_listing``).
Ending a grant is the existing ``POST /api/v1/admin/grants/{id}/end`` (``broker.web.requests_api``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from broker.jit.requests import RequestFilter, State
from broker.web.admin_schema import COMMON, documented_error
from broker.web.deps import AdminDep, ServicesDep
from broker.web.request_listing import MAX_ID, listing
from broker.web.request_schema import AccessRequestOut

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=COMMON)


class AdminListedRequest(AccessRequestOut):
    active: bool = Field(description="approved and its end not reached: issuance works under it (End now)")


class AdminRequestPage(BaseModel):
    items: list[AdminListedRequest]
    next_cursor: int | None = Field(description="pass as ?cursor= for the next (older) page; null on the last page")


@router.get("/requests", response_model=AdminRequestPage, summary="Every access request, newest first, filtered and paged",
            responses={422: documented_error("invalid_value: an unknown state, a cursor out of range")})
def list_requests(
    _: AdminDep,
    services: ServicesDep,
    state: Annotated[State | None, Query(description="as a person reads it: an approved request past its end is "
                                                     "expired")] = None,
    requester: Annotated[str | None, Query(max_length=256, description="the requester's username (any case)")] = None,
    account: Annotated[str | None, Query(max_length=256, description="12-digit account id or alias")] = None,
    role: Annotated[str | None, Query(max_length=256, description="role name (any case)")] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
    cursor: Annotated[int | None, Query(ge=0, le=MAX_ID, description="the next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    flt = RequestFilter(state=state, requester=(requester or "").strip() or None,
                        account=(account or "").strip() or None, role=(role or "").strip() or None)
    page = listing(services, flt, limit=limit, cursor=cursor)
    return {"items": page.items, "next_cursor": page.next_cursor}
