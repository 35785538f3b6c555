"""The expiry sweep on every replica: two brokers on one database sweeping at once record each
lapsed grant and each stale pending request once — one audit event, one notification."""

from __future__ import annotations

import threading

from tests.notify.conftest import Notified
from tests.notify.receiver import Receiver


def test_two_replicas_sweeping_at_once_record_each_expiry_once(notified, receiver: Receiver):
    one: Notified = notified(pending_expiry="1h")
    two: Notified = notified(pending_expiry="1h")  # another replica: the same database
    two.clock.now = one.clock.now
    granted = one.request().json()["id"]
    one.decide("alice", granted, "approve")
    pending = one.request(role="ReadOnly", account="222222222222")
    assert pending.status_code == 409  # one pending request or active grant per role
    one.clock.advance(3601)
    two.clock.advance(3601)
    stale = two.request().json()["id"]  # pending from now on
    one.clock.advance(3601)
    two.clock.advance(3601)

    counts: list[int] = []
    barrier = threading.Barrier(4)

    def sweep(n: Notified) -> None:
        barrier.wait()
        counts.append(n.sweep())

    threads = [threading.Thread(target=sweep, args=(n,)) for n in (one, two, one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sum(counts) == 2, counts
    expired = one.audit("access.expire")
    assert sorted(int(e["target_id"]) for e in expired) == [granted, stale]
    rows = one.outbox()
    assert sorted((r["event"], r["payload"]["data"]["request_id"]) for r in rows if r["event"] == "access.expire") \
        == [("access.expire", granted), ("access.expire", stale)]
