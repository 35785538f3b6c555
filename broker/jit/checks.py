"""What a request must give, what an approval changes, and how long a session may last under a
grant: pure functions the flow calls (``broker.flow.Flow``), each refusal a stable code."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from broker.errors import DurationAbovePolicy, GrantEnding, InvalidDuration, ReasonRequired, TicketInvalid
from broker.jit.policy import AccessPolicy
from broker.jit.requests import AccessRequest, parse_duration, rfc3339
from broker.mapping.model import MIN_SESSION

MAX_REASON = 1024
MAX_TICKET = 128


def check_request(policy: AccessPolicy, *, duration: int | str | None, reason: str | None,
                  ticket: str | None) -> tuple[int, str, str | None]:
    """(seconds, reason, ticket) of a request the policy accepts; no duration: the policy's maximum."""
    seconds = policy.max_duration if duration is None else parse_duration(duration)
    if seconds is None or seconds < MIN_SESSION:
        raise InvalidDuration(details=[{"field": "duration", "message": "seconds or e.g. 2h, at least 900 (15 minutes)"}])
    if seconds > policy.max_duration:
        raise DurationAbovePolicy(
            f"the role's access policy allows at most {policy.max_duration} seconds ({policy.max_duration // 60} minutes)",
            details=[{"field": "duration", "value": policy.max_duration, "message": "the policy's max_duration"}],
        )
    text = (reason or "").strip()
    if len(text) > MAX_REASON:
        raise ReasonRequired(f"a reason is at most {MAX_REASON} characters")
    if policy.reason_required and not text:
        raise ReasonRequired(details=[{"field": "reason", "message": "say why you need the role"}])
    tid = (ticket or "").strip() or None
    if policy.ticket_pattern is not None:
        if tid is None or len(tid) > MAX_TICKET or not policy.ticket_ok(tid):
            raise TicketInvalid(
                f"the role's access policy wants a ticket id matching {policy.ticket_pattern}",
                details=[{"field": "ticket", "message": f"matching {policy.ticket_pattern}"}],
            )
    elif tid is not None and len(tid) > MAX_TICKET:
        raise TicketInvalid(f"a ticket id is at most {MAX_TICKET} characters")
    return seconds, text, tid


def approval(request: AccessRequest, *, by: str, by_id: str, groups: list[str], now: datetime) -> dict[str, Any]:
    """The changes one more approval makes: the approver and their approver groups at this
    moment; enough distinct approvers and the grant starts now and ends ``duration`` later."""
    approvals = [*request.approvals, {"by": by, "by_id": by_id, "at": rfc3339(now), "groups": groups}]
    changes: dict[str, Any] = {"approvals": approvals}
    if len(approvals) >= request.approvals_needed:
        changes |= {"state": "approved", "decided_at": now, "decided_by": by, "starts_at": now,
                    "ends_at": now + timedelta(seconds=request.duration)}
    return changes


def session_within(grant: AccessRequest, *, seconds: int, now: datetime) -> int:
    """The session length under an active grant: never past its end, never below STS's minimum."""
    assert grant.ends_at is not None
    left = int((grant.ends_at - now).total_seconds())
    if left < MIN_SESSION:
        raise GrantEnding(f"your grant of this role ends at {rfc3339(grant.ends_at)}, in less than 15 minutes (the "
                          "shortest session AWS issues): request the role again")
    return min(seconds, left)
