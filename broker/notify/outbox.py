"""``OutboxNotifier``: the broker's ``Notifier``. A notification becomes one outbox row per named
webhook (``broker.db.notify_outbox``), in its own transaction (``notify``) or in the caller's
(``queue_on``: the request store writes the row with the request's change, so a crash between
the two cannot lose it); ``broker.notify.delivery`` sends the rows."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from broker import logs
from broker.db import notify_outbox
from broker.notify import Notification
from broker.notify.bodies import note_dict

log = logs.get_logger("broker.notify")


class OutboxNotifier:
    def __init__(self, engine: Engine, known: Collection[str]) -> None:
        self.engine = engine
        self.known = frozenset(known)
        """The configured webhooks (check-config refuses a policy naming another)."""

    def _names(self, webhooks: Sequence[str], note: Notification) -> list[str]:
        unknown = [w for w in webhooks if w not in self.known]
        if unknown:
            log.warning("notification_unknown_webhook", webhooks=unknown, notification=note.event)
        return [w for w in webhooks if w in self.known]

    def queue_on(self, conn: Connection, webhooks: Sequence[str], note: Notification) -> int:
        """The rows on ``conn``, in its transaction (raised errors are the caller's, with its change)."""
        return notify_outbox.enqueue(conn, self._names(webhooks, note), note.event, note_dict(note))

    def notify(self, webhooks: tuple[str, ...] | list[str], note: Notification) -> None:
        names = self._names(webhooks, note)
        if not names:
            return
        try:
            with self.engine.begin() as conn:
                notify_outbox.enqueue(conn, names, note.event, note_dict(note))
        except SQLAlchemyError as exc:
            log.error("notification_not_queued", notification=note.event, webhooks=names, error=type(exc).__name__)
