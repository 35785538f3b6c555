"""`awsbroker` and step-up MFA: credentials for a role with ``require_mfa`` are refused with
``mfa_required``; the CLI then runs a device login that asks for a second factor (the approval
page sends the person through the step-up first), and retries once with the new tokens, which
carry ``mfa_at``."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable

import httpx
import pyotp
import pytest

from tests.cli.conftest import Laptop, approve_in_portal
from tests.mfa.conftest import earlier_code, mfa_sections
from tests.portal.conftest import ALICE_PW, Live, csrf_of

pytestmark = pytest.mark.sts


@pytest.fixture
def mfa_laptop(tmp_path, live: Callable[..., Live]) -> Laptop:
    server = live(mapping=mfa_sections()["mapping"])
    home = tmp_path / "home"
    home.mkdir()
    laptop = Laptop(home, server.url, server=server)
    proc, err, _ = laptop.device_login()  # a login without a second factor
    assert proc.returncode == 0, err
    return laptop


def _user_code(proc: subprocess.Popen[str]) -> tuple[str, str]:
    assert proc.stderr is not None
    seen = ""
    while True:
        line = proc.stderr.readline()
        assert line, f"awsbroker ended early: {seen}"
        seen += line
        m = re.search(r"code:\s+([A-Z]{4}-[A-Z]{4})", line)
        if m:
            return m.group(1), seen


def _approve_with_step_up(url: str, user_code: str) -> list[str]:
    """In the browser: sign in, open the code's page (sent to the step-up), enrol TOTP, step up
    with its next code (the enrolment itself is no step-up), then approve. The pages seen, by path."""
    seen: list[str] = []
    with httpx.Client(base_url=url, follow_redirects=False) as browser:
        page = browser.get("/login")
        browser.post("/login", data={"username": "alice", "password": ALICE_PW, "csrf_token": csrf_of(page.text),
                                     "next": "/"})
        asked = browser.get(f"/device?user_code={user_code}")
        seen.append(asked.headers.get("location", ""))
        mfa_page = browser.get("/mfa").text
        browser.post("/mfa/totp/enrol", data={"csrf_token": csrf_of(mfa_page)})
        enrol = browser.get("/mfa").text
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', enrol)
        assert secret, enrol
        totp = pyotp.TOTP(secret.group(1))
        done = browser.post("/mfa/totp/confirm", data={"csrf_token": csrf_of(enrol),
                                                       "code": earlier_code(totp.secret)})
        assert done.status_code == 200, done.text
        stepped = browser.post("/mfa/step-up", data={"csrf_token": csrf_of(done.text), "code": totp.now(),
                                                     "method": "totp", "next": "/"})
        assert stepped.status_code == 303, stepped.text
        confirm = browser.get(f"/device?user_code={user_code}")
        assert confirm.status_code == 200 and "Approve" in confirm.text
        approved = browser.post("/device", data={"user_code": user_code, "decision": "approve",
                                                 "csrf_token": csrf_of(confirm.text)})
        assert approved.status_code == 200, approved.text
    return seen


def test_credentials_for_an_mfa_role_step_up_through_a_device_login_and_retry_once(mfa_laptop: Laptop):
    plain = mfa_laptop.run("credentials", "-a", "sandbox-dev", "-r", "Developer")
    assert plain.returncode == 0, plain.stderr  # roles without MFA: as before, no second login

    proc = mfa_laptop.start("credentials", "-a", "sandbox-dev", "-r", "Admin")
    code, seen = _user_code(proc)
    assert "second factor" in seen
    pages = _approve_with_step_up(mfa_laptop.url, code)
    assert pages[0].startswith("/mfa/step-up?next=/device")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, seen + err
    creds = json.loads(out)
    assert creds["AccessKeyId"] and creds["SecretAccessKey"] not in err

    again = mfa_laptop.run("credentials", "-a", "sandbox-dev", "-r", "Admin")
    assert again.returncode == 0 and "second factor" not in again.stderr  # the saved login carries mfa_at
    audit = mfa_laptop.server.services.store  # type: ignore[union-attr]
    from broker.audit import AuditFilter

    approvals = audit.audit_events(AuditFilter(action="device.approve"), limit=10, before_id=None)
    assert approvals[0]["details"]["mfa"] is True and approvals[0]["details"]["mfa_methods"] == ["otp"]


def test_a_device_login_asking_for_mfa_is_not_approved_without_a_fresh_step_up(mfa_laptop: Laptop):
    proc = mfa_laptop.start("login", "--mfa", "--no-browser")
    code, _ = _user_code(proc)
    refused = approve_in_portal(mfa_laptop.url, code)  # straight to the approve form: no step-up
    assert "/mfa/step-up" in str(refused.url) or "Confirm it is you" in refused.text
    from broker.audit import AuditFilter

    events = mfa_laptop.server.services.store.audit_events(  # type: ignore[union-attr]
        AuditFilter(action="device.approve"), limit=10, before_id=None)
    assert events[0]["outcome"] == "deny" and events[0]["details"]["code"] == "mfa_required"
    proc.kill()
    proc.communicate(timeout=30)


def test_a_device_login_that_did_not_ask_for_mfa_gets_none_of_the_browsers(mfa_laptop: Laptop):
    """A device code approved by a browser session that has stepped up (a phished code, say): the
    login did not ask for MFA, so its tokens carry none — an MFA role still asks for a step-up."""
    proc = mfa_laptop.start("login", "--no-browser")
    code, _ = _user_code(proc)
    _approve_with_step_up(mfa_laptop.url, code)  # the browser stepped up, then approved
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    retry = mfa_laptop.start("credentials", "-a", "sandbox-dev", "-r", "Admin")
    _, seen = _user_code(retry)
    assert "second factor" in seen  # refused with mfa_required: the CLI asks for a login with MFA
    retry.kill()
    retry.communicate(timeout=30)
    from broker.audit import AuditFilter

    events = mfa_laptop.server.services.store.audit_events(  # type: ignore[union-attr]
        AuditFilter(action="device.approve"), limit=10, before_id=None)
    assert events[0]["outcome"] == "allow" and "mfa_at" not in events[0]["details"]
