"""Just-in-time access through the user API: request → approve → credentials clamped to the
grant; every refusal a 4xx with its stable code, nothing granted, and an audit event."""

from __future__ import annotations

import threading
from datetime import datetime

from tests.jit.conftest import Jit


def _code(response: object) -> str:
    return response.json()["error"]["code"]  # type: ignore[attr-defined]


def test_an_eligible_role_is_refused_until_a_request_is_approved_then_issued_until_its_end(jit):
    j: Jit = jit()
    refused = j.credentials()
    assert refused.status_code == 403 and _code(refused) == "grant_required"
    assert "awsbroker request" in refused.json()["error"]["message"]
    roles = {(r["account_alias"], r["role_name"]) for r in j.call("bob", "GET", "/api/v1/roles").json()}
    assert ("sandbox-prod", "ReadOnly") in roles  # listed: the person sees what they may request

    made = j.request(duration="1h")
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    assert made.json()["state"] == "pending"
    assert _code(j.credentials()) == "grant_required"  # pending grants nothing

    listed = j.call("alice", "GET", "/api/v1/requests").json()
    assert [r["id"] for r in listed["to_decide"]] == [rid] and listed["to_decide"][0]["can_approve"]
    approved = j.decide("alice", rid, "approve")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["state"] == "approved" and body["approvals"][0]["by"] == "alice"
    assert body["approvals"][0]["groups"] == ["aws-admins"]

    issued = j.credentials(duration_seconds=43200)
    assert issued.status_code == 200, issued.text
    expiry = datetime.fromisoformat(issued.json()["Expiration"])
    assert (expiry - j.clock.now).total_seconds() <= 3600 + 5  # the session never outlives the grant

    j.clock.advance(3600 - 600)  # ten minutes left: below STS's 15-minute minimum
    assert _code(j.credentials()) == "grant_ending"
    j.clock.advance(601)
    assert _code(j.credentials()) == "grant_required"
    mine = j.call("bob", "GET", "/api/v1/requests").json()["mine"]
    assert mine[0]["state"] == "expired"
    expire = j.audit("access.expire")
    assert [e["target_id"] for e in expire] == [str(rid)]

    request_events = j.audit("access.request")
    assert request_events[0]["outcome"] == "allow" and request_events[0]["details"]["reason"] == "incident INC-1"
    approve_events = j.audit("access.approve")
    assert approve_events[0]["details"]["approver_groups"] == ["aws-admins"]


def test_a_role_not_eligible_to_the_person_is_refused_and_audited(jit):
    j: Jit = jit()
    carol = j.request("carol")
    assert carol.status_code == 403 and _code(carol) == "not_eligible"
    standing = j.request("alice", account="sandbox-dev", role="Admin")  # standing: no request needed
    assert standing.status_code == 403 and _code(standing) == "not_eligible"
    assert "no request is needed" in standing.json()["error"]["message"]
    events = j.audit("access.request")
    assert {e["outcome"] for e in events} == {"deny"} and len(events) == 2
    assert j.call("carol", "GET", "/api/v1/requests").json() == {"mine": [], "to_decide": []}


def test_a_duration_above_the_policy_a_bad_duration_and_a_missing_reason_are_refused(jit):
    j: Jit = jit(ticket_pattern=r"INC-\d+")
    too_long = j.request(duration="3h")
    assert too_long.status_code == 422 and _code(too_long) == "duration_above_policy"
    assert too_long.json()["error"]["details"][0]["value"] == 7200
    for bad in ("soon", "10m", 0):
        r = j.request(duration=bad)
        assert r.status_code == 422 and _code(r) in ("invalid_duration", "invalid_value"), (bad, r.text)
    no_reason = j.request(reason="  ")
    assert no_reason.status_code == 422 and _code(no_reason) == "reason_required"
    no_ticket = j.request()
    assert no_ticket.status_code == 422 and _code(no_ticket) == "ticket_invalid"
    wrong_ticket = j.request(ticket="JIRA-1")
    assert _code(wrong_ticket) == "ticket_invalid"
    assert j.call("bob", "GET", "/api/v1/requests").json()["mine"] == []  # nothing was stored
    assert len(j.audit("access.request")) == 7
    ok = j.request(ticket="INC-42", duration=7200)
    assert ok.status_code == 201 and ok.json()["ticket"] == "INC-42" and ok.json()["duration"] == 7200
    again = j.request(ticket="INC-43")
    assert again.status_code == 409 and _code(again) == "request_exists"


