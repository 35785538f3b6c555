"""Notifications of just-in-time access: the jit tests' app (alice approves, bob is eligible to
ReadOnly in sandbox-prod) with webhooks to a real loopback receiver, and the delivery worker and
expiry sweep driven pass by pass on the flow's clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from broker.notify_worker import Delivery
from tests.jit.conftest import Clock, Jit, jit_sections
from tests.notify.receiver import Receiver

HMAC_KEY = "hmac-key-never-logged-5f3a9c"
PUBLIC_URL = "https://broker.example.org"


class Notified(Jit):
    """The jit helper, plus the app's delivery worker and sweep."""

    @property
    def services(self) -> Any:
        return self.client.app.state.services

    @property
    def delivery(self) -> Delivery:
        return next(j for j in self.client.app.state.jobs if isinstance(j, Delivery))

    def deliver(self) -> int:
        """One pass at the flow's clock (rows are due from the real time they were queued at)."""
        return self.delivery.run_once(now=max(self.clock.now, datetime.now(UTC)))

    def sweep(self) -> int:
        return int(self.services.access_requests.sweep())

    def outbox(self) -> list[dict[str, Any]]:
        from broker.db import notify_outbox

        return notify_outbox.rows(self.services.engine)


def notify_sections(hooks: dict[str, dict[str, Any]], **policy: Any) -> dict[str, Any]:
    data = jit_sections(notify=list(hooks), **policy)
    data["notifications"] = {"webhooks": hooks}
    data["server"] = {"public_url": PUBLIC_URL}
    return data


@pytest.fixture
def notified(app_factory: Callable[..., Any], receiver: Receiver) -> Callable[..., Notified]:
    from tests.conftest import ADMIN_TOKEN

    def make(hooks: dict[str, dict[str, Any]] | None = None, **policy: Any) -> Notified:
        hooks = hooks or {"chat": {"url": receiver.url(), "format": "json", "secret_env": "HOOK_KEY",
                                   "max_backoff_seconds": 4}}
        client = app_factory(env={"BROKER_ADMIN_TOKEN": ADMIN_TOKEN, "HOOK_KEY": HMAC_KEY},
                             **notify_sections(hooks, **policy))
        clock = Clock()
        client.app.state.services.flow.clock = clock
        n = Notified(client, clock)
        n.delivery._rand = lambda: 0.999  # the longest jitter: a retry is due after ~the whole back-off
        return n

    return make
