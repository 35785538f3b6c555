"""The portal as a person uses it (through the HTTP forms), and the Web rows of SECURITY.md:
CSRF, session fixation, cookie attributes, timeouts, password-guessing limits."""

from __future__ import annotations

import pytest

from broker.errors import DirectoryUnavailable
from broker.state.memory import MemoryState
from tests.conftest import make_config
from tests.portal.conftest import ALICE_PW, BOB_PW, CAROL_PW, audit, csrf_of, sign_in

pytestmark = pytest.mark.sts


def cookie_header(response) -> str:
    (value,) = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    return value


def test_signed_out_people_are_sent_to_the_login_page_and_come_back_after(portal):
    r = portal.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
    r = sign_in(portal, next_url="/device")
    assert r.status_code == 303 and r.headers["location"] == "/device"


def test_home_lists_every_account_and_role_with_alias_id_and_environment(portal):
    sign_in(portal)
    page = portal.get("/")
    assert page.status_code == 200
    html = page.text
    for text in ("sandbox-dev", "111111111111", "sandbox-prod", "222222222222", ">dev<", ">prod<", "Alice Admin"):
        assert text in html
    assert html.count('class="role"') == 4  # Admin+Developer in dev, Admin+ReadOnly in prod
    assert "awsbroker credential-process --account sandbox-dev --role Admin" in html
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_search_without_javascript_filters_on_the_server(portal):
    sign_in(portal)
    html = portal.get("/", params={"q": "prod readonly"}).text
    assert html.count('class="role"') == 1 and "ReadOnly" in html


def test_console_button_redirects_to_the_sandbox_console_and_is_remembered_as_recent(portal, admin_headers):
    sign_in(portal)
    csrf = csrf_of(portal.get("/").text)
    r = portal.post("/console", data={"account": "111111111111", "role": "Admin", "service": "s3",
                                      "region": "eu-west-1", "csrf_token": csrf})
    assert r.status_code == 302 and "/sandbox/console/" in r.headers["location"]
    landing = portal.get(r.headers["location"].split("testserver", 1)[-1].replace("http://127.0.0.1:8000", ""))
    assert "SANDBOX" in landing.text and "s3" in landing.text
    assert "Recently used" in portal.get("/").text
    (event,) = audit(portal, admin_headers, action="issue.console")
    assert event["outcome"] == "allow" and event["details"]["via"] == "portal"


def test_favorites_are_kept_server_side_across_sign_ins(portal):
    sign_in(portal)
    csrf = csrf_of(portal.get("/").text)
    r = portal.post("/favorites", data={"account": "222222222222", "role": "ReadOnly", "csrf_token": csrf})
    assert r.status_code == 303
    portal.post("/logout", data={"csrf_token": csrf})
    portal.cookies.clear()
    sign_in(portal)
    html = portal.get("/").text
    assert "Favorites" in html and 'aria-pressed="true"' in html


def test_command_line_panel_gives_ready_to_paste_exports(portal):
    sign_in(portal)
    csrf = csrf_of(portal.get("/").text)
    r = portal.post("/cli-credentials", data={"account": "sandbox-dev", "role": "Developer", "csrf_token": csrf})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert "export AWS_ACCESS_KEY_ID=" in r.text and "set -gx AWS_SESSION_TOKEN" in r.text and "$Env:AWS_SECRET_ACCESS_KEY" in r.text


def test_clear_pages_for_no_roles_role_denied_and_directory_unavailable(portal, admin_headers):
    sign_in(portal, "carol", CAROL_PW)
    assert "No roles yet" in portal.get("/").text
    portal.cookies.clear()

    sign_in(portal, "bob", BOB_PW)
    csrf = csrf_of(portal.get("/").text)
    r = portal.post("/console", data={"account": "sandbox-dev", "role": "Admin", "csrf_token": csrf})
    assert r.status_code == 403 and "Role denied" in r.text and "location" not in r.headers
    assert audit(portal, admin_headers, action="issue.console")[0]["outcome"] == "deny"

    services = portal.app.state.services

    def down(username, **_):
        raise DirectoryUnavailable()

    services.directory.lookup = down
    r = portal.get("/")
    assert r.status_code == 503 and "Directory unavailable" in r.text


def test_wrong_password_is_one_generic_answer_and_no_session(portal):
    for user, pw in (("alice", "nope"), ("nobody", "nope")):
        r = sign_in(portal, user, pw)
        assert r.status_code == 401 and "Invalid username or password." in r.text
    assert portal.get("/").status_code == 303


def test_redirect_after_login_is_relative_only(portal):
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        portal.cookies.clear()
        r = sign_in(portal, next_url=evil)
        assert r.status_code == 303 and r.headers["location"] == "/", evil


# ---- SECURITY.md: session fixation, cookie attributes, timeouts ----