def test_no_one_approves_their_own_request_nor_outside_the_approver_groups(jit):
    j: Jit = jit(approver_groups=["aws-admins", "developers"])
    rid = j.request().json()["id"]
    own = j.decide("bob", rid, "approve")
    assert own.status_code == 403 and _code(own) == "self_approval"
    outsider = j.decide("carol", rid, "approve")
    assert outsider.status_code == 403 and _code(outsider) == "not_approver"
    assert _code(j.credentials()) == "grant_required"
    events = j.audit("access.approve")
    assert [e["outcome"] for e in events] == ["deny", "deny"]
    assert {e["details"]["code"] for e in events} == {"self_approval", "not_approver"}
    missing = j.decide("alice", 999, "approve")
    assert missing.status_code == 404 and _code(missing) == "unknown_request"


def test_an_approver_who_left_the_group_is_refused_at_approval(jit):
    j: Jit = jit()
    rid = j.request().json()["id"]
    j.set_groups("alice", ["developers"])  # alice left aws-admins in the directory
    left = j.decide("alice", rid, "approve")
    assert left.status_code == 403 and _code(left) == "not_approver"
    assert j.audit("access.approve")[0]["outcome"] == "deny"
    assert _code(j.credentials()) == "grant_required"
    j.set_groups("alice", ["aws-admins"])
    assert j.decide("alice", rid, "approve").json()["state"] == "approved"


