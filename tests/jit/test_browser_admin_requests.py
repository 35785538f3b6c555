"""The admin requests page in real headless Chromium: bob's request approved by alice (the API),
then alice, an admin, filters the page to approved requests, sees her approval with the group
it came through, and ends the grant with End now; bob's next issuance is refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.jit.conftest import jit_sections
from tests.portal.conftest import ALICE_PW, BOB_PW, clock, live  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser]


def test_an_admin_filters_the_requests_and_ends_a_grant_now(browser: Any, live: Any) -> None:  # noqa: F811
    data = jit_sections()
    server = live(mapping={"mappings": data["mapping"]["mappings"]}, jit=data["jit"], admin=data["admin"],
                  api=data["api"])
    with httpx.Client(base_url=server.url, timeout=10) as api:
        made = api.post("/api/v1/requests", auth=("bob", BOB_PW),
                        json={"account": "sandbox-prod", "role": "ReadOnly", "reason": "INC-31 prod check",
                              "duration": "1h"})
        assert made.status_code == 201, made.text
        rid = made.json()["id"]
        assert api.post(f"/api/v1/requests/{rid}/approve", auth=("alice", ALICE_PW)).status_code == 200

    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.goto(server.url + "/admin/requests")
    page.get_by_label("Username").fill("alice")  # sent to sign in, brought back
    page.get_by_label("Password").fill(ALICE_PW)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Access requests").wait_for()
    page.get_by_label("State").select_option("approved")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/admin/requests?state=approved*")
    row = page.locator(f"#request-{rid}")
    text = row.inner_text()
    assert "bob" in text and "INC-31 prod check" in text and "approved" in text
    assert "alice" in row.locator("td.approvals").inner_text()
    assert "aws-admins" in row.locator("td.approvals").inner_text()  # the approver's group at that moment

    row.get_by_role("button", name=f"End the grant of request {rid} of bob now").click()
    page.get_by_text("The grant was ended").wait_for()
    assert "state=approved" in page.url  # the filter is kept: the ended grant no longer matches it
    assert page.locator(f"#request-{rid}").count() == 0
    page.get_by_label("State").select_option("ended")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/admin/requests?state=ended*")
    ended = page.locator(f"#request-{rid}").inner_text()
    assert "ended" in ended and "by directory:alice" in ended
    assert page.get_by_role("button", name=f"End the grant of request {rid} of bob now").count() == 0
    context.close()

    with httpx.Client(base_url=server.url, timeout=10) as api:
        refused = api.post("/api/v1/credentials", auth=("bob", BOB_PW), json={"account": "sandbox-prod",
                                                                               "role": "ReadOnly"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "grant_required"