def test_session_id_changes_at_login_and_the_old_one_is_dead(portal):
    from fastapi.testclient import TestClient

    # a session id the attacker knows (their own, signed in) is planted in the victim's browser
    sign_in(portal, "bob", BOB_PW)
    planted = portal.cookies.get("broker")
    assert planted
    victim = TestClient(portal.app, follow_redirects=False)
    page = victim.get("/login")
    victim.cookies.set("broker", planted)
    r = victim.post("/login", data={"username": "alice", "password": ALICE_PW, "csrf_token": csrf_of(page.text)})
    after = r.cookies.get("broker")
    assert r.status_code == 303 and after and after != planted
    # whoever holds the planted id gets nothing now
    attacker = TestClient(portal.app, follow_redirects=False)
    attacker.cookies.set("broker", planted)
    assert attacker.get("/").status_code == 303


def test_cookie_attributes_over_http_and_over_tls(portal, build):
    header = cookie_header(portal.get("/login"))  # the sign-in form's signed token
    assert header.startswith("broker-login=") and "HttpOnly" in header and "SameSite=strict" in header
    assert "Path=/" in header and "Secure" not in header and "Domain" not in header
    signed_in = [v for k, v in sign_in(portal).headers.multi_items() if k == "set-cookie"]
    assert any(v.startswith('broker-login=""') for v in signed_in)  # the form's token is removed at sign-in
    (header,) = [v for v in signed_in if v.startswith("broker=")]  # the session
    assert header.startswith("broker=") and "HttpOnly" in header and "SameSite=lax" in header and "Path=/" in header
    assert "Secure" not in header and "Domain" not in header

    tls = build(server={"public_url": "https://broker.example.com"})
    header = cookie_header(tls.get("/login"))
    assert header.startswith("__Host-broker-login=") and "Secure" in header and "HttpOnly" in header
    assert "SameSite=strict" in header and "Path=/" in header and "Domain" not in header


def test_idle_and_absolute_timeouts_end_the_session(build, clock):
    portal = build(sessions={"idle_timeout_seconds": 600, "absolute_timeout_seconds": 1800})
    sign_in(portal)
    clock.advance(590)
    assert portal.get("/").status_code == 200  # used: idle timer restarts
    clock.advance(601)
    assert portal.get("/").status_code == 303  # idle

    sign_in(portal)
    for _ in range(4):
        clock.advance(500)
        portal.get("/")
    assert portal.get("/").status_code == 303  # 2000 s after sign-in, however busy


# ---- SECURITY.md: CSRF ----


def test_csrf_login_without_the_form_token_is_refused(portal):
    portal.get("/login")
    r = portal.post("/login", data={"username": "alice", "password": ALICE_PW})
    assert r.status_code == 403 and "expired" in r.text
    assert portal.get("/").status_code == 303  # no session


