"""Just-in-time access: roles a mapping or naming rule makes ``access: eligible``.

A person asks for such a role with a reason and a duration; approvers (``policy.AccessPolicy``)
approve or deny it; an approved request is a time-bound grant, from its approval to its end,
that every issuance re-checks (``broker.flow.Flow``). Pure: no web framework, no database;
``RequestStore`` is what the flow needs from storage (``broker.db.requests_store`` implements it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from broker.jit.requests import AccessRequest, NewRequest, RequestFilter, rfc3339
from broker.notify import Notification

__all__ = ["AccessRequest", "NewRequest", "NoteFor", "RequestFilter", "RequestStore"]

NoteFor = Callable[[AccessRequest], tuple[Sequence[str], Notification] | None]
"""The notification of a change, from the request as the change left it: (webhooks, notification),
or None. The store queues it in the transaction of the change (``broker.db.requests_store``)."""


class RequestStore(Protocol):
    """Requests and their grants. Every change is a conditional update on ``version``: of two
    approvers at once one wins, the other re-reads and decides again."""

    def create(self, new: NewRequest, *, note: NoteFor | None = None) -> AccessRequest: ...

    def get(self, request_id: int) -> AccessRequest | None: ...

    def update(self, request: AccessRequest, *, note: NoteFor | None = None, **changes: Any) -> AccessRequest | None:
        """The request with ``changes`` applied if nobody changed it since it was read; else None
        (and no notification)."""
        ...

    def of_requester(self, requester_id: str, *, limit: int = 100) -> list[AccessRequest]:
        """The person's requests, newest first."""
        ...

    def open(self, *, limit: int = 500) -> list[AccessRequest]:
        """Pending requests and approved ones (active or not yet noticed as expired), newest first."""
        ...

    def active_grant(self, requester_id: str, account_id: str, role_name: str, now: datetime) -> AccessRequest | None:
        """The approved request of the person for the role whose grant lasts longest past ``now``."""
        ...

    def active_grants(self, now: datetime) -> Sequence[AccessRequest]:
        """Every grant active at ``now`` (the access report)."""
        ...

    def lapsed(self, now: datetime, *, limit: int = 500) -> Sequence[AccessRequest]:
        """Approved requests whose end is at or before ``now`` (the expiry sweep), oldest end first."""
        ...

    def pending_since(self, before: datetime, *, limit: int = 500) -> Sequence[AccessRequest]:
        """Pending requests made before ``before`` (the expiry sweep), oldest first."""
        ...

    def search(self, flt: RequestFilter, *, now: datetime, limit: int, before_id: int | None = None
               ) -> list[AccessRequest]:
        """Every request that ``flt`` lets through (states as of ``now``), newest first, ``limit``
        of them with ids below ``before_id`` (the admin listing's pages)."""
        ...


def grant_ends(store: RequestStore | None, now: datetime) -> dict[tuple[str, str, str], str]:
    """The grants active at ``now``: (person's immutable id, account id, lower-cased role name) →
    end (RFC 3339); the latest end wins (``active_grants`` is ordered by end)."""
    if store is None:
        return {}
    return {(r.requester_id, r.account_id, r.role_name.lower()): rfc3339(r.ends_at) or ""
            for r in store.active_grants(now)}