def test_two_approvals_need_two_distinct_approvers_and_concurrent_ones_count_once(jit):
    j: Jit = jit(approvals=2, approver_groups=["aws-admins"])
    j.set_groups("carol", ["aws-admins"])
    rid = j.request().json()["id"]
    results: list[object] = []

    def approve(who: str) -> None:
        results.append(j.decide(who, rid, "approve"))

    threads = [threading.Thread(target=approve, args=("alice",)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = sorted(r.status_code for r in results)  # type: ignore[attr-defined]
    assert codes == [200, 409, 409]
    state = j.call("bob", "GET", "/api/v1/requests").json()["mine"][0]
    assert state["state"] == "pending" and len(state["approvals"]) == 1  # alice counted once
    assert _code(j.credentials()) == "grant_required"
    done = j.decide("carol", rid, "approve")
    assert done.json()["state"] == "approved" and [a["by"] for a in done.json()["approvals"]] == ["alice", "carol"]
    assert j.credentials().status_code == 200


def test_deny_cancel_and_early_end_each_stop_issuance_and_are_audited(jit):
    j: Jit = jit()
    rid = j.request().json()["id"]
    denied = j.decide("alice", rid, "deny")
    assert denied.json()["state"] == "denied"
    late = j.decide("alice", rid, "approve")
    assert late.status_code == 409 and _code(late) == "request_not_pending"

    rid = j.request().json()["id"]
    assert _code(j.call("alice", "POST", f"/api/v1/requests/{rid}/cancel")) == "unknown_request"  # not hers
    assert j.call("bob", "POST", f"/api/v1/requests/{rid}/cancel").json()["state"] == "cancelled"

    rid = j.request().json()["id"]
    j.decide("alice", rid, "approve")
    assert j.credentials().status_code == 200
    assert _code(j.call("carol", "POST", f"/api/v1/grants/{rid}/end")) == "not_approver"
    ended = j.call("alice", "POST", f"/api/v1/grants/{rid}/end")
    assert ended.json()["state"] == "ended" and ended.json()["ended_by"] == "alice"
    assert _code(j.credentials()) == "grant_required"  # refused at once
    assert _code(j.call("alice", "POST", f"/api/v1/grants/{rid}/end")) == "grant_not_active"
    for action in ("access.deny", "access.cancel", "access.end"):
        assert "allow" in {e["outcome"] for e in j.audit(action)}, action


def test_an_admin_ends_a_grant_through_the_admin_api(jit, admin_headers):
    j: Jit = jit()
    rid = j.request().json()["id"]
    j.decide("alice", rid, "approve")
    ended = j.client.post(f"/api/v1/admin/grants/{rid}/end", headers=admin_headers)
    assert ended.status_code == 200 and ended.json()["ended_by"].startswith("admin:")
    assert _code(j.credentials()) == "grant_required"
    assert j.client.post(f"/api/v1/admin/grants/{rid}/end").status_code == 401


def test_auto_approval_for_the_on_call_group(jit):
    j: Jit = jit(auto_approve={"groups": ["developers"]})
    made = j.request()
    assert made.status_code == 201 and made.json()["state"] == "approved"
    assert made.json()["decided_by"] == "auto"
    assert j.credentials().status_code == 200
    assert j.audit("access.approve")[0]["details"]["auto_approved"] == {"group": "developers"}


def test_outside_business_hours_a_request_waits_for_an_approver(jit):
    j: Jit = jit(auto_approve={"groups": ["developers"],
                               "business_hours": {"timezone": "Europe/Berlin", "days": ["mon"], "start": "09:00",
                                                  "end": "09:01"}})
    j.clock.now = datetime.fromisoformat("2026-12-05T12:00:00+00:00")  # a Saturday
    assert j.request().json()["state"] == "pending"
    j.clock.now = datetime.fromisoformat("2026-12-07T08:00:30+00:00")  # Monday 09:00:30 in Berlin (UTC+1)
    assert j.request(account="sandbox-prod").status_code == 409  # one pending request per role


def test_explain_and_the_access_report_say_eligible_then_active_with_its_end(jit, admin_headers):
    j: Jit = jit()

    def bob_readonly() -> tuple[dict, dict]:
        explained = j.client.post("/api/v1/admin/explain", json={"username": "bob"}, headers=admin_headers).json()
        grant = next(g for g in explained["grants"] if g["role_name"] == "ReadOnly")
        report = j.client.get("/api/v1/admin/reports/access", params={"user": "bob", "role": "ReadOnly"},
                              headers=admin_headers).json()
        (row,) = report["rows"]
        return grant, row

    grant, row = bob_readonly()
    assert grant["access"] == "eligible" and grant["grant_ends_at"] is None
    assert grant["reasons"][0]["policy"] == "prod-readonly"
    assert row["access"] == "eligible" and row["grant_ends_at"] == ""
    rid = j.request().json()["id"]
    ends = j.decide("alice", rid, "approve").json()["ends_at"]
    grant, row = bob_readonly()
    assert grant["grant_ends_at"] == ends and row["access"] == "active" and row["grant_ends_at"] == ends
    csv = j.client.get("/api/v1/admin/reports/access", params={"format": "csv"}, headers=admin_headers).text
    assert csv.splitlines()[0].endswith(",access,grant_ends_at")
    dev = j.client.post("/api/v1/admin/explain", json={"username": "alice"}, headers=admin_headers).json()
    access = {(g["account_alias"], g["role_name"]): g["access"] for g in dev["grants"]}
    assert access[("sandbox-dev", "Admin")] == "standing" and access[("sandbox-prod", "ReadOnly")] == "eligible"


def test_an_access_review_snapshot_records_the_active_grant_with_its_end(jit, admin_headers):
    j: Jit = jit()
    rid = j.request().json()["id"]
    ends = j.decide("alice", rid, "approve").json()["ends_at"]
    made = j.client.post("/api/v1/admin/reviews/snapshots", json={"filter": {"user": "bob"}}, headers=admin_headers)
    assert made.status_code == 201, made.text
    saved = j.client.get(f"/api/v1/admin/reviews/snapshots/{made.json()['id']}", params={"format": "json"},
                         headers=admin_headers).json()
    readonly = [r for r in saved["rows"] if r["role_name"] == "ReadOnly" and r["account_alias"] == "sandbox-prod"]
    assert [(r["access"], r["grant_ends_at"]) for r in readonly] == [("active", ends)]


def test_two_requests_at_once_leave_one_standing(jit):
    j: Jit = jit()
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(j.request())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.status_code for r in results) == [201, 409, 409]  # type: ignore[attr-defined]
    mine = j.call("bob", "GET", "/api/v1/requests").json()["mine"]
    assert [r["state"] for r in mine if r["state"] == "pending"] == ["pending"]
