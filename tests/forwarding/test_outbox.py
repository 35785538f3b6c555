"""The outbox and the forwarder against a real database (SQLite and PostgreSQL) and a local TCP
syslog receiver: every audit event arrives, once, in order; a receiver that is down loses nothing."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from broker.audit import Decision
from broker.audit_forward.syslog import SEVERITY
from broker.config import DatabaseConfig
from broker.db import outbox
from broker.db.models import utcnow
from broker.db.session import make_engine
from broker.errors import Duplicate
from broker.metrics import Metrics
from tests.conftest import free_port
from tests.forwarding.conftest import (
    CTX,
    SD_ID,
    admin_writes,
    all_events,
    decisions,
    forwarder,
    forwarding_store,
    syslog_dest,
    wait_for,
)
from tests.forwarding.receivers import SyslogReceiver


@pytest.fixture
def receiver():
    rx = SyslogReceiver().start()
    yield rx
    rx.stop()


def test_events_arrive_in_order_framed_with_their_fields(engine, receiver):
    dest = syslog_dest(receiver.port, facility="local3")
    store = forwarding_store(engine, dest)
    admin_writes(store)  # audit.record: account.create, role.create ×2
    odd = decisions(1, outcome="deny")[0]._replace(target_id='odd "id"] \\ é', action="login")
    store.record_events([*decisions(2), odd])  # audit.record_decisions: one batch
    events = all_events(store)
    assert len(events) == 6 and len(outbox.pending_rows(engine)) == 6

    assert forwarder(engine, dest).run_once() == 6
    wait_for(lambda: len(receiver.messages()) == 6, "six messages")

    messages = receiver.messages()
    assert [int(m.sd[SD_ID]["id"]) for m in messages] == [e["id"] for e in events]
    for m, e in zip(messages, events, strict=True):
        assert (m.version, m.app, m.msgid, m.timestamp) == (1, "broker", e["action"], e["at"])
        assert m.pri == 19 * 8 + SEVERITY[e["outcome"]]
        assert m.sd[SD_ID]["actor"] == "admin:test" and m.sd[SD_ID]["outcome"] == e["outcome"]
        assert m.sd[SD_ID].get("target_id") == e["target_id"]
        assert json.loads(m.msg.decode("utf-8")) == e
    assert messages[-1].sd[SD_ID]["target_id"] == odd.target_id  # escaped, then read back whole
    assert messages[-1].pri == 19 * 8 + 4  # deny: warning
    assert outbox.pending_rows(engine) == []


def test_a_receiver_that_is_down_loses_nothing_and_gets_everything_once_it_is_up(engine):
    port = free_port()
    dest = syslog_dest(port, batch_size=2)
    store = forwarding_store(engine, dest)
    admin_writes(store)
    fw = forwarder(engine, dest)
    t0 = utcnow()

    assert fw.run_once(now=t0) == 0  # nobody listens
    rows = outbox.pending_rows(engine)
    assert len(rows) == 3
    assert [r["attempts"] for r in rows] == [1, 1, 0]  # the batch that was tried, and the one after it
    assert "ConnectionRefusedError" in rows[0]["last_error"]

    store.record_events(decisions(3))  # events keep coming meanwhile
    assert fw.run_once(now=t0) == 0  # the destination waits out its back-off: nothing is tried
    assert [r["attempts"] for r in outbox.pending_rows(engine)] == [1, 1, 0, 0, 0, 0]

    rx = SyslogReceiver(port=port).start()
    try:
        later = t0 + timedelta(hours=1)
        while fw.run_once(now=later):
            pass
        expected = [e["id"] for e in all_events(store)]
        wait_for(lambda: len(rx.event_ids()) >= len(expected), "every event")
        assert rx.event_ids() == expected  # in order, none lost, none twice
        assert outbox.pending_rows(engine) == []
    finally:
        rx.stop()


def test_back_off_grows_and_is_capped():
    from broker.audit_forward.forwarder import retry_delay

    top = [retry_delay(n, cap=60, rand=lambda: 0.999999) for n in range(1, 12)]
    assert top[:6] == pytest.approx([1, 2, 4, 8, 16, 32], rel=1e-5)
    assert max(top) == pytest.approx(60, rel=1e-5)
    assert retry_delay(3, cap=60, rand=lambda: 0.0) == 2  # the jitter halves it at most


def test_two_forwarders_never_send_the_same_event(database_url, engine, receiver):
    dest = syslog_dest(receiver.port, batch_size=7)
    store = forwarding_store(engine, dest)
    store.record_events(decisions(150))
    engines = [make_engine(DatabaseConfig(url=database_url)) for _ in range(2)]
    forwarders = [forwarder(e, dest) for e in engines]
    start = threading.Barrier(2)
    sent = [0, 0]

    def work(i: int) -> None:
        start.wait()
        while n := forwarders[i].run_once():
            sent[i] += n

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        while forwarders[0].run_once():  # whatever the other one left when its claim found nothing due
            pass
    finally:
        for e in engines:
            e.dispose()
    expected = [e["id"] for e in all_events(store)]
    wait_for(lambda: len(receiver.event_ids()) >= 150, "150 events")
    got = receiver.event_ids()
    assert len(got) == len(set(got)) == 150 and sorted(got) == expected
    assert outbox.pending_rows(engine) == []


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # SKIP LOCKED is PostgreSQL's
def test_a_claim_skips_rows_another_forwarder_has_locked(engine):
    dest = syslog_dest(free_port())
    store = forwarding_store(engine, dest)
    store.record_events(decisions(10))
    now = utcnow()
    with engine.connect() as other:  # another forwarder, in the middle of its claim: five rows locked
        locked = list(other.execute(text(
            "SELECT id FROM audit_outbox ORDER BY id LIMIT 5 FOR UPDATE")).scalars())
        mine = outbox.claim(engine, dest.key, limit=10, now=now, lease=timedelta(minutes=1))
        other.rollback()
    assert [c.outbox_id for c in mine] == [r["id"] for r in outbox.pending_rows(engine)][5:]
    assert not {c.outbox_id for c in mine} & set(locked)
    # and what is claimed (leased) is nobody else's until the lease ends
    assert outbox.claim(engine, dest.key, limit=10, now=now, lease=timedelta(minutes=1))[0].outbox_id == locked[0]
    assert outbox.claim(engine, dest.key, limit=10, now=now, lease=timedelta(minutes=1)) == []


def test_no_forwarding_configured_writes_no_outbox_row(engine):
    store = forwarding_store(engine)  # no destination
    admin_writes(store)
    store.record_events(decisions(3))
    assert len(all_events(store)) == 6
    assert outbox.pending_rows(engine) == []


def test_a_write_that_fails_leaves_neither_its_event_nor_its_outbox_rows(engine):
    dest = syslog_dest(free_port())
    store = forwarding_store(engine, dest)
    admin_writes(store)
    before = outbox.pending_rows(engine)
    with pytest.raises(Duplicate):
        admin_writes(store)
    assert outbox.pending_rows(engine) == before and len(all_events(store)) == 3
    assert {r["event_id"] for r in before} == {e["id"] for e in all_events(store)}


def test_every_destination_gets_its_own_rows(engine, receiver):
    down = syslog_dest(free_port(), name="archive")
    up = syslog_dest(receiver.port, name="siem")
    store = forwarding_store(engine, down, up)
    store.record_events(decisions(2))
    fw = forwarder(engine, down, up)
    assert fw.run_once() == 2  # the one that is up is not held back by the one that is down
    assert {r["destination"] for r in outbox.pending_rows(engine)} == {"archive"}
    assert len(outbox.pending_rows(engine)) == 2


def test_metrics_show_a_receiver_that_is_down(engine):
    port = free_port()
    dest = syslog_dest(port)
    store = forwarding_store(engine, dest)
    store.record_events(decisions(4))
    metrics = Metrics()
    fw = forwarder(engine, dest, metrics=metrics)
    t0 = utcnow() + timedelta(seconds=30)
    fw.run_once(now=t0)
    page = metrics.render().decode()
    label = f'destination="syslog:127.0.0.1:{port}"'
    assert f"broker_audit_outbox_pending{{{label}}} 4.0" in page
    assert f"broker_audit_forward_failures_total{{{label}}} 1.0" in page
    oldest = next(line for line in page.splitlines() if line.startswith(f"broker_audit_outbox_oldest_seconds{{{label}}}"))
    assert float(oldest.split()[-1]) >= 30

    rx = SyslogReceiver(port=port).start()
    try:
        fw.run_once(now=t0 + timedelta(hours=1))
    finally:
        rx.stop()
    page = metrics.render().decode()
    assert f"broker_audit_outbox_pending{{{label}}} 0.0" in page
    assert f"broker_audit_forwarded_total{{{label}}} 4.0" in page



def test_a_retention_purge_never_deletes_an_event_still_waiting_to_be_forwarded(engine):
    """Old events, one of them still in the outbox (its receiver is down): the purge stops before
    it, the rest of the chain still verifies, and the event is still there to be sent."""
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    old = now - timedelta(days=40)
    plain = forwarding_store(engine)
    forwarded = forwarding_store(engine, syslog_dest(free_port()))
    plain.record_events([Decision(CTX, "login", "allow", at=old + timedelta(seconds=i)) for i in range(2)])
    forwarded.record_events([Decision(CTX, "login", "allow", at=old + timedelta(seconds=5))])
    plain.record_events([Decision(CTX, "login", "allow", at=old + timedelta(seconds=6))])
    assert [r["event_id"] for r in outbox.pending_rows(engine)] == [3]

    done = plain.purge_audit(retention_days=30, ctx=CTX, dry_run=False, now=now)
    assert (done["rows"], done["through_id"]) == (2, 2)  # not 4: event 3 is still to be forwarded
    assert [e["id"] for e in all_events(plain)][:2] == [3, 4]
    assert [r["event_id"] for r in outbox.pending_rows(engine)] == [3]
    assert plain.verify_audit().ok
