"""Every just-in-time access request as an admin reads it, a page at a time: shared by the admin
API (``broker.web.admin_requests``) and the admin requests page (``broker.web.admin_request_pages``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker.jit.requests import AccessRequest, RequestFilter
from broker.services import Services

MAX_ID = 2**63 - 1
PAGE = 50


@dataclass(frozen=True)
class Listing:
    items: list[dict[str, Any]]
    next_cursor: int | None
    """The last id shown when the page is full (pass as ``cursor``), else None."""


def view(req: AccessRequest, now: datetime) -> dict[str, Any]:
    """A request as an admin reads it: an approved one past its end says ``expired`` (recorded
    so lazily, when a person's listing notices it), ``active`` while issuance works under it."""
    out = req.to_dict()
    if req.lapsed(now):
        out["state"] = "expired"
    out["active"] = req.active(now)
    return out


def listing(services: Services, flt: RequestFilter, *, limit: int = PAGE, cursor: int | None = None) -> Listing:
    """A page of requests (newest first, ids below ``cursor``); none without JIT storage."""
    store = services.flow.requests
    if store is None:
        return Listing([], None)
    limit = min(limit, services.config.admin.max_page_size)
    now = services.flow.clock()
    found = store.search(flt, now=now, limit=limit, before_id=cursor)
    return Listing([view(r, now) for r in found], found[-1].id if len(found) == limit else None)
