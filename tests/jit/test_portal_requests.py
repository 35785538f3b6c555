"""The portal's just-in-time access: Request access on an eligible row (CSRF-protected form),
the requests page where an approver approves, then the Console button works until the grant ends."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.jit.conftest import Jit
from tests.portal.conftest import ALICE_PW, BOB_PW, csrf_of, sign_in


def _browser(j: Jit, username: str, password: str) -> Any:
    client = TestClient(j.client.app, raise_server_exceptions=False, follow_redirects=False)
    assert sign_in(client, username, password).status_code == 303
    return client


def test_request_in_the_portal_approve_on_the_requests_page_then_the_console(jit):
    j: Jit = jit()
    bob, alice = _browser(j, "bob", BOB_PW), _browser(j, "alice", ALICE_PW)
    home = bob.get("/")
    assert "Request access" in home.text and "on request" in home.text
    assert 'action="/console"' not in home.text.split("ReadOnly")[1].split("</li>")[0]  # no console button yet

    stale = bob.post("/requests", data={"account": "222222222222", "role": "ReadOnly", "reason": "INC-9",
                                        "duration": "3600", "csrf_token": "forged"})
    assert stale.status_code == 403 and "csrf" in stale.text.lower()
    assert j.call("bob", "GET", "/api/v1/requests").json()["mine"] == []

    made = bob.post("/requests", data={"account": "222222222222", "role": "ReadOnly", "reason": "INC-9",
                                       "duration": "3600", "csrf_token": csrf_of(home.text)})
    assert made.status_code == 303 and made.headers["location"] == "/requests"
    mine = bob.get("/requests").text
    assert "pending" in mine and "INC-9" in mine

    page = alice.get("/requests")
    assert "Approve request" in page.text and "bob" in page.text
    rid = j.call("bob", "GET", "/api/v1/requests").json()["mine"][0]["id"]
    assert f'<tr id="request-{rid}">' in page.text  # the anchor of notifications' links (/requests#request-ID)
    own = bob.post(f"/requests/{rid}/approve", data={"csrf_token": csrf_of(mine)})
    assert own.status_code == 403 and "own request" in own.text
    done = alice.post(f"/requests/{rid}/approve", data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 303

    home = bob.get("/")
    assert "access until" in home.text
    console = bob.post("/console", data={"account": "222222222222", "role": "ReadOnly", "csrf_token": csrf_of(home.text)})
    assert console.status_code == 302 and "/sandbox/console/" in console.headers["location"]

    page = alice.get("/requests")
    assert "End the grant" in page.text
    alice.post(f"/requests/{rid}/end", data={"csrf_token": csrf_of(page.text)})
    refused = bob.post("/console", data={"account": "222222222222", "role": "ReadOnly", "csrf_token": csrf_of(home.text)})
    assert refused.status_code == 403 and "request" in refused.text
