"""Notifications of access requests, delivered to a real loopback receiver that fails first:
every event arrives, once per delivery id, signed, in its documented shape; nothing is lost while
the receiver is down or across a broker restart; a 400 gives up; secrets never reach the logs."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

from tests.notify.conftest import HMAC_KEY, PUBLIC_URL, Notified
from tests.notify.receiver import Receiver

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify() -> Any:
    """The README's receiver-side signature check, run as written."""
    text = README.read_text(encoding="utf-8")
    code = re.search(r"<!-- signature-check -->\n```python\n(.*?)```", text, re.DOTALL)
    assert code is not None, "the README's signature check is missing"
    assert len(code[1].strip().splitlines()) <= 10
    scope: dict[str, Any] = {}
    exec(compile(code[1], "README.md", "exec"), scope)  # noqa: S102 - the documented snippet itself
    return scope["verify"]


def deliver_all(n: Notified, passes: int = 30) -> None:
    """Passes until the outbox is empty, the clock moving past each back-off."""
    for _ in range(passes):
        n.deliver()
        if not n.outbox():
            return
        n.clock.advance(5)
    raise AssertionError(f"still queued: {n.outbox()}")


def test_request_approve_end_reach_a_receiver_that_fails_first_once_each_signed(notified, receiver: Receiver):
    n: Notified = notified()
    verify = readme_verify()
    receiver.script = [500]
    rid = n.request().json()["id"]
    assert [r["event"] for r in n.outbox()] == ["access.request"]  # queued with the request itself
    assert n.deliver() == 0  # 500: kept, retried later
    row = n.outbox()[0]
    assert row["attempts"] == 1 and row["last_error"] == "HTTP 500"
    receiver.down()
    n.clock.advance(5)
    assert n.deliver() == 0  # refused: kept
    assert n.outbox()[0]["attempts"] == 2 and n.outbox()[0]["last_error"] == "ConnectError"
    n.clock.advance(1)
    assert n.deliver() == 0 and n.outbox()[0]["attempts"] == 2  # its back-off has not passed: not tried
    receiver.up()
    n.clock.advance(5)
    assert n.deliver() == 1 and n.outbox() == []

    assert n.decide("alice", rid, "approve").status_code == 200
    assert n.call("alice", "POST", f"/api/v1/grants/{rid}/end").status_code == 200
    deliver_all(n)

    got = receiver.by_event()
    assert list(got) == ["access.request", "access.approve", "access.end"]
    accepted = receiver.accepted()
    assert len({r.delivery for r in accepted}) == len(accepted) == 3  # once per delivery id
    first = [r for r in receiver.received if r.event == "access.request"]
    assert len({r.delivery for r in first}) == 1 and len(first) == 2  # the 500 and the retry: one id
    for r in accepted:
        assert r.path == "/hook/T0KEN-in-the-path"
        assert verify(HMAC_KEY.encode(), r.headers["x-broker-signature"], r.raw, tolerance=10**9)
        assert not verify(b"another key", r.headers["x-broker-signature"], r.raw, tolerance=10**9)
        assert not verify(HMAC_KEY.encode(), r.headers["x-broker-signature"], r.raw + b" ", tolerance=10**9)
        body = r.body
        assert body["event"] == r.event and body["delivery"] == r.delivery
        assert body["link"] == f"{PUBLIC_URL}/requests#request-{rid}"
        data = body["data"]
        assert data["request_id"] == rid and data["requester"] == "bob" and data["account_id"] == "222222222222"
        assert data["account_alias"] == "sandbox-prod" and data["role_name"] == "ReadOnly"
        assert data["reason"] == "incident INC-1" and data["duration"] == 3600
    request, approve, end = (got[e][0].body for e in ("access.request", "access.approve", "access.end"))
    assert request["data"]["state"] == "pending" and "bob requests ReadOnly" in request["title"]
    assert approve["data"]["state"] == "approved" and approve["data"]["by"] == "alice"
    assert approve["data"]["ends_at"] is not None
    assert {"label": "Ends at", "value": approve["data"]["ends_at"]} in approve["facts"]
    assert end["data"]["state"] == "ended" and end["data"]["by"] == "alice"


