"""Access requests as values: the states, what each answer shows, and durations (``2h``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

State = Literal["pending", "approved", "denied", "cancelled", "expired", "ended"]
"""pending → approved (a grant until ``ends_at``) | denied | cancelled | expired (pending longer
than the policy's ``pending_expiry``); approved → expired (its end passed) | ended (ended early
by an approver, an admin or the person)."""

STATES: tuple[State, ...] = ("pending", "approved", "denied", "cancelled", "expired", "ended")


@dataclass(frozen=True)
class RequestFilter:
    """Which requests an admin listing shows (None: any). ``state`` is as a person reads it: an
    approved request whose end has passed is ``expired`` even before a listing records it so."""

    state: State | None = None
    requester: str | None = None
    """The requester's username, case-insensitively."""
    account: str | None = None
    """A 12-digit account id or a registered alias."""
    role: str | None = None
    """A role name, case-insensitively."""


_DURATION = re.compile(r"^(?:(?P<h>\d{1,2})h)?(?:(?P<m>\d{1,4})m)?(?:(?P<s>\d{1,5})s)?$")


def parse_duration(value: int | str) -> int | None:
    """Seconds from ``7200``, ``"7200"``, ``"2h"``, ``"90m"``, ``"1h30m"``; None: not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    text = value.strip().lower()
    if text.isdigit():
        return int(text) if int(text) > 0 else None
    m = _DURATION.match(text)
    if not text or m is None:
        return None
    seconds = int(m["h"] or 0) * 3600 + int(m["m"] or 0) * 60 + int(m["s"] or 0)
    return seconds or None


def rfc3339(at: datetime | None) -> str | None:
    return None if at is None else at.strftime("%Y-%m-%dT%H:%M:%SZ")


def human_duration(seconds: int) -> str:
    """3600 → "1 h", 43200 → "12 h", 5400 → "1 h 30 min", 900 → "15 min"."""
    hours, minutes = divmod(seconds // 60, 60)
    return " ".join(filter(None, [f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""])) or "0 min"


@dataclass(frozen=True)
class NewRequest:
    """What a person asks for; an ``AccessRequest`` is one once stored, with what became of it."""

    requester_id: str
    """The person's immutable id: the grant is theirs, not a username's."""
    requester: str
    account_id: str
    role_name: str
    policy: str
    reason: str
    ticket: str | None
    duration: int
    """Seconds the grant lasts once approved."""
    approvals_needed: int
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class AccessRequest(NewRequest):
    id: int
    state: State
    approvals: tuple[dict[str, Any], ...]
    """Each: ``{"by", "by_id", "at", "groups"}`` — the approver and their groups at that moment."""
    decided_at: datetime | None
    decided_by: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    version: int

    def active(self, now: datetime) -> bool:
        return self.state == "approved" and self.ends_at is not None and self.ends_at > now

    def lapsed(self, now: datetime) -> bool:
        """Approved, and its end has passed (not yet recorded as expired)."""
        return self.state == "approved" and self.ends_at is not None and self.ends_at <= now

    def approved_by(self, person_id: str) -> bool:
        return any(a.get("by_id") == person_id for a in self.approvals)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "requester": self.requester,
            "account_id": self.account_id,
            "role_name": self.role_name,
            "policy": self.policy,
            "reason": self.reason,
            "ticket": self.ticket,
            "duration": self.duration,
            "state": self.state,
            "approvals_needed": self.approvals_needed,
            "approvals": [{"by": a.get("by"), "at": a.get("at"), "groups": list(a.get("groups", ()))}
                          for a in self.approvals],
            "created_at": rfc3339(self.created_at),
            "decided_at": rfc3339(self.decided_at),
            "decided_by": self.decided_by,
            "starts_at": rfc3339(self.starts_at),
            "ends_at": rfc3339(self.ends_at),
            "ended_at": rfc3339(self.ended_at),
            "ended_by": self.ended_by,
        }
