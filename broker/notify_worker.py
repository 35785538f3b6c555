"""The delivery worker: sends the notification outbox in a background thread of every worker
process; replicas share the rows (``broker.db.notify_outbox.claim``: leased, never the same row
to two of them).

Each row is one POST, bounded by the webhook's ``timeout_seconds`` per network step:

- 2xx: delivered, the row is deleted;
- 4xx other than 408 and 429: given up at once (the receiver refuses this request; a retry
  would get the same answer), the row kept as ``failed``, logged with the status;
- anything else (5xx, 408, 429, a timeout, a refused connection): retried after
  ``retry_delay(attempts)`` (1 s doubling, jittered, capped at ``max_backoff_seconds``) until
  ``max_attempts``, then ``failed``. A receiver that cannot be reached at all (no answer) is not
  tried again in the same pass: the batch's other rows wait as long, without an attempt counted,
  so a pass over a black-holed receiver takes one timeout, not ten.

Delivery is at least once: a worker that dies after a send and before the delete sends again once
the lease ends, with the same ``X-Broker-Delivery``. Outcomes are counted in
``broker_notifications_total{webhook,outcome}``; ``broker_notification_outbox_pending{webhook}``
is the queue. Neither the URL nor the key is ever logged.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Engine

from broker import __version__, logs
from broker.audit_forward.forwarder import retry_delay
from broker.db import notify_outbox
from broker.db.models import utcnow
from broker.metrics import Metrics
from broker.notify.bodies import body, headers, note_of
from broker.notify.config import Webhook
from broker.periodic import Periodic

log = logs.get_logger("broker.notify")

BATCH = 10
"""Rows of one webhook claimed in one pass."""


class Delivery:
    def __init__(
        self,
        engine: Engine,
        webhooks: Mapping[str, Webhook],
        *,
        metrics: Metrics | None = None,
        interval: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.engine = engine
        self.webhooks = dict(webhooks)
        self.metrics = metrics
        self._clock = clock
        self._rand = rand
        self._clients: dict[str, httpx.Client] = {}
        longest = max((w.config.timeout_seconds for w in self.webhooks.values()), default=1.0)
        self._thread = Periodic("notification-delivery", lambda: self.run_once() > 0, interval=interval,
                                join_timeout=3 * longest + 1)

    def _client(self, hook: Webhook) -> httpx.Client:
        client = self._clients.get(hook.name)
        if client is None or client.is_closed:
            client = httpx.Client(timeout=httpx.Timeout(hook.config.timeout_seconds), follow_redirects=False,
                                  trust_env=False, headers={"User-Agent": f"federation-broker/{__version__}"})
            self._clients[hook.name] = client
        return client

    @staticmethod
    def lease(hook: Webhook) -> timedelta:
        """Longer than a pass over one batch can take (each POST: a few steps, each bounded)."""
        return timedelta(seconds=BATCH * (3 * hook.config.timeout_seconds + 1) + 10)

    def run_once(self, now: datetime | None = None) -> int:
        """One batch per webhook; how many rows were delivered."""
        done = 0
        for hook in self.webhooks.values():
            at = now or self._clock()
            rows = notify_outbox.claim(self.engine, hook.name, limit=BATCH, now=at, lease=self.lease(hook))
            for i, row in enumerate(rows):
                outcome = self._attempt(hook, row, now or self._clock())
                if isinstance(outcome, datetime):  # unreachable: the rest wait as long, untried
                    notify_outbox.release(self.engine, [r.id for r in rows[i + 1:]], at=outcome)
                    break
                done += outcome
        self._gauges()
        return done

    def _attempt(self, hook: Webhook, row: notify_outbox.Claimed, now: datetime) -> int | datetime:
        """1: delivered, 0: given up or retried later; when the receiver could not be reached, the
        time its next attempt is due (the batch's other rows wait as long, a pass stays short)."""
        note = note_of(row.payload)
        raw = body(hook.config.format, note, row.delivery_id)
        key = None if hook.key is None else hook.key.get_secret_value().encode("utf-8")
        sent = headers(note, row.delivery_id, raw, key=key, timestamp=int(now.timestamp()))
        status: int | None = None
        try:
            response = self._client(hook).post(hook.url.get_secret_value(), content=raw, headers=sent)
            status = response.status_code
            error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = type(exc).__name__  # never str(exc): it may quote the URL
        attempts = row.attempts + 1
        fields = {"webhook": hook.name, "notification": row.event, "delivery": row.delivery_id, "attempts": attempts}
        if status is not None and 200 <= status < 300:
            notify_outbox.delivered(self.engine, row.id)
            self._count(hook.name, "delivered")
            log.info("notification_delivered", **fields)
            return 1
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            notify_outbox.give_up(self.engine, row.id, error=error)
            self._count(hook.name, "given_up")
            log.warning("notification_given_up", status=status, **fields)
            return 0
        if attempts >= hook.config.max_attempts:
            notify_outbox.give_up(self.engine, row.id, error=error)
            self._count(hook.name, "failed")
            log.error("notification_failed", error=error, **fields)
            return 0
        delay = retry_delay(attempts, cap=hook.config.max_backoff_seconds, rand=self._rand)
        retry_at = now + timedelta(seconds=delay)
        notify_outbox.retry(self.engine, row.id, at=retry_at, error=error)
        self._count(hook.name, "retried")
        log.warning("notification_retry", error=error, retry_in_seconds=round(delay, 1), **fields)
        return retry_at if status is None else 0

    def _count(self, webhook: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(webhook, outcome).inc()

    def _gauges(self) -> None:
        if self.metrics is None:
            return
        found = notify_outbox.depth(self.engine)
        for name in self.webhooks.keys() | found.keys():
            self.metrics.notification_outbox_pending.labels(name).set(found.get(name, 0))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def close(self) -> None:
        self.stop()
        for client in self._clients.values():
            client.close()
        self._clients.clear()