def test_csrf_logout_favorites_console_and_api_posts_need_the_token(portal, admin_headers):
    sign_in(portal)
    csrf = csrf_of(portal.get("/").text)
    for path, data in (("/logout", {}), ("/favorites", {"account": "111111111111", "role": "Admin"}),
                       ("/console", {"account": "111111111111", "role": "Admin"}),
                       ("/cli-credentials", {"account": "111111111111", "role": "Admin"})):
        for token in (None, "forged-token"):
            body = data | ({"csrf_token": token} if token else {})
            r = portal.post(path, data=body)
            assert r.status_code == 403 and "did not come from this site" in r.text, path
    # a cross-site page that somehow got the token is still refused by its Origin
    r = portal.post("/favorites", data={"account": "111111111111", "role": "Admin", "csrf_token": csrf},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    page = portal.get("/")
    assert page.status_code == 200 and 'aria-pressed="true"' not in page.text  # still signed in, nothing changed
    assert audit(portal, admin_headers, action="issue.console") == []
    assert audit(portal, admin_headers, action="issue.credentials") == []
    # the user API with the session cookie: reading is fine, a POST needs X-CSRF-Token
    assert portal.get("/api/v1/whoami").json()["username"] == "alice"
    r = portal.post("/api/v1/credentials", json={"account": "sandbox-dev", "role": "Admin"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = portal.post("/api/v1/credentials", json={"account": "sandbox-dev", "role": "Admin"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["Version"] == 1


# ---- SECURITY.md: password guessing ----


def test_password_guessing_is_limited_per_user_and_the_lockout_decays(portal):
    services = portal.app.state.services
    now = [0.0]
    services.access.limits.state = MemoryState(clock=lambda: now[0])  # the test owns the window's clock
    for _ in range(5):
        assert sign_in(portal, "alice", "guess").status_code == 401
    r = sign_in(portal, "alice", ALICE_PW)  # even the right password waits
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert portal.get("/").status_code == 303
    assert sign_in(portal, "bob", BOB_PW).status_code == 303  # other people are not affected
    portal.cookies.clear()
    now[0] += services.config.rate_limits.window_seconds + 1
    assert sign_in(portal, "alice", ALICE_PW).status_code == 303  # never locked out for good


def test_refused_guessing_is_audited_once_per_window_not_per_attempt(portal, admin_headers):
    for _ in range(5):
        assert sign_in(portal, "alice", "guess").status_code == 401
    for _ in range(3):
        assert sign_in(portal, "alice", "guess").status_code == 429
    events = audit(portal, admin_headers, action="login")
    codes = [e["details"]["code"] for e in events if e["outcome"] == "deny" and e["details"]["user"] == "alice"]
    assert codes.count("invalid_credentials") == 5 and codes.count("rate_limited") == 1


def _elsewhere(client):
    """Another source address on the same running app."""
    from starlette.testclient import TestClient

    return TestClient(client.app, client=("203.0.113.9", 40000), follow_redirects=False)


def test_guessing_from_elsewhere_cannot_keep_a_person_out_of_an_address_they_signed_in_from(portal):
    assert sign_in(portal, "alice", ALICE_PW).status_code == 303  # alice, from her usual address
    portal.cookies.clear()
    attacker = _elsewhere(portal)
    for _ in range(5):
        assert sign_in(attacker, "alice", "guess").status_code == 401
    assert sign_in(attacker, "alice", ALICE_PW).status_code == 429  # locked for every other address
    assert sign_in(portal, "alice", ALICE_PW).status_code == 303  # not where alice signs in
    portal.cookies.clear()
    for _ in range(5):  # there she has an allowance of her own, not an open door
        assert sign_in(portal, "alice", "typo").status_code == 401
    assert sign_in(portal, "alice", ALICE_PW).status_code == 429


def test_known_addresses_can_be_turned_off(build):
    portal = build(rate_limits={"known_address_days": 0})
    assert sign_in(portal, "alice", ALICE_PW).status_code == 303
    portal.cookies.clear()
    attacker = _elsewhere(portal)
    for _ in range(5):
        assert sign_in(attacker, "alice", "guess").status_code == 401
    assert sign_in(portal, "alice", ALICE_PW).status_code == 429


def test_an_address_over_its_limit_degrades_into_a_bucket_per_username_instead_of_blocking_everybody(build):
    # everyone behind one load balancer shares its address: one guesser must not lock them all out
    portal = build(rate_limits={"login_failures_per_address": 4, "login_failures_per_user": 100,
                                "over_address_limit_failures_per_user": 3})
    for name in ("bob", "bob", "carol", "carol"):
        assert sign_in(portal, name, "guess").status_code == 401  # the address is at its limit now
    assert sign_in(portal, "carol", "guess").status_code == 401  # carol's own bucket: 3 failures here
    r = sign_in(portal, "carol", CAROL_PW)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0  # exhausted, even the right password waits
    assert sign_in(portal, "alice", ALICE_PW).status_code == 303  # a person who did not guess gets in
    portal.cookies.clear()
    assert sign_in(portal, "bob", BOB_PW).status_code == 303  # bob had 2 of his 3


def test_a_person_who_signed_in_from_an_address_lately_is_never_refused_by_its_limit(build):
    portal = build(rate_limits={"login_failures_per_address": 2, "login_failures_per_user": 100})
    for _ in range(5):  # an office behind one NAT address, a CI job signing in often
        portal.cookies.clear()
        assert sign_in(portal, "alice", ALICE_PW).status_code == 303
    portal.cookies.clear()
    for _ in range(3):  # the address is over its limit, bob's bucket there is spent
        assert sign_in(portal, "bob", "guess").status_code == 401
    assert sign_in(portal, "bob", BOB_PW).status_code == 429
    assert sign_in(portal, "alice", ALICE_PW).status_code == 303  # successes never count, and alice is known here


def test_basic_auth_on_the_api_is_rate_limited_too(build):
    import base64

    portal = build(api={"password_login": True})
    bad = {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()}
    for _ in range(5):
        assert portal.get("/api/v1/whoami", headers=bad).status_code == 401
    good = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_PW}".encode()).decode()}
    r = portal.get("/api/v1/whoami", headers=good)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"


@pytest.mark.redis
def test_rate_limits_are_shared_between_replicas(tmp_path, app_factory):
    import os
    import uuid

    from tests.portal.conftest import sections

    data = sections() | {"state": {"backend": "redis", "redis_url": os.environ["BROKER_TEST_REDIS_URL"]}}
    one = app_factory(make_config(tmp_path, **data))
    two = app_factory(make_config(tmp_path, **data))
    one.follow_redirects = two.follow_redirects = False
    victim = f"ghost-{uuid.uuid4().hex[:8]}"
    for _ in range(5):
        assert sign_in(one, victim, "guess").status_code == 401
    assert sign_in(two, victim, "guess").status_code == 429
