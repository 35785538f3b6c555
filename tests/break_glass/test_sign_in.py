"""Break-glass sign-in against a real slapd that is killed during the test: refused while the
directory answers, open once it is gone, only the listed roles (moto's STS issues them), every
use audited, logged and alerted; wrong password, wrong code, a replayed code and an unknown name
each refused with their code, audited, no session."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.break_glass.conftest import BG_PASSWORD, LDAP_PASSWORD, Broker
from tests.federation.conftest import capture_logs

pytestmark = [pytest.mark.ldap, pytest.mark.sts]


def _signed_in(b: Broker) -> bool:
    return b.client.get("/").status_code == 200


def _error(r: Any) -> str:
    m = re.search(r'<p class="alert" role="alert" id="bg-error">([^<]+)</p>', r.text)
    return m.group(1) if m else ""


def test_refused_while_the_directory_answers_then_open_once_it_is_killed(glass: Any) -> None:
    b: Broker = glass()
    assert b.client.get("/login").text.count("/break-glass") == 0  # no link while the directory answers
    refused = b.sign_in()
    assert refused.status_code == 403 and "break-glass sign-in is closed" in _error(refused)
    assert "broker" not in b.client.cookies and not _signed_in(b)
    deny = b.audit("break_glass.sign_in")
    assert [(e["outcome"], e["details"]["code"]) for e in deny] == [("deny", "break_glass_unavailable")]
    assert b.notes.queued == []  # a refusal is not alerted
    closed = b.sign_in(password="not the password")  # closed: nothing typed is checked
    assert closed.status_code == 403 and "break-glass sign-in is closed" in _error(closed)

    b.slapd.stop()  # the directory is gone
    down = b.client.post("/login", data={"username": "bench0000", "password": LDAP_PASSWORD,
                                         "csrf_token": b.form_csrf("/login")})
    assert down.status_code == 503 and 'href="/break-glass"' in down.text  # the small link, now
    ok = b.sign_in()  # the code the refused attempts typed still works: a closed page uses up nothing
    assert ok.status_code == 303 and ok.headers["location"] == "/", ok.text
    home = b.client.get("/")
    assert home.status_code == 200 and "Break-glass: oncall" in home.text and 'id="break-glass-note"' in home.text
    assert "BreakGlassAdmin" in home.text and "Developer" not in home.text and "ReadOnly" not in home.text

    allow = [e for e in b.audit("break_glass.sign_in") if e["outcome"] == "allow"]
    assert len(allow) == 1
    assert allow[0]["details"]["user"] == "break-glass-oncall"
    assert allow[0]["details"]["immutable_id"] == "break-glass:oncall"
    assert allow[0]["details"]["open_because"].startswith("directory unavailable")
    assert allow[0]["details"]["roles"] == ["sandbox-prod/BreakGlassAdmin"]
    [(hooks, note)] = b.notes.queued
    assert hooks == ("oncall-chat",) and note.event == "break_glass.use"
    facts = dict(note.facts)
    assert facts["who"] == "break-glass-oncall" and facts["from"] == "testclient" and facts["at"].endswith("Z")

    csrf = b.csrf()
    console = b.client.post("/console", data={"account": "sandbox-prod", "role": "BreakGlassAdmin", "csrf_token": csrf})
    assert console.status_code == 302 and "/sandbox/console/" in console.headers["location"]
    creds = b.client.post("/cli-credentials", data={"account": "sandbox-prod", "role": "BreakGlassAdmin",
                                                    "csrf_token": csrf})
    assert creds.status_code == 200 and "AWS_SECRET_ACCESS_KEY" in creds.text
    unlisted = b.client.post("/console", data={"account": "sandbox-prod", "role": "ReadOnly", "csrf_token": csrf})
    assert unlisted.status_code == 403 and "not entitled" in unlisted.text
    mapped = b.client.post("/cli-credentials", data={"account": "sandbox-dev", "role": "Developer", "csrf_token": csrf})
    assert mapped.status_code == 403  # nothing from the mapping's groups

    issued = b.audit("issue.console") + b.audit("issue.credentials")
    assert {(e["action"], e["outcome"]) for e in issued} == {("issue.console", "allow"), ("issue.console", "deny"),
                                                            ("issue.credentials", "allow"), ("issue.credentials", "deny")}
    assert all(e["details"].get("break_glass") is True for e in issued if e["outcome"] == "allow")
    alerts = [dict(n.facts) for _, n in b.notes.queued[1:]]
    assert [(a["channel"], a["account"], a["role"]) for a in alerts] == [
        ("console", "sandbox-prod", "BreakGlassAdmin"), ("credentials", "sandbox-prod", "BreakGlassAdmin")]
    metrics = b.client.get("/metrics").text
    assert 'broker_break_glass_total{outcome="sign_in"} 1.0' in metrics
    assert 'broker_break_glass_total{outcome="issue"} 2.0' in metrics
    assert 'broker_break_glass_total{outcome="break_glass_unavailable"} 2.0' in metrics  # both closed attempts


def test_when_always_signs_in_with_the_directory_up(glass: Any) -> None:
    b: Broker = glass(when="always")
    r = b.sign_in()
    assert r.status_code == 303 and _signed_in(b)
    [event] = b.audit("break_glass.sign_in")
    assert event["outcome"] == "allow" and event["details"]["open_because"] == "always"
    # the session ends break_glass.session_seconds (1800) after the sign-in, whatever the portal's own limits
    session = b.services.access.sessions.get(b.client.cookies["broker"])
    assert session is not None and session.identity is not None
    assert session.identity.valid_until is not None and session.identity.mfa_methods == ("otp",)
    assert abs(session.identity.valid_until - (session.created + 1800)) < 5


def test_wrong_password_wrong_code_replay_and_unknown_name(glass: Any) -> None:
    b: Broker = glass(when="always")
    wrong_password = b.sign_in(password="not the password")
    assert wrong_password.status_code == 401 and _error(wrong_password) == "Invalid username, password or code."
    wrong_code = b.sign_in(code="000000" if b.code() != "000000" else "111111")
    assert wrong_code.status_code == 401 and _error(wrong_code) == _error(wrong_password)  # one answer
    unknown = b.sign_in(username="nobody")
    assert unknown.status_code == 401 and _error(unknown) == _error(wrong_password)
    directory_user = b.sign_in(username="bench0000", password=LDAP_PASSWORD)  # a directory account is not one
    assert directory_user.status_code == 401
    assert not _signed_in(b)

    code = b.code()
    assert b.sign_in(code=code).status_code == 303
    b.client.cookies.clear()
    replay = b.sign_in(code=code)
    assert replay.status_code == 403 and "already used" in _error(replay) and not _signed_in(b)
    older = b.sign_in(code=b.code(-1))  # a code of an earlier step than one accepted: refused too
    assert older.status_code == 403 and "already used" in _error(older)

    events = b.audit("break_glass.sign_in")
    refusals = [(e["outcome"], e["details"]["code"], e["details"]["reason"]) for e in reversed(events)
                if e["outcome"] != "allow"]
    assert refusals == [
        ("deny", "invalid_credentials", "wrong_password"),
        ("deny", "invalid_credentials", "wrong_code"),
        ("deny", "invalid_credentials", "unknown_user"),
        ("deny", "invalid_credentials", "unknown_user"),
        ("deny", "mfa_code_reused", "replayed_code"),
        ("deny", "mfa_code_reused", "replayed_code"),
    ]
    assert len(b.notes.queued) == 1  # the one success


def test_no_secret_reaches_the_logs(glass: Any) -> None:
    with capture_logs() as logged:
        b: Broker = glass(when="always")
        code = b.code()
        b.sign_in(password="wrong-but-secret-pw-42")
        assert b.sign_in(code=code).status_code == 303
        b.sign_in(code=code)
        creds = b.client.post("/cli-credentials", data={"account": "sandbox-prod", "role": "BreakGlassAdmin",
                                                        "csrf_token": b.csrf()})
        secret_key = re.search(r"AWS_SECRET_ACCESS_KEY=['\"]?([A-Za-z0-9/+=]+)", creds.text)
    text = logged.getvalue()
    assert "break_glass_use" in text and "break_glass_refused" in text  # the WARNING lines are there
    for secret in (BG_PASSWORD, "wrong-but-secret-pw-42", code, b.totp.secret, b.client.cookies.get("broker") or "-"):
        assert secret not in text
    assert secret_key is not None and secret_key.group(1) not in text


def test_the_account_removed_from_the_config_ends_its_session(glass: Any) -> None:
    b: Broker = glass(when="always")
    assert b.sign_in().status_code == 303
    b.services.flow.break_glass._accounts.clear()  # as a restart with the account removed
    assert b.client.get("/").status_code == 303  # back to the sign-in page


@pytest.mark.redis
def test_two_replicas_accept_a_code_once(glass: Any) -> None:
    import os
    import time

    state = {"backend": "redis", "redis_url": os.environ["BROKER_TEST_REDIS_URL"]}
    user = f"oncall-{os.getpid()}-{time.time_ns() % 10**9}"  # Redis outlives the test: a name of its own
    first, second = glass(state=state, user=user, when="always"), glass(state=state, user=user, when="always")
    code = first.code()
    assert first.sign_in(code=code).status_code == 303
    again = second.sign_in(code=code)
    assert again.status_code == 403 and "already used" in _error(again)
    assert second.sign_in(code=second.code(1)).status_code == 303



def test_guessing_is_rate_limited_and_the_form_needs_its_csrf_token(glass: Any) -> None:
    b: Broker = glass(when="always")
    stale = b.client.post("/break-glass", data={"username": "oncall", "password": BG_PASSWORD, "code": b.code(),
                                                "csrf_token": "forged"})
    assert stale.status_code == 403 and not _signed_in(b)
    for _ in range(5):  # rate_limits.login_failures_per_user
        assert b.sign_in(password="guess").status_code == 401
    limited = b.sign_in()  # even the right password and code, now
    assert limited.status_code == 429 and limited.headers["Retry-After"] and not _signed_in(b)
    assert b.sign_in().status_code == 429
    codes = [e["details"]["code"] for e in b.audit("break_glass.sign_in")]
    assert codes.count("rate_limited") == 1 and codes.count("invalid_credentials") == 5  # audited once per window
    assert 'broker_break_glass_total{outcome="rate_limited"} 2.0' in b.client.get("/metrics").text
    assert b.notes.queued == []
