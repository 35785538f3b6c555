"""Notifications: what the broker tells people outside it (a chat channel, an on-call tool) when
something needs them or happened — an access request, its approval, denial, expiry or early end,
a break-glass sign-in.

Webhooks are named in the config (``notifications.webhooks``); an access policy names the ones
it notifies (``notify:``), the break-glass section the ones it alerts (``alert:``). ``Notifier``
is what the rest of the broker calls: it never blocks on the receiver — a notification is kept
(an outbox in the database) and delivered with retries, so none is lost while a receiver is down.

Here (the core): ``config`` (the ``notifications:`` section), ``bodies`` (Slack, Teams and JSON
bodies, the signature). The implementation is ``broker.db.notify_outbox.OutboxNotifier``; the
delivery worker ``broker.notify_worker``; the access requests' notifications ``broker.jit.notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Notification", "Notifier"]


@dataclass(frozen=True)
class Notification:
    event: str
    """A stable name: ``access.request``, ``access.approve``, ``access.deny``, ``access.cancel``,
    ``access.expire``, ``access.end``, ``break_glass.use`` (the audit kinds, where there is one)."""
    title: str
    """One line a person reads first."""
    text: str = ""
    facts: tuple[tuple[str, str], ...] = ()
    """(label, value) pairs shown as fields: requester, account, role, reason, ends at..."""
    link: str | None = None
    """Where to act on it (the approve page of a request), an absolute URL."""
    data: dict[str, object] = field(default_factory=dict)
    """The machine-readable details (request id, state...), in the JSON body as is. No secret."""


class Notifier(Protocol):
    def notify(self, webhooks: tuple[str, ...] | list[str], note: Notification) -> None:
        """Queue ``note`` for each named webhook; returns at once, delivery is retried until it
        succeeds or its attempts run out (logged, counted, never raised to the caller)."""
        ...
