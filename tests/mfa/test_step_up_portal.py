"""Step-up MFA in the portal (TestClient on the real app and SQLite): an MFA role refused until a
second factor, TOTP enrolment, step-up, replay and recovery codes; every refusal a 4xx with its
stable code, nothing granted, and an audit event."""

from __future__ import annotations

import re
import time
from datetime import timedelta

from broker.web.sessions import host_cookie_name
from tests.mfa.conftest import Portal, code_at, earlier_code


def _deny_codes(events: list[dict]) -> list[str]:
    return [e["details"].get("code") for e in events if e["outcome"] != "allow"]


def test_an_mfa_role_leads_through_enrolment_and_step_up_then_opens_with_the_proof_audited(mfa_portal):
    p: Portal = mfa_portal()
    refused = p.console()
    assert refused.status_code == 303 and refused.headers["location"] == "/mfa/step-up?next=/mfa/continue"
    assert _deny_codes(p.audit("issue.console")) == ["mfa_required"]
    asked = p.client.get("/mfa/step-up?next=/mfa/continue").text
    assert "no authenticator app enrolled" in asked and 'href="/mfa?next=/mfa/continue"' in asked

    secret = p.enrol(next_url="/mfa/continue")
    name = host_cookie_name(p.services.config.sessions.cookie_name, secure=False)
    before_cookie = p.client.cookies.get(name)
    assert p.services.access.sessions.get(before_cookie) is not None
    wrong = p.confirm("000000" if code_at(secret) != "000000" else "111111")
    assert wrong.status_code == 403 and "not right" in wrong.text
    confirmed = p.confirm(earlier_code(secret), next_url="/mfa/continue")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.text.count("<li>") >= 10 and 'id="recovery-codes"' in confirmed.text
    assert [e["outcome"] for e in p.audit("mfa.enrol")] == ["allow", "deny"]  # newest first
    # the enrolment is no step-up (finding 2): the page leads to one with the new factor
    assert 'id="mfa-step-up" href="/mfa/step-up?next=/mfa/continue"' in confirmed.text
    assert p.console().status_code == 303
    stepped = p.step_up(code_at(secret), next_url="/mfa/continue")
    assert stepped.status_code == 303 and stepped.headers["location"] == "/mfa/continue"

    assert p.services.access.sessions.get(before_cookie) is None  # the step-up renewed the session id
    cont = p.client.get("/mfa/continue")
    assert cont.status_code == 200 and 'action="/console"' in cont.text and "sandbox-dev" in cont.text
    opened = p.console()
    assert opened.status_code == 302, opened.text
    allow = next(e for e in p.audit("issue.console") if e["outcome"] == "allow")
    assert allow["details"]["mfa_methods"] == ["otp"] and allow["details"]["mfa_at"].endswith("Z")
    assert allow["details"]["mfa_max_age"] == 43200
    for e in p.audit("mfa.enrol") + p.audit("mfa.step_up"):
        assert secret not in str(e)


def test_a_code_replayed_within_its_window_is_refused_nothing_changes_and_it_is_audited(mfa_portal):
    p: Portal = mfa_portal()
    secret = p.enrol()
    code = code_at(secret)
    assert p.confirm(code).status_code == 200
    replayed = p.step_up(code)
    assert replayed.status_code == 403 and "already used" in replayed.text
    events = p.audit("mfa.step_up")
    assert events[0]["outcome"] == "deny" and events[0]["details"]["code"] == "mfa_code_reused"
    assert events[0]["details"]["method"] == "totp" and code not in str(events[0])


def test_recovery_codes_work_once_each(mfa_portal):
    p: Portal = mfa_portal()
    secret = p.enrol()
    page = p.confirm(code_at(secret)).text
    codes = re.findall(r"<li>([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})</li>", page)
    assert len(codes) == 10 and len(set(codes)) == 10
    used = p.step_up(codes[0].lower().replace("-", " "), method="recovery", next_url="/mfa")
    assert used.status_code == 303 and used.headers["location"] == "/mfa"
    assert p.audit("mfa.recovery_used")[0]["details"]["recovery_codes_left"] == 9
    again = p.step_up(codes[0], method="recovery")
    assert again.status_code == 403 and "not right" in again.text
    assert _deny_codes(p.audit("mfa.step_up")) == ["mfa_code_invalid"]
    assert codes[0] not in str(p.audit("mfa.step_up")) + str(p.audit("mfa.recovery_used"))


def test_a_step_up_without_a_factor_and_wrong_codes_are_refused_then_rate_limited(mfa_portal):
    p: Portal = mfa_portal()
    none = p.step_up("123456")
    assert none.status_code == 303 and none.headers["location"] == "/mfa"
    assert _deny_codes(p.audit("mfa.step_up")) == ["mfa_not_enrolled"]
    secret = p.enrol()
    assert p.confirm(code_at(secret)).status_code == 200
    good = {code_at(secret, time.time() + d) for d in (-30, 0, 30)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in good)
    statuses = [p.step_up(wrong).status_code for _ in range(6)]
    assert statuses == [403] * 5 + [429]
    limited = p.step_up(code_at(secret, time.time() + 30))  # even the right code: the person waits
    assert limited.status_code == 429 and limited.headers.get("Retry-After")
    assert _deny_codes(p.audit("mfa.step_up"))[:2] == ["rate_limited", "rate_limited"]


def test_mfa_max_age_asks_again_once_the_proof_is_older_and_clamps_the_session(mfa_portal):
    from tests.portal.conftest import BOB_PW

    p: Portal = mfa_portal("bob", BOB_PW)
    secret = p.enrol()
    assert p.confirm(earlier_code(secret)).status_code == 200
    assert p.step_up(code_at(secret)).status_code == 303
    flow = p.services.flow
    issued = p.client.post("/cli-credentials", data={"csrf_token": p.csrf(), "account": "sandbox-prod",
                                                      "role": "ReadOnly"})
    assert issued.status_code == 200, issued.text
    allow = p.audit("issue.credentials")[0]
    assert allow["outcome"] == "allow" and allow["details"]["duration"] <= 3600
    start = flow.clock()
    flow.clock = lambda: start + timedelta(seconds=3600 - 899)  # under 15 minutes of the proof left
    again = p.client.post("/cli-credentials", data={"csrf_token": p.csrf(), "account": "sandbox-prod",
                                                     "role": "ReadOnly"})
    assert again.status_code == 303 and again.headers["location"].startswith("/mfa/step-up")
    assert _deny_codes(p.audit("issue.credentials")) == ["mfa_required"]


def test_removing_the_factor_needs_a_fresh_step_up(mfa_portal):
    p: Portal = mfa_portal()
    secret = p.enrol()
    assert p.confirm(code_at(secret)).status_code == 200
    steps = p.services.step_ups
    later = steps.clock() + timedelta(seconds=600)
    steps.clock = lambda: later
    asked = p.post("/mfa/totp/remove")
    assert asked.status_code == 303 and asked.headers["location"] == "/mfa/step-up?next=/mfa"
    assert _deny_codes(p.audit("mfa.remove")) == ["mfa_required"]
    assert p.step_up(code_at(secret, later.timestamp() + 30), next_url="/mfa").status_code == 303
    removed = p.post("/mfa/totp/remove")
    assert removed.status_code == 200 and "Not enrolled" in removed.text
    assert p.audit("mfa.remove")[0]["outcome"] == "allow"