def test_deny_cancel_expiry_by_the_sweep_and_pending_expiry_are_notified(notified, receiver: Receiver):
    n: Notified = notified(pending_expiry="2h")
    denied = n.request().json()["id"]
    n.decide("alice", denied, "deny")
    cancelled = n.request().json()["id"]
    assert n.call("bob", "POST", f"/api/v1/requests/{cancelled}/cancel").status_code == 200
    lapsing = n.request().json()["id"]
    n.decide("alice", lapsing, "approve")
    n.clock.advance(3601)
    assert n.sweep() == 1  # the grant's end has passed
    assert n.sweep() == 0  # recorded once
    stale = n.request().json()["id"]
    n.clock.advance(7201)
    assert n.sweep() == 1  # pending longer than pending_expiry
    deliver_all(n)

    got = {(r.event, r.body["data"]["request_id"]): r.body for r in receiver.accepted()}
    assert got[("access.deny", denied)]["data"]["by"] == "alice"
    assert got[("access.cancel", cancelled)]["data"]["state"] == "cancelled"
    assert got[("access.expire", lapsing)]["data"]["was"] == "approved"
    assert got[("access.expire", stale)]["data"]["was"] == "pending"
    assert "expired undecided" in got[("access.expire", stale)]["title"]
    mine = {r["id"]: r["state"] for r in n.call("bob", "GET", "/api/v1/requests").json()["mine"]}
    assert mine == {denied: "denied", cancelled: "cancelled", lapsing: "expired", stale: "expired"}
    expire = n.audit("access.expire")
    assert sorted((e["target_id"], e["details"]["was"]) for e in expire) == sorted(
        [(str(lapsing), "approved"), (str(stale), "pending")])
    assert len(receiver.accepted()) == len({r.delivery for r in receiver.accepted()})


