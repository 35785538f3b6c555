"""The notification of a request's change (``broker.notify.Notification``): what a chat channel
shows of it — who asks for which role where, why, for how long, what became of it — and the link
to act on it, ``{server.public_url}/requests#request-<id>`` (the portal's row of the request)."""

from __future__ import annotations

from typing import Any

from broker.jit.requests import AccessRequest, human_duration, rfc3339
from broker.notify import Notification

EVENTS = ("access.request", "access.approve", "access.deny", "access.cancel", "access.expire", "access.end")

_TITLES = {
    "access.request": "{who} requests {role} in {account}",
    "access.approve": "{role} in {account} granted to {who}",
    "access.deny": "{who}'s request for {role} in {account} was denied",
    "access.cancel": "{who} withdrew the request for {role} in {account}",
    "access.expire": "{who}'s grant of {role} in {account} has expired",
    "access.end": "{who}'s grant of {role} in {account} was ended early",
}


def link(public_url: str, request_id: int) -> str:
    return f"{public_url.rstrip('/')}/requests#request-{request_id}"


def access_note(event: str, req: AccessRequest, *, public_url: str, alias: str | None, by: str | None = None,
                extra: dict[str, Any] | None = None) -> Notification:
    """``event`` (one of ``EVENTS``) of ``req`` as it is after the change; ``by``: who made it."""
    account = f"{alias} ({req.account_id})" if alias else req.account_id
    title = _TITLES[event].format(who=req.requester, role=req.role_name, account=account)
    if event == "access.expire" and (extra or {}).get("was") == "pending":
        title = f"{req.requester}'s request for {req.role_name} in {account} expired undecided"
    facts: list[tuple[str, str]] = [("Requester", req.requester), ("Account", account), ("Role", req.role_name),
                                    ("Reason", req.reason or "-")]
    if req.ticket:
        facts.append(("Ticket", req.ticket))
    facts += [("Duration", human_duration(req.duration)), ("State", req.state)]
    if by:
        facts.append(("By", by))
    if req.state == "approved" and req.ends_at is not None:
        facts.append(("Ends at", rfc3339(req.ends_at) or ""))
    if event == "access.request" and req.approvals_needed > 1:
        facts.append(("Approvals needed", str(req.approvals_needed)))
    data: dict[str, Any] = {
        "request_id": req.id, "requester": req.requester, "requester_id": req.requester_id,
        "account_id": req.account_id, "account_alias": alias, "role_name": req.role_name, "policy": req.policy,
        "reason": req.reason, "ticket": req.ticket, "duration": req.duration, "state": req.state,
        "created_at": rfc3339(req.created_at), "ends_at": rfc3339(req.ends_at), "by": by, **(extra or {}),
    }
    text = "Approve or deny it in the broker." if event == "access.request" else ""
    return Notification(event=event, title=title, text=text, facts=tuple(facts), link=link(public_url, req.id),
                        data=data)
