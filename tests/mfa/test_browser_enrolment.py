"""``mfa.enrolment: invite`` in real headless Chromium: an admin (alice, from her portal session)
issues bob an enrolment code; bob cannot set up an authenticator app without it, enrols with it,
and is still asked to step up (the enrolment is no step-up) before his MFA role's console opens."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest

from tests.jit.test_browser_requests import _sign_in
from tests.mfa.conftest import mfa_sections
from tests.portal.conftest import ALICE_PW, BOB_PW, clock, live  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.sts]

ISSUE = """async (username) => {
  const csrf = document.querySelector('input[name="csrf_token"]').value;
  const r = await fetch('/api/v1/admin/mfa/enrolment-codes', {method: 'POST',
    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: JSON.stringify({username})});
  return {status: r.status, body: await r.json()};
}"""


def test_an_admin_issues_a_code_the_person_enrols_with_it_then_steps_up_to_the_console(
        browser: Any, live: Any) -> None:  # noqa: F811
    mapping = mfa_sections()["mapping"]
    for m in mapping["mappings"]:
        if m["group"] == "developers" and m["account"] == "sandbox-dev":
            m["require_mfa"] = True
    server = live(mapping=mapping, mfa={"enrolment": "invite"}, admin={"directory_groups": ["aws-admins"]})

    admin_ctx, admin = _sign_in(browser, server.url, "alice", ALICE_PW)
    issued = admin.evaluate(ISSUE, "bob")
    assert issued["status"] == 201, issued
    code = issued["body"]["code"]
    admin_ctx.close()

    ctx, page = _sign_in(browser, server.url, "bob", BOB_PW)
    page.get_by_role("link", name="Second factors").click()
    page.get_by_label("Enrolment code (from an admin)").first.fill("not-the-code")
    page.get_by_role("button", name="Set up an authenticator app").click()
    assert "not right, used or expired" in page.locator("#mfa-error").inner_text()
    assert page.locator("#totp-secret").count() == 0
    page.get_by_label("Enrolment code (from an admin)").first.fill(code)
    page.get_by_role("button", name="Set up an authenticator app").click()
    secret = page.locator("#totp-secret").inner_text().strip()
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from the app").fill(totp.now())
    page.get_by_role("button", name="Confirm").click()
    assert page.locator("#recovery-codes li").count() == 10
    assert page.get_by_role("link", name="Confirm it is you with the app").count() == 1

    page.goto(server.url + "/")
    row = page.locator("li.role", has_text="sandbox-dev").filter(has_text="Developer")
    with ctx.expect_page() as new_tab:
        row.get_by_role("button", name="Open the AWS console as Developer in sandbox-dev (new tab)").click()
    tab = new_tab.value
    tab.get_by_role("heading", name="Confirm it is you").wait_for()  # enrolling was no step-up
    tab.get_by_label("Code from your authenticator app").fill(totp.at(time.time() + 30))  # a step not used yet
    tab.get_by_role("button", name="Continue").click()
    tab.get_by_role("heading", name="Second factor confirmed").wait_for()
    tab.get_by_role("button", name="Open the console").click()
    tab.wait_for_load_state()
    assert "/sandbox/console/" in tab.url
    assert "arn:aws:iam::111111111111:role/Developer" in tab.content()
    ctx.close()
