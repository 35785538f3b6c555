"""Who may enrol a second factor (attack findings 2, 3 and 5), on the real app (TestClient, SQLite):
the first enrolment is no step-up; under ``mfa.enrolment: invite`` a first factor needs an admin's
one-time enrolment code; an unconfirmed enrolment is shown to, and confirmable by, only a session
that may add a factor, and only for 10 minutes; registering a passkey checks it as its options do;
an admin resets a person's factors. Every refusal a 4xx with its stable code and an audit event."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.mfa.credentials import NewStoredCredential
from broker.mfa.enrolment import _key
from tests.conftest import ADMIN_TOKEN
from tests.mfa.conftest import Portal, code_at, earlier_code
from tests.portal.conftest import BOB_PW, sign_in

ALICE_ID = "a1b2c3d4-0000-4000-8000-000000000001"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
INVITE = {"mfa": {"enrolment": "invite"}}
SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')


def _issue(p: Portal, username: str = "alice", headers: dict[str, str] | None = None) -> Any:
    return p.client.post("/api/v1/admin/mfa/enrolment-codes", json={"username": username},
                         headers=ADMIN if headers is None else headers)


def _code(p: Portal, username: str = "alice") -> str:
    issued = _issue(p, username)
    assert issued.status_code == 201, issued.text
    code: str = issued.json()["code"]
    return code


def _second_session(p: Portal, who: str = "alice", password: str | None = None) -> Portal:
    """Another browser of the same person: a new client on the same app, signed in anew."""
    from fastapi.testclient import TestClient

    client = TestClient(p.client.app, raise_server_exceptions=False)
    client.follow_redirects = False
    assert (sign_in(client) if password is None else sign_in(client, who, password)).status_code == 303
    return Portal(client)


def _anonymous(p: Portal) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(p.client.app, raise_server_exceptions=False)


def _passkey(p: Portal, person_id: str = ALICE_ID, username: str = "alice") -> None:
    """A passkey in the real credential store (as a registration stores it)."""
    assert p.services.passkeys.store.add(NewStoredCredential(
        person_id=person_id, username=username, credential_id=os.urandom(16), public_key=b"\xa5" * 77,
        sign_count=0, transports=("internal",), aaguid="00000000-0000-0000-0000-000000000000", label="Laptop",
        created_at=datetime.now(UTC))) is not None


def _codes(events: list[dict[str, Any]]) -> list[str | None]:
    return [e["details"].get("code") for e in events if e["outcome"] != "allow"]


# ---- finding 2: the first enrolment is no step-up ----


def test_an_open_enrolment_does_not_step_the_session_up(mfa_portal):
    p: Portal = mfa_portal()
    secret = p.enrol()
    confirmed = p.confirm(earlier_code(secret))
    assert confirmed.status_code == 200 and 'id="recovery-codes"' in confirmed.text
    assert 'id="mfa-step-up" href="/mfa/step-up?next=/mfa"' in confirmed.text  # the page leads to a step-up
    refused = p.console()  # the password and a factor of its own: still no MFA role
    assert refused.status_code == 303 and refused.headers["location"].startswith("/mfa/step-up")
    assert _codes(p.audit("issue.console")) == ["mfa_required"]
    assert p.step_up(code_at(secret)).status_code == 303
    assert p.console().status_code == 302  # with a step-up of the new factor


# ---- invite: an admin's enrolment code ----


def test_invite_needs_an_admins_code_which_works_once_for_that_person_only(mfa_portal):
    p: Portal = mfa_portal(**INVITE)
    page = p.client.get("/mfa").text
    assert 'id="enrolment-code"' in page and 'id="webauthn-enrolment-code"' in page
    none = p.post("/mfa/totp/enrol")
    assert none.status_code == 403 and "needs an enrolment code" in none.text
    assert p.services.step_ups.store.totp(ALICE_ID) is None  # nothing started
    wrong = p.post("/mfa/totp/enrol", enrolment_code="not-a-code")
    assert wrong.status_code == 403 and "not right, used or expired" in wrong.text
    bobs = _code(p, "bob")
    assert p.post("/mfa/totp/enrol", enrolment_code=bobs).status_code == 403  # bound to bob's immutable id

    issued = _issue(p)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    code = body["code"]
    assert body["username"] == "alice" and len(code) >= 22
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(hours=23, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=24)
    ttl = p.services.state.ttl(_key(ALICE_ID, code))
    assert ttl is not None and 86000 < ttl <= 86400  # kept hashed, with its TTL
    assert p.services.state.get(f"mfa:enrolment_code:{code}") is None

    started = p.post("/mfa/totp/enrol", enrolment_code=code)
    assert started.status_code == 303, started.text
    again = _second_session(p)  # the same code a second time: used
    used = again.post("/mfa/totp/enrol", enrolment_code=code)
    assert used.status_code == 403 and "not right, used or expired" in used.text
    secret = SECRET.search(p.client.get("/mfa").text)
    assert secret is not None
    assert p.confirm(earlier_code(secret.group(1))).status_code == 200
    assert p.console().status_code == 303  # enrolled, not stepped up
    events = p.audit("mfa.enrolment_code_used")
    assert [e["outcome"] for e in events] == ["deny", "allow", "deny", "deny", "deny"]  # newest first
    assert _codes(events) == ["enrolment_code_invalid"] * 3 + ["enrolment_code_required"]
    issued_events = p.audit("mfa.enrolment_code")
    assert [e["details"]["user"] for e in issued_events] == ["alice", "bob"]
    assert issued_events[0]["actor"].startswith("admin:")
    everything = str(events) + str(issued_events)
    assert code not in everything and bobs not in everything


def test_wrong_enrolment_codes_are_rate_limited_like_step_ups(mfa_portal):
    p: Portal = mfa_portal(**INVITE)
    statuses = [p.post("/mfa/totp/enrol", enrolment_code=f"guess-{i}").status_code for i in range(6)]
    assert statuses == [403] * 5 + [429]
    code = _code(p)
    limited = p.post("/mfa/totp/enrol", enrolment_code=code)  # even the right code: the person waits
    assert limited.status_code == 429 and limited.headers.get("Retry-After")
    assert _codes(p.audit("mfa.enrolment_code_used"))[0] == "rate_limited"


def test_admin_api_refusals(mfa_portal):
    p: Portal = mfa_portal(**INVITE)
    unknown = _issue(p, "mallory")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert _anonymous(p).post("/api/v1/admin/mfa/enrolment-codes", json={"username": "alice"}).status_code == 401
    no_csrf = _issue(p, headers={})  # alice's portal session, no admin, no CSRF token
    assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf_failed"
    extra = p.client.post("/api/v1/admin/mfa/enrolment-codes", json={"username": "alice", "ttl": 1}, headers=ADMIN)
    assert extra.status_code == 422
    assert p.audit("mfa.enrolment_code") == []


def test_an_admins_portal_session_issues_codes_with_its_csrf_token(mfa_portal):
    p: Portal = mfa_portal(admin={"directory_groups": ["aws-admins"]}, **INVITE)
    token = p.csrf("/mfa")
    assert _issue(p, "bob", headers={}).status_code == 403  # a session without its CSRF token
    issued = _issue(p, "bob", headers={"X-CSRF-Token": token})
    assert issued.status_code == 201, issued.text
    assert p.audit("mfa.enrolment_code")[0]["actor"] == "directory:alice"
    bob = _second_session(p, "bob", BOB_PW)
    refused = _issue(bob, "alice", headers={"X-CSRF-Token": bob.csrf("/mfa")})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert bob.post("/mfa/totp/enrol", enrolment_code=issued.json()["code"]).status_code == 303


# ---- finding 3: a half-finished enrolment ----


def test_a_pending_enrolment_is_not_readable_or_confirmable_by_a_session_that_may_not_add_a_factor(mfa_portal):
    p: Portal = mfa_portal()
    p.enrol()  # started, never confirmed
    _passkey(p)  # ... then a passkey was registered
    later = _second_session(p)
    page = later.client.get("/mfa").text
    assert SECRET.search(page) is None and 'action="/mfa/totp/confirm"' not in page
    secret = p.services.step_ups.pending_enrolment(p.services.flow.person("alice"))  # what the attacker read before
    assert secret is not None
    confirmed = later.confirm(code_at(secret.secret))
    assert confirmed.status_code == 403 and "step up" in confirmed.text
    assert p.services.step_ups.store.totp(ALICE_ID).confirmed is False  # nothing changed


def test_under_invite_a_later_session_does_not_see_the_pending_secret(mfa_portal):
    p: Portal = mfa_portal(**INVITE)
    assert p.post("/mfa/totp/enrol", enrolment_code=_code(p)).status_code == 303
    assert SECRET.search(p.client.get("/mfa").text) is not None  # the session that took the code
    later = _second_session(p)
    assert SECRET.search(later.client.get("/mfa").text) is None
    refused = later.confirm("123456")
    assert refused.status_code == 403 and "needs an enrolment code" in refused.text


def test_an_unconfirmed_enrolment_expires_after_ten_minutes(mfa_portal):
    p: Portal = mfa_portal()
    secret = p.enrol()
    steps = p.services.step_ups
    later = steps.clock() + timedelta(seconds=601)
    steps.clock = lambda: later
    page = p.client.get("/mfa").text
    assert SECRET.search(page) is None and "Not enrolled." in page
    expired = p.confirm(code_at(secret))
    assert expired.status_code == 409 and "start again" in expired.text
    assert p.audit("mfa.enrol")[0]["details"]["reason"] == "enrolment_expired"
    assert p.services.step_ups.store.totp(ALICE_ID).confirmed is False


# ---- finding 5: registering a passkey checks as its options do ----


def _register(p: Portal, csrf: str) -> Any:
    return p.client.post("/mfa/webauthn/register", json={"credential": {"id": "x", "type": "public-key"}},
                         headers={"X-CSRF-Token": csrf})


def test_registering_a_passkey_without_a_fresh_step_up_is_refused(mfa_portal):
    p: Portal = mfa_portal()
    secret = p.enrol()
    assert p.confirm(earlier_code(secret)).status_code == 200
    assert p.step_up(code_at(secret)).status_code == 303
    steps = p.services.step_ups
    later = steps.clock() + timedelta(seconds=600)  # the step-up is 10 minutes old
    steps.clock = lambda: later
    refused = _register(p, p.csrf("/mfa"))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "mfa_required"
    assert _codes(p.audit("mfa.enrol"))[0] == "mfa_required"
    assert p.services.passkeys.store.of_person(ALICE_ID) == []


def test_under_invite_a_first_passkey_needs_the_code_at_its_options(mfa_portal):
    p: Portal = mfa_portal(**INVITE)
    csrf = p.csrf("/mfa")
    assert _register(p, csrf).json()["error"]["code"] == "enrolment_code_required"
    options = p.client.post("/mfa/webauthn/register/options", json={}, headers={"X-CSRF-Token": csrf})
    assert options.status_code == 403 and options.json()["error"]["code"] == "enrolment_code_required"
    wrong = p.client.post("/mfa/webauthn/register/options", json={"enrolment_code": "nope"},
                          headers={"X-CSRF-Token": csrf})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "enrolment_code_invalid"
    good = p.client.post("/mfa/webauthn/register/options", json={"enrolment_code": _code(p)},
                         headers={"X-CSRF-Token": csrf})
    assert good.status_code == 200, good.text
    assert _register(p, csrf).json()["error"]["code"] == "webauthn_invalid"  # this session may now register


# ---- the lost-phone path ----


def test_an_admin_resets_a_persons_factors(mfa_portal):
    p: Portal = mfa_portal()
    secret = p.enrol()
    assert p.confirm(earlier_code(secret)).status_code == 200
    _passkey(p)
    assert _anonymous(p).delete("/api/v1/admin/mfa/alice").status_code == 401
    reset = p.client.delete("/api/v1/admin/mfa/alice", headers=ADMIN)
    assert reset.status_code == 200, reset.text
    assert reset.json() == {"username": "alice", "totp": True, "passkeys": 1}
    assert p.services.step_ups.store.totp(ALICE_ID) is None
    assert p.services.passkeys.store.of_person(ALICE_ID) == []
    assert p.services.step_ups.store.recovery_codes_left(ALICE_ID) == 0
    event = p.audit("mfa.reset")[0]
    assert event["outcome"] == "allow" and event["target_id"] == ALICE_ID
    assert event["details"]["passkey_labels"] == ["Laptop"] and secret not in str(event)
    assert "Not enrolled." in p.client.get("/mfa").text
    assert p.client.delete("/api/v1/admin/mfa/mallory", headers=ADMIN).status_code == 404
    again = p.client.delete("/api/v1/admin/mfa/alice", headers=ADMIN)  # nothing left to remove
    assert again.status_code == 409 and again.json()["error"]["code"] == "mfa_not_enrolled"
    assert [e["outcome"] for e in p.audit("mfa.reset")] == ["deny", "allow"]
