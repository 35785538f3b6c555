"""A passkey as the step-up of an MFA role, end to end in headless Chromium: alice registers a
passkey, her Console button for the role that asks for a second factor leads to the step-up page,
which offers the passkey; after it the console opens as that role, and the issuance's audit event
says which factor proved it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mfa.conftest import mfa_sections
from tests.webauthn.conftest import Broker, Person

pytestmark = [pytest.mark.browser, pytest.mark.sts]

CONSOLE = "Open the AWS console as Admin in sandbox-dev (new tab)"


def test_a_passkey_steps_up_to_the_console_of_an_mfa_role(browser: Any, broker: Any) -> None:
    server: Broker = broker(mapping=mfa_sections()["mapping"])
    alice = Person(browser, server, "alice")
    alice.register("Laptop")  # registering proves nothing about this sign-in: no step-up yet
    page = alice.page

    page.goto(server.url + "/")
    row = page.locator("li.role", has_text="sandbox-dev").filter(has_text="Admin")
    with alice.context.expect_page() as new_tab:
        row.get_by_role("button", name=CONSOLE).click()
    asked = new_tab.value
    asked.get_by_role("heading", name="Confirm it is you").wait_for()  # not issued: a step-up first
    assert asked.get_by_role("button", name="Use a security key or passkey").count() == 1
    assert asked.locator("#stepup-none").count() == 0  # a passkey is a factor: not "none enrolled"
    asked.close()
    refused = [e for e in server.audit("issue.console") if e["outcome"] == "deny"]
    assert [e["details"]["code"] for e in refused] == ["mfa_required"]

    page.goto(server.url + "/mfa/step-up?next=/")
    page.get_by_role("button", name="Use a security key or passkey").click()
    page.get_by_role("heading", name="Your AWS accounts").wait_for()
    with alice.context.expect_page() as new_tab:
        page.locator("li.role", has_text="sandbox-dev").filter(has_text="Admin").get_by_role(
            "button", name=CONSOLE).click()
    console = new_tab.value
    console.wait_for_load_state()
    assert "/sandbox/console/" in console.url
    assert "arn:aws:iam::111111111111:role/Admin" in console.content()
    [issued] = [e for e in server.audit("issue.console") if e["outcome"] == "allow"]
    assert issued["details"]["mfa_methods"] == ["hwk"] and issued["details"]["mfa_at"]
    alice.close()
