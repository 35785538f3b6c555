"""Just-in-time access in real headless Chromium: bob requests an eligible role, alice approves
it on the requests page, bob's Console button then lands on the SANDBOX console as that role."""

from __future__ import annotations

from typing import Any

import pytest

from tests.jit.conftest import jit_sections
from tests.portal.conftest import ALICE_PW, BOB_PW, clock, live  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.sts]


def _sign_in(browser: Any, url: str, username: str, password: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    page.goto(url + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your AWS accounts").wait_for()
    return context, page


def test_request_approve_then_console(browser: Any, live: Any) -> None:  # noqa: F811
    data = jit_sections()
    server = live(mapping={"mappings": data["mapping"]["mappings"]}, jit=data["jit"])
    bob_ctx, bob = _sign_in(browser, server.url, "bob", BOB_PW)
    row = bob.locator("li.role", has_text="sandbox-prod").filter(has_text="ReadOnly")
    assert row.get_by_role("button", name="Open the AWS console as ReadOnly in sandbox-prod (new tab)").count() == 0
    row.get_by_text("Request access", exact=True).first.click()
    row.get_by_label("Reason").fill("INC-12 checking prod config")
    row.get_by_label("Duration").select_option(label="1 h")
    row.get_by_role("button", name="Request ReadOnly in sandbox-prod").click()
    bob.get_by_role("heading", name="Access requests").wait_for()
    assert "pending" in bob.locator("#mine").locator("xpath=following-sibling::table[1]").inner_text()

    alice_ctx, alice = _sign_in(browser, server.url, "alice", ALICE_PW)
    alice.goto(server.url + "/requests")
    alice.get_by_role("button", name="Approve request 1 of bob").click()
    alice.get_by_role("heading", name="Access requests").wait_for()
    assert "approved" in alice.content()

    bob.goto(server.url + "/")
    row = bob.locator("li.role", has_text="sandbox-prod").filter(has_text="ReadOnly")
    assert "access until" in row.inner_text()
    with bob_ctx.expect_page() as new_tab:
        row.get_by_role("button", name="Open the AWS console as ReadOnly in sandbox-prod (new tab)").click()
    console = new_tab.value
    console.wait_for_load_state()
    assert "/sandbox/console/" in console.url
    assert "SANDBOX" in console.content() and "arn:aws:iam::222222222222:role/ReadOnly" in console.content()
    bob_ctx.close()
    alice_ctx.close()
