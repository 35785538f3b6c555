"""The notification outbox shared by replicas: two delivery workers on one PostgreSQL database
never deliver a row twice; ``Notifier.notify`` (break-glass's way in) queues in its own
transaction; the app's lifespan runs the worker, which delivers by itself."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from pydantic import SecretStr

from broker.db import notify_outbox
from broker.db.notify_outbox import OutboxNotifier
from broker.notify import Notification
from broker.notify.config import Webhook, WebhookConfig
from broker.notify_worker import Delivery
from tests.notify.conftest import Notified
from tests.notify.receiver import Receiver


def _hook(receiver: Receiver) -> Webhook:
    config = WebhookConfig(url=SecretStr(receiver.url()), unsigned=True)
    return Webhook("chat", config, SecretStr(receiver.url()), None)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_workers_on_postgresql_never_deliver_one_row_twice(engine: Any, receiver: Receiver):
    notifier = OutboxNotifier(engine, ["chat"])
    for i in range(60):
        notifier.notify(["chat"], Notification(event="break_glass.use", title=f"note {i}", data={"n": i}))
    workers = [Delivery(engine, {"chat": _hook(receiver)}) for _ in range(2)]
    done = [0, 0]

    def work(k: int) -> None:
        while notify_outbox.rows(engine):
            done[k] += workers[k].run_once()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ids = [r.delivery for r in receiver.received]
    assert len(ids) == 60 and len(set(ids)) == 60  # each row once
    assert sorted(r.body["data"]["n"] for r in receiver.received) == list(range(60))
    assert sum(done) == 60 and all(done), done  # both workers took a share
    for w in workers:
        w.close()


def test_notify_for_unknown_webhooks_queues_nothing_and_never_raises(engine: Any):
    notifier = OutboxNotifier(engine, ["chat"])
    notifier.notify(["elsewhere"], Notification(event="break_glass.use", title="x"))
    assert notify_outbox.rows(engine) == []
    notifier.notify(("chat", "chat"), Notification(event="break_glass.use", title="glass broken"))
    (row,) = notify_outbox.rows(engine)
    assert row["webhook"] == "chat" and row["event"] == "break_glass.use" and row["payload"]["title"] == "glass broken"


def test_the_lifespan_runs_the_delivery_worker(notified, receiver: Receiver):
    n: Notified = notified()
    with n.client:  # the lifespan: its threads start
        n.request()
        deadline = time.monotonic() + 15
        while not receiver.accepted() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert [r.event for r in receiver.accepted()] == ["access.request"]
    assert n.outbox() == []
