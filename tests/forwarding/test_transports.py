"""The two destinations against local receivers: syslog over TLS (a CA made in the test), the
RFC 5424 format itself, and the HTTPS webhook (custom CA, headers from the environment, retries)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from broker import logs
from broker.audit_forward.config import SyslogDestination
from broker.audit_forward.syslog import BOM, SyslogSender, format_message, frame, sd_escape
from broker.db import outbox
from broker.db.models import utcnow
from tests.forwarding.conftest import (
    SD_ID,
    all_events,
    decisions,
    forwarder,
    forwarding_store,
    syslog_dest,
    wait_for,
    webhook_dest,
)
from tests.forwarding.receivers import (
    SyslogReceiver,
    WebhookReceiver,
    make_client_pki,
    parse_rfc5424,
    read_frames,
    server_tls,
)

EVENT = {
    "id": 42, "at": "2026-12-03T11:00:00.123456Z", "actor": 'al"ice]\\', "action": "issue.credentials",
    "outcome": "deny", "target_type": "role", "target_id": "111122223333/Admin", "request_id": None,
    "source_ip": "192.0.2.1", "before": None, "after": None, "details": {"reason": "no_grant", "name": "Zoë"},
}


def test_a_message_is_rfc5424_with_the_event_as_json():
    raw = format_message(EVENT, facility="authpriv", app_name="broker", hostname="broker-1.example",
                         procid="1234", sd_id=SD_ID)
    m = parse_rfc5424(raw)
    assert (m.pri, m.version, m.timestamp, m.hostname, m.app, m.procid, m.msgid) == (
        10 * 8 + 4, 1, EVENT["at"], "broker-1.example", "broker", "1234", "issue.credentials")
    assert m.sd == {SD_ID: {"id": "42", "actor": 'al"ice]\\', "outcome": "deny", "target_type": "role",
                            "target_id": "111122223333/Admin", "source_ip": "192.0.2.1"}}
    assert raw.split(b"] ", 1)[1].startswith(BOM)
    assert json.loads(m.msg.decode("utf-8")) == EVENT
    assert read_frames(frame(raw) + frame(b"x")) == [raw, b"x"]


def test_header_fields_stay_within_the_abnf():
    odd = {**EVENT, "action": "a b\tc" + "x" * 40, "outcome": "allow"}
    m = parse_rfc5424(format_message(odd, facility="local7", app_name="broker", hostname="host with space",
                                     procid="1", sd_id=SD_ID))
    assert m.msgid == ("a_b_c" + "x" * 40)[:32] and m.hostname == "host_with_space"
    assert m.pri == 23 * 8 + 6
    assert sd_escape('a"b\\c]d') == 'a\\"b\\\\c\\]d'


def test_syslog_over_tls_verifies_the_receiver(engine, pki):
    rx = SyslogReceiver(tls=server_tls(pki.cert, pki.key)).start()
    try:
        good = syslog_dest(rx.port, tls={"ca_file": str(pki.ca), "server_name": "localhost"}, name="tls")
        store = forwarding_store(engine, good)
        store.record_events(decisions(3))
        assert forwarder(engine, good).run_once() == 3
        expected = [e["id"] for e in all_events(store)]
        wait_for(lambda: len(rx.event_ids()) == 3, "three messages over TLS")
        assert rx.event_ids() == expected

        # a receiver whose certificate another CA signed: refused, the events stay
        stranger = syslog_dest(rx.port, tls={"ca_file": str(pki.other_ca), "server_name": "localhost"}, name="tls")
        store.record_events(decisions(1))
        assert forwarder(engine, stranger).run_once() == 0
        (row,) = outbox.pending_rows(engine)
        assert row["attempts"] == 1 and "certificate" in row["last_error"]
    finally:
        rx.stop()


def test_the_certificate_must_name_the_receiver(pki):
    rx = SyslogReceiver(tls=server_tls(pki.cert, pki.key)).start()
    try:
        sender = SyslogSender(SyslogDestination.model_validate(
            {"type": "syslog", "address": f"127.0.0.1:{rx.port}", "tls": {"ca_file": str(pki.ca),
                                                                           "server_name": "elsewhere.example"}}))
        from broker.audit_forward.errors import DeliveryFailed

        with pytest.raises(DeliveryFailed, match="certificate"):
            sender.send([EVENT])
    finally:
        rx.stop()


def test_syslog_with_a_client_certificate(engine, pki, tmp_path):
    client = make_client_pki(tmp_path / "client")
    rx = SyslogReceiver(tls=server_tls(pki.cert, pki.key, client_ca=client.ca)).start()
    try:
        tls = {"ca_file": str(pki.ca), "server_name": "localhost"}
        without = syslog_dest(rx.port, tls=tls, name="mtls")
        store = forwarding_store(engine, without)
        store.record_events(decisions(2))
        # refused by the receiver (TLS 1.3 says so only after the handshake): not delivered, kept
        assert forwarder(engine, without).run_once() == 0
        assert [r["attempts"] for r in outbox.pending_rows(engine)] == [1, 1]
        assert rx.event_ids() == []

        with_cert = syslog_dest(rx.port, tls={**tls, "cert_file": str(client.cert), "key_file": str(client.key)},
                                name="mtls")
        assert forwarder(engine, with_cert).run_once(now=utcnow() + timedelta(hours=1)) == 2
        wait_for(lambda: len(rx.event_ids()) == 2, "two messages over mutual TLS")
        assert rx.event_ids() == [e["id"] for e in all_events(store)]
    finally:
        rx.stop()


def test_a_receiver_that_drops_the_connection_mid_batch_gets_the_batch_again(engine):
    rude = SyslogReceiver(rude=True).start()
    try:
        dest = syslog_dest(rude.port)
        store = forwarding_store(engine, dest)
        store.record_events(decisions(20))
        assert forwarder(engine, dest).run_once() == 0  # reset with our bytes unread: not delivered
        rows = outbox.pending_rows(engine)
        assert len(rows) == 20 and {r["attempts"] for r in rows} == {1}
    finally:
        rude.stop()


@pytest.fixture
def webhook(pki):
    rx = WebhookReceiver(tls=server_tls(pki.cert, pki.key)).start()
    yield rx
    rx.stop()


def test_webhook_batches_arrive_with_headers_from_the_environment(engine, pki, webhook, capfd):
    logs.configure("debug", "json")  # to this test's stdout, at the most talkative level
    dest = webhook_dest(webhook.url, ca_file=str(pki.ca), headers_env={"Authorization": "HOOK_AUTH"}, batch_size=2)
    store = forwarding_store(engine, dest)
    store.record_events(decisions(3))
    fw = forwarder(engine, dest, env={"HOOK_AUTH": "Bearer hook-secret-1234"})
    while fw.run_once():
        pass
    assert webhook.event_ids() == [e["id"] for e in all_events(store)]
    assert [len(body["events"]) for _, body in webhook.requests] == [2, 1]
    headers, body = webhook.requests[0]
    assert headers["Authorization"] == "Bearer hook-secret-1234"
    assert headers["Content-Type"] == "application/json"
    assert body["events"][0] == all_events(store)[0]
    assert outbox.pending_rows(engine) == []
    assert "hook-secret-1234" not in "".join(capfd.readouterr())


def test_a_webhook_that_answers_an_error_is_retried_never_dropped(engine, pki, webhook, capfd):
    logs.configure("debug", "json")
    webhook.statuses = [503, 400]  # down for a while, then misconfigured for a while, then fine
    dest = webhook_dest(webhook.url, ca_file=str(pki.ca), headers_env={"X-Api-Key": "HOOK_KEY"})
    store = forwarding_store(engine, dest)
    store.record_events(decisions(2))
    fw = forwarder(engine, dest, env={"HOOK_KEY": "key-secret-5678"})
    t = utcnow()
    assert fw.run_once(now=t) == 0
    assert [r["last_error"] for r in outbox.pending_rows(engine)] == ["HTTP 503", "HTTP 503"]
    assert fw.run_once(now=t + timedelta(hours=1)) == 0
    assert [r["attempts"] for r in outbox.pending_rows(engine)] == [2, 2]
    assert fw.run_once(now=t + timedelta(hours=2)) == 2
    assert webhook.event_ids() == [e["id"] for e in all_events(store)]
    assert outbox.pending_rows(engine) == []
    out = "".join(capfd.readouterr())
    assert "HTTP 503" in out and "HTTP 400" in out and "key-secret-5678" not in out


def test_a_webhook_with_an_unknown_ca_gets_nothing(engine, pki, webhook):
    dest = webhook_dest(webhook.url, ca_file=str(pki.other_ca))
    store = forwarding_store(engine, dest)
    store.record_events(decisions(1))
    assert forwarder(engine, dest).run_once() == 0
    assert webhook.requests == [] and outbox.pending_rows(engine)[0]["last_error"] == "ConnectError"
