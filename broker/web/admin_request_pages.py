"""The admin requests page (/admin/requests): every just-in-time access request, filtered by
state, requester, account and role, newest first and in pages, each with its approvals (who,
with which approver groups at that moment), and **End now** for an active grant
(POST /admin/requests/{id}/end: the admin path of ``Flow.end_grant``, audited ``access.end``
with the admin as actor, ``directory:<username>``).

Thin, like the admin API's ``broker.web.admin_requests`` (the same ``broker.web.request_listing``). Session auth for
the admin groups and CSRF on the POST (``broker.web.admin_session``).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from broker.errors import BrokerError, GrantNotActive, UnknownRequest
from broker.jit.requests import STATES, RequestFilter
from broker.web.admin_session import AdminVisit, admin_visit
from broker.web.deps import decision_context, services_of
from broker.web.request_listing import MAX_ID, listing

router = APIRouter(prefix="/admin", include_in_schema=False, tags=["admin pages"])

Short = Annotated[str, Query(max_length=256)]
Text = Annotated[str, Form(max_length=1024)]
RequestId = Annotated[int, Path(ge=1, le=MAX_ID)]
FILTERS = ("state", "requester", "account", "role")
NOTICES = {"ended": "The grant was ended. The person's later issuances are refused; sessions already issued run on."}


def _given(filters: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in filters.items() if v}


def _render(visit: AdminVisit, filters: dict[str, str], cursor: int | None, *, status: int = 200,
            problem: str = "", notice: str = "") -> Response:
    problems: dict[str, str] = {}
    state = filters["state"].strip()
    if state and state not in STATES:
        problems["state"] = "one of: " + ", ".join(STATES)
    items: list[dict[str, object]] = []
    older = None
    if not problems:
        flt = RequestFilter(state=next((s for s in STATES if s == state), None),
                            requester=filters["requester"].strip() or None,
                            account=filters["account"].strip() or None, role=filters["role"].strip() or None)
        try:
            page = listing(services_of(visit.request), flt, cursor=cursor)
        except BrokerError as exc:
            return visit.error(exc)
        items = page.items
        if page.next_cursor is not None:
            older = f"/admin/requests?{urlencode({**_given(filters), 'cursor': page.next_cursor})}"
    first = f"/admin/requests?{urlencode(_given(filters))}" if cursor is not None else None
    return visit.render("admin_requests.html", status=422 if problems else status, title="Access requests",
                        nav="requests", f=filters, problems=problems, problem=problem, items=items, older=older,
                        first=first, states=STATES, filter_names=FILTERS, notice=notice)


@router.get("/requests")
def requests_page(request: Request, state: Short = "", requester: Short = "", account: Short = "", role: Short = "",
                  cursor: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
                  done: Short = "") -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    filters = dict(zip(FILTERS, (state, requester, account, role), strict=True))
    return _render(visit, filters, cursor, notice=NOTICES.get(done, ""))


@router.post("/requests/{request_id}/end")
def end_grant(request: Request, request_id: RequestId, csrf_token: Text = "", state: Text = "",
              requester: Text = "", account: Text = "", role: Text = "") -> Response:
    visit = admin_visit(request, csrf_token=csrf_token)
    if not isinstance(visit, AdminVisit):
        return visit
    filters = dict(zip(FILTERS, (state, requester, account, role), strict=True))
    services = services_of(request)
    try:
        services.access_requests.end_grant(identity=None, admin=visit.principal.actor, request_id=request_id,
                                            ctx=decision_context(request, via="admin-page"))
    except (GrantNotActive, UnknownRequest) as exc:
        return _render(visit, filters, None, status=exc.status, problem=exc.message)
    except BrokerError as exc:
        return visit.error(exc)
    return RedirectResponse(f"/admin/requests?{urlencode({**_given(filters), 'done': 'ended'})}", status_code=303,
                            headers={"Cache-Control": "no-store"})
