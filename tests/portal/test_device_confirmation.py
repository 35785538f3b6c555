"""RFC 8628 §5.4 against a phished ``verification_uri_complete`` link (SECURITY.md: "a device-login
link with the code filled in, sent by an attacker"): the link leads to a confirmation page that
shows the client, where and when the login started and when it expires, warns when it started
from another address than the approver's, and approves nothing until Approve is posted."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.portal.conftest import DEVICE_GRANT, csrf_of, sign_in

pytestmark = pytest.mark.sts


def client_at(portal, address: str) -> TestClient:
    """Another browser or terminal on the same app, seen from ``address``."""
    other = TestClient(portal.app, client=(address, 40000), raise_server_exceptions=False)
    other.follow_redirects = False
    return other


def start(client, user_agent: str = "awsbroker") -> dict:
    r = client.post("/oauth/device/authorization", data={"client_id": "awsbroker"}, headers={"User-Agent": user_agent})
    assert r.status_code == 200
    return r.json()


def poll(client, grant):
    return client.post("/oauth/token", data={"grant_type": DEVICE_GRANT, "device_code": grant["device_code"],
                                              "client_id": "awsbroker"}).json()


def text_of(html: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:dd|p)>', html, re.DOTALL)
    assert m, f"no #{element_id} in the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", m.group(1))).strip()


def test_the_complete_link_shows_what_is_approved_and_a_get_approves_nothing(portal, clock):
    clock.now = datetime(2026, 12, 2, 3, 14, 5, tzinfo=UTC).timestamp()
    terminal = client_at(portal, "10.0.0.5")
    grant = start(terminal, user_agent="awsbroker/1.0 python-httpx")
    clock.advance(90)
    link = grant["verification_uri_complete"].split("127.0.0.1:8000", 1)[1]
    browser = client_at(portal, "10.0.0.5")
    sign_in(browser, next_url=link)

    page = browser.get(link)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]  # no clickjacking of Approve
    html = page.text
    assert text_of(html, "device-code") == grant["user_code"]
    assert text_of(html, "device-client") == "awsbroker, the command-line client"
    assert text_of(html, "device-address") == "10.0.0.5"
    assert text_of(html, "device-agent") == "awsbroker/1.0 python-httpx"
    assert text_of(html, "device-started") == "2026-12-02 03:14:05 UTC (1 minute ago)"
    assert text_of(html, "device-expires") == "2026-12-02 03:24:05 UTC (in 8 minutes)"
    assert 'id="device-elsewhere"' not in html  # same address: no warning
    assert 'value="approve"' in html and 'value="deny"' in html
    # the GET (however often) approved nothing: the terminal still waits
    browser.get(link)
    clock.advance(2)
    assert poll(terminal, grant)["error"] == "authorization_pending"

    r = browser.post("/device", data={"user_code": grant["user_code"], "decision": "approve", "csrf_token": csrf_of(html)})
    assert r.status_code == 200 and "return to it" in r.text
    clock.advance(2)
    assert poll(terminal, grant)["token_type"] == "Bearer"


def test_a_login_started_elsewhere_is_flagged_on_the_confirmation_page(portal, clock):
    attacker = client_at(portal, "203.0.113.9")
    grant = start(attacker)
    victim = client_at(portal, "10.0.0.5")
    link = f"/device?user_code={grant['user_code']}"
    sign_in(victim, next_url=link)
    html = victim.get(link).text
    warning = text_of(html, "device-elsewhere")
    assert "This login was started from 203.0.113.9, you are at 10.0.0.5." in warning
    assert "If you did not just run awsbroker login yourself, choose Deny" in warning
    assert text_of(html, "device-address") == "203.0.113.9"
    # the victim denies: nothing reaches the attacker
    r = victim.post("/device", data={"user_code": grant["user_code"], "decision": "deny", "csrf_token": csrf_of(html)})
    assert r.status_code == 200 and "denied" in r.text
    assert poll(attacker, grant)["error"] == "access_denied"


def test_code_entry_is_a_separate_step_from_approval(portal, clock):
    sign_in(portal)
    entry = portal.get("/device")
    assert entry.status_code == 200
    assert 'value="approve"' not in entry.text and 'method="get" action="/device"' in entry.text
    grant = start(portal)
    # a POST without a decision (or with a made-up one) shows the confirmation page again, approves nothing
    csrf = csrf_of(entry.text)
    for decision in ("", "yes"):
        r = portal.post("/device", data={"user_code": grant["user_code"], "decision": decision, "csrf_token": csrf})
        assert r.status_code == 400 and text_of(r.text, "device-code") == grant["user_code"]
    # approving needs the session's CSRF token (a cross-site form cannot approve)
    r = portal.post("/device", data={"user_code": grant["user_code"], "decision": "approve", "csrf_token": "forged"})
    assert r.status_code == 403
    r = portal.post("/device", data={"user_code": grant["user_code"], "decision": "approve", "csrf_token": csrf},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    clock.advance(2)
    assert poll(portal, grant)["error"] == "authorization_pending"
    # an unknown code from the entry form: a clear 400 on the entry page
    r = portal.get("/device", params={"user_code": "BBBB-BBBB"})
    assert r.status_code == 400 and "unknown, already used or expired" in r.text and 'value="approve"' not in r.text


def test_the_user_agent_shown_is_cut_and_escaped(portal):
    grant = start(portal, user_agent="<script>alert(1)</script>" + "x" * 300)
    sign_in(portal)
    html = portal.get("/device", params={"user_code": grant["user_code"]}).text
    agent = re.search(r'id="device-agent">(.*?)</dd>', html, re.DOTALL).group(1)
    assert "<script>" not in html.split("<main", 1)[1] and agent.startswith("&lt;script&gt;")
    assert len(agent) < 200
