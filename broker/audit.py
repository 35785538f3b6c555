"""The audit log's value types: who acted (AuditContext), a decision waiting to be written
(Decision), a query over the log (AuditFilter) and the one time format the log answers in.

No database here: ``broker.db.audit`` writes and reads the rows (in the same transaction as the
change they describe), and the flow writes its decisions through its ``DecisionLog`` Protocol.
Nothing secret is ever put in an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple


@dataclass(frozen=True)
class AuditContext:
    actor: str
    request_id: str | None = None
    source_ip: str | None = None


SYSTEM = AuditContext(actor="system")

Outcome = Literal["allow", "deny", "error"]
"""A decision's outcome: allowed, refused (deny), or failed on the broker's side (error)."""


class Decision(NamedTuple):
    """An access decision (a sign-in, an issuance) waiting to be written."""

    ctx: AuditContext
    action: str
    outcome: str
    target_type: str | None = None
    target_id: str | None = None
    details: dict[str, Any] | None = None
    at: datetime | None = None
    """When it was decided; None: when written."""


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    """Exact action, or a prefix ending in '.' / '*' (``mapping.`` matches mapping.create ...)."""
    target_type: str | None = None
    target_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def rfc3339(t: datetime | None) -> str | None:
    """A stored time as RFC 3339 in UTC with its offset, ``2026-12-02T03:07:23.123456Z``: every
    time the admin API answers. SQLite hands back naive datetimes (stored as UTC), PostgreSQL
    aware ones in the session's time zone; both come out the same."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
