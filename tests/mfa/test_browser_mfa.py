"""Step-up MFA in real headless Chromium: alice enrols an authenticator app from the page (the
secret read from it, as she would type it into the app), signs in again, and her Console button
for an MFA role leads through the step-up to the SANDBOX console as that role."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest

from tests.jit.test_browser_requests import _sign_in
from tests.mfa.conftest import mfa_sections
from tests.portal.conftest import ALICE_PW, clock, live  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.sts]


def test_enrol_step_up_then_open_the_console_of_an_mfa_role(browser: Any, live: Any) -> None:  # noqa: F811
    server = live(mapping=mfa_sections()["mapping"])
    ctx, page = _sign_in(browser, server.url, "alice", ALICE_PW)
    page.get_by_role("link", name="Second factors").click()
    page.get_by_role("button", name="Set up an authenticator app").click()
    assert page.locator("figure.qr svg").count() == 1  # the QR code, inline
    secret = page.locator("#totp-secret").inner_text().strip()
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from the app").fill(totp.now())
    page.get_by_role("button", name="Confirm").click()
    assert page.locator("#recovery-codes li").count() == 10
    assert "Enrolled." in page.locator("#totp-status").inner_text()

    page.get_by_role("button", name="Sign out").click()  # a new sign-in: no second factor in it yet
    ctx.close()
    ctx, page = _sign_in(browser, server.url, "alice", ALICE_PW)
    row = page.locator("li.role", has_text="sandbox-dev").filter(has_text="Admin")
    assert "second factor" in row.inner_text()  # the role says it asks for one
    with ctx.expect_page() as new_tab:
        row.get_by_role("button", name="Open the AWS console as Admin in sandbox-dev (new tab)").click()
    tab = new_tab.value
    tab.get_by_role("heading", name="Confirm it is you").wait_for()
    tab.get_by_label("Code from your authenticator app").fill(totp.at(time.time() + 30))  # a step not used yet
    tab.get_by_role("button", name="Continue").click()
    tab.get_by_role("heading", name="Second factor confirmed").wait_for()
    tab.get_by_role("button", name="Open the console").click()
    tab.wait_for_load_state()
    assert "/sandbox/console/" in tab.url
    assert "SANDBOX" in tab.content() and "arn:aws:iam::111111111111:role/Admin" in tab.content()
    ctx.close()
