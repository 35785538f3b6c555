"""The one audit writer of access decisions: every decision is one ``broker.audit.Decision`` of
one shape, written through the ``DecisionLog`` Protocol (the database store implements it).

The shape: actor ``user:<username>`` (or who stands for an unknown person, e.g.
``upstream:<idp>``), the action, the outcome (allow | deny | error), the target if any, and
details that always carry ``user``, ``immutable_id`` and ``via``, then what the decision adds
(groups, role, code and reason of a refusal, ...). Never a password, a token or a key.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from broker.audit import AuditContext, Decision, Outcome
from broker.domain import Identity
from broker.errors import BrokerError
from broker.logs import get_logger

log = get_logger("broker.flow")

@dataclass(frozen=True)
class DecisionContext:
    """Where a request for access comes from, for the audit log."""

    source_ip: str | None = None
    request_id: str | None = None
    via: str = "api"
    """portal | api | cli | device | admin-api | upstream | ..."""


class DecisionLog(Protocol):
    def record_events(self, events: Sequence[Decision]) -> None: ...


def outcome_of(exc: BrokerError) -> Outcome:
    """A refusal is a deny; a failure of the broker or what it depends on (5xx) an error."""
    return "error" if exc.status >= 500 else "deny"


def refusal_details(exc: BrokerError, *, otherwise: str | None = None) -> dict[str, Any]:
    """What a refusal adds to an event: its stable code and why (its reason, else ``otherwise``,
    else its message)."""
    return {"code": exc.code, "reason": exc.reason or otherwise or exc.message}


def decision(
    ctx: DecisionContext,
    action: str,
    who: Identity | None,
    *,
    outcome: Outcome,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
    actor: str | None = None,
    at: datetime | None = None,
) -> Decision:
    """The one event shape. ``who`` None: nobody is known yet (``actor`` says who stands for them)."""
    audit_ctx = AuditContext(
        actor=f"user:{who.username}" if who is not None else (actor or "anonymous"),
        request_id=ctx.request_id,
        source_ip=ctx.source_ip,
    )
    body: dict[str, Any] = {
        "user": who.username if who is not None else None,
        "immutable_id": who.id if who is not None else None,
        "via": ctx.via,
        **(details or {}),
    }
    return Decision(audit_ctx, action, outcome, target_type=target_type, target_id=target_id, details=body,
                    at=at or datetime.now(UTC))


_BATCH: ContextVar[list[Decision] | None] = ContextVar("broker_decision_batch", default=None)


class AuditWriter:
    """Writes decisions to the ``DecisionLog``: at once, or together at the end of a
    ``one_write`` block (a password sign-in and the issuance it led to: one database write)."""

    def __init__(self, log: DecisionLog) -> None:
        self.log = log

    def write(self, event: Decision, *, required: bool = True) -> None:
        """``required`` False: a failed write is logged and forgotten (a refusal's event must
        not turn the refusal into a 503); an allowed decision never goes without its event."""
        batch = _BATCH.get()
        if batch is not None:
            batch.append(event)
            return
        try:
            self.log.record_events([event])
        except BrokerError:
            if required:
                raise
            log.warning("audit_write_failed", action=event.action, outcome=event.outcome)

    @contextmanager
    def one_write(self) -> Iterator[None]:
        """The decisions recorded inside the block are written together when it ends, well or not."""
        if _BATCH.get() is not None:  # already inside one
            yield
            return
        batch: list[Decision] = []
        token = _BATCH.set(batch)
        try:
            yield
        finally:
            _BATCH.reset(token)
            if batch:
                self.log.record_events(batch)