def test_slack_and_teams_bodies_have_their_documented_shape(notified, receiver: Receiver):
    n: Notified = notified({
        "slack": {"url": receiver.url("/slack"), "format": "slack", "unsigned": True},
        "teams": {"url": receiver.url("/teams"), "format": "teams", "unsigned": True},
    })
    rid = n.request(ticket="INC-7").json()["id"]
    deliver_all(n)
    by_path = {r.path: r for r in receiver.accepted()}
    link = f"{PUBLIC_URL}/requests#request-{rid}"

    slack = by_path["/slack"]
    assert "x-broker-signature" not in slack.headers and slack.headers["x-broker-event"] == "access.request"
    body = slack.body
    assert set(body) == {"text", "blocks"} and "bob requests ReadOnly" in body["text"]
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[0] == "header" and kinds[-1] == "actions" and "section" in kinds
    assert body["blocks"][0]["text"]["type"] == "plain_text"
    fields = next(b["fields"] for b in body["blocks"] if "fields" in b)
    assert 1 <= len(fields) <= 10 and all(f["type"] == "mrkdwn" for f in fields)
    assert {"type": "mrkdwn", "text": "*Account*\nsandbox-prod (222222222222)"} in fields
    assert {"type": "mrkdwn", "text": "*Ticket*\nINC-7"} in fields
    button = body["blocks"][-1]["elements"][0]
    assert button["type"] == "button" and button["url"] == link and button["text"]["type"] == "plain_text"

    teams = by_path["/teams"].body
    assert teams["type"] == "message" and len(teams["attachments"]) == 1
    attachment = teams["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    facts = next(b["facts"] for b in card["body"] if b["type"] == "FactSet")
    assert {"title": "Role", "value": "ReadOnly"} in facts and {"title": "Requester", "value": "bob"} in facts
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open in the broker", "url": link}]


def test_a_400_gives_up_at_once_and_attempts_run_out_into_failed(notified, receiver: Receiver):
    n: Notified = notified({"chat": {"url": receiver.url(), "secret_env": "HOOK_KEY", "max_attempts": 2}})
    receiver.script = [400]
    n.request()
    assert n.deliver() == 0
    (row,) = n.outbox()
    assert row["state"] == "failed" and row["last_error"] == "HTTP 400" and row["attempts"] == 1
    n.clock.advance(600)
    assert n.deliver() == 0 and len(receiver.received) == 1  # never tried again

    receiver.status = 503
    rid = row["payload"]["data"]["request_id"]
    assert n.call("bob", "POST", f"/api/v1/requests/{rid}/cancel").status_code == 200  # access.cancel queued
    n.deliver()  # 503: retried
    n.clock.advance(5)
    n.deliver()  # 503 again: max_attempts spent
    rows = n.outbox()
    assert [r["state"] for r in rows] == ["failed", "failed"] and rows[1]["attempts"] == 2
    metrics = n.client.get("/metrics").text
    assert 'broker_notifications_total{outcome="given_up",webhook="chat"} 1.0' in metrics
    assert 'broker_notifications_total{outcome="failed",webhook="chat"} 1.0' in metrics
    assert 'broker_notifications_total{outcome="retried",webhook="chat"} 1.0' in metrics
    assert 'broker_notification_outbox_pending{webhook="chat"} 0.0' in metrics


def test_a_restart_delivers_what_was_queued_before_it(app_factory, receiver: Receiver, notified):
    first: Notified = notified()
    receiver.down()
    rid = first.request().json()["id"]
    first.deliver()  # refused: stays queued
    assert len(first.outbox()) == 1
    first.client.close()
    first.services.engine.dispose()

    receiver.up()
    second: Notified = notified()  # the same database file: a new broker process's app
    assert [r["payload"]["data"]["request_id"] for r in second.outbox()] == [rid]
    second.clock.advance(5)
    assert second.deliver() == 1
    assert [r.event for r in receiver.accepted()] == ["access.request"]


def test_the_webhook_url_and_the_hmac_key_never_reach_the_logs(notified, receiver: Receiver, capfd):
    n: Notified = notified()
    receiver.script = [500, 400]
    n.request()
    n.deliver()
    n.clock.advance(5)
    n.deliver()
    receiver.down()
    rid = n.outbox()[0]["payload"]["data"]["request_id"]
    n.call("bob", "POST", f"/api/v1/requests/{rid}/cancel")
    n.clock.advance(5)
    n.deliver()  # refused
    out = "".join(capfd.readouterr())
    assert "notification_retry" in out and "notification_given_up" in out  # the logs were captured
    for secret in (HMAC_KEY, "T0KEN-in-the-path", receiver.url()):
        assert secret not in out
    audit = str(n.audit("access.request")) + str(n.audit("access.cancel"))
    assert HMAC_KEY not in audit and "T0KEN" not in audit
    expected = hmac.new(HMAC_KEY.encode(), b"x", hashlib.sha256).hexdigest()
    assert expected not in out


def test_an_unreachable_receiver_costs_one_attempt_per_pass_not_one_per_notification(notified, receiver: Receiver):
    n: Notified = notified()
    receiver.down()
    rid = n.request().json()["id"]
    n.call("bob", "POST", f"/api/v1/requests/{rid}/cancel")
    n.request()
    assert len(n.outbox()) == 3
    n.deliver()
    rows = n.outbox()
    assert [r["attempts"] for r in rows] == [1, 0, 0]  # the others were not tried this pass
    assert len({r["next_attempt_at"] for r in rows}) == 1  # and wait as long as the first
    receiver.up()
    n.clock.advance(5)
    assert n.deliver() == 3
    assert [r.event for r in receiver.accepted()] == ["access.request", "access.cancel", "access.request"]
