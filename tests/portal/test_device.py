"""RFC 8628 device login and the CLI's tokens over HTTP, with the test's clock: pending, slow_down,
approval behind the portal sign-in, single-use device codes, expiry, user-code guessing limits,
refresh-token rotation with reuse detection, revocation, and the password grant switch."""

from __future__ import annotations

import pytest

from tests.portal.conftest import ALICE_PW, DEVICE_GRANT, csrf_of, sign_in

pytestmark = pytest.mark.sts


def start(client):
    r = client.post("/oauth/device/authorization", data={"client_id": "awsbroker"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    return r.json()


def poll(client, grant):
    return client.post("/oauth/token", data={"grant_type": DEVICE_GRANT, "device_code": grant["device_code"],
                                              "client_id": "awsbroker"})


def decide(client, user_code, decision="approve"):
    """The confirmation page's POST (its CSRF token from the code-entry page, which counts no guess)."""
    csrf = csrf_of(client.get("/device").text)
    return client.post("/device", data={"user_code": user_code, "decision": decision, "csrf_token": csrf})


def test_device_login_end_to_end(portal, clock, admin_headers):
    grant = start(portal)
    assert grant["verification_uri"].endswith("/device") and grant["interval"] == 1 and grant["expires_in"] <= 600
    assert grant["verification_uri_complete"].endswith(f"?user_code={grant['user_code']}")
    assert poll(portal, grant).json()["error"] == "authorization_pending"

    # the approval page is behind the portal sign-in, and comes back with the code
    r = portal.get(f"/device?user_code={grant['user_code']}")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/device")
    r = sign_in(portal, next_url=f"/device?user_code={grant['user_code']}")
    assert r.headers["location"] == f"/device?user_code={grant['user_code']}"
    r = decide(portal, grant["user_code"].lower().replace("-", " "))  # typed sloppily
    assert r.status_code == 200 and "return to it" in r.text

    clock.advance(2)
    tokens = poll(portal, grant).json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900 and tokens["refresh_token"]
    clock.advance(2)
    assert poll(portal, grant).json()["error"] in ("invalid_grant", "expired_token")  # single use

    api = {"Authorization": f"Bearer {tokens['access_token']}"}
    portal.cookies.clear()
    assert portal.get("/api/v1/whoami", headers=api).json()["username"] == "alice"
    creds = portal.post("/api/v1/credentials", json={"account": "sandbox-dev", "role": "Admin"}, headers=api).json()
    assert creds["Version"] == 1
    assert any(e["action"] == "device.approve" for e in portal.get("/api/v1/admin/audit", headers=admin_headers).json()["items"])


def test_a_persons_session_or_cli_token_is_no_admin_credential(portal, clock):
    """SECURITY.md, non-admin on the admin API: what a person signs in with opens the user API only."""
    grant = start(portal)
    sign_in(portal, next_url=f"/device?user_code={grant['user_code']}")
    assert portal.get("/api/v1/admin/accounts").status_code == 401  # the portal session cookie
    decide(portal, grant["user_code"])
    clock.advance(2)
    api = {"Authorization": f"Bearer {poll(portal, grant).json()['access_token']}"}
    portal.cookies.clear()
    assert portal.get("/api/v1/whoami", headers=api).status_code == 200
    r = portal.get("/api/v1/admin/accounts", headers=api)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    r = portal.post("/api/v1/admin/mappings", json={"group": "x", "account": "sandbox-dev", "role": "Admin"}, headers=api)
    assert r.status_code == 401


def test_polling_too_fast_gets_slow_down_and_a_longer_interval(portal, clock):
    grant = start(portal)
    assert poll(portal, grant).json()["error"] == "authorization_pending"
    r = poll(portal, grant)  # same instant
    assert r.status_code == 400 and r.json()["error"] == "slow_down"
    clock.advance(2)  # the old interval is no longer enough: it is now 6 s
    assert poll(portal, grant).json()["error"] == "slow_down"
    clock.advance(12)
    assert poll(portal, grant).json()["error"] == "authorization_pending"


def test_denied_and_expired_device_codes(portal, clock):
    sign_in(portal)
    denied = start(portal)
    assert "denied" in decide(portal, denied["user_code"], "deny").text
    assert poll(portal, denied).json()["error"] == "access_denied"

    late = start(portal)
    clock.advance(601)
    assert poll(portal, late).json()["error"] == "expired_token"
    r = decide(portal, late["user_code"])
    assert r.status_code == 400 and "unknown, already used or expired" in r.text


def test_user_code_guessing_is_rate_limited(build):
    portal = build(rate_limits={"user_code_attempts_per_address": 3})
    sign_in(portal)
    grant = start(portal)
    for guess in ("BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD"):  # typed into the code form
        assert portal.get("/device", params={"user_code": guess}).status_code == 400
    r = portal.get("/device", params={"user_code": grant["user_code"]})  # even the right code now waits
    assert r.status_code == 429 and "Too many attempts" in r.text and "Approve" not in r.text
    r = portal.post("/device", data={"user_code": grant["user_code"], "decision": "approve", "csrf_token": csrf_of(r.text)})
    assert r.status_code == 429
    assert poll(portal, grant).json()["error"] == "authorization_pending"


def test_device_approval_needs_the_csrf_token(portal):
    sign_in(portal)
    grant = start(portal)
    r = portal.post("/device", data={"user_code": grant["user_code"], "decision": "approve"})
    assert r.status_code == 403
    assert poll(portal, grant).json()["error"] == "authorization_pending"


def login_tokens(portal, clock):
    sign_in(portal)
    grant = start(portal)
    decide(portal, grant["user_code"])
    portal.cookies.clear()
    clock.advance(2)
    return poll(portal, grant).json()


def refresh(portal, token):
    return portal.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "awsbroker"})


def test_access_tokens_expire_and_refresh_tokens_rotate(portal, clock):
    tokens = login_tokens(portal, clock)
    clock.advance(901)
    r = portal.get("/api/v1/whoami", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 401
    new = refresh(portal, tokens["refresh_token"]).json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert portal.get("/api/v1/whoami", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 200
    # the old refresh token again: someone copied it, so the whole login is revoked
    assert refresh(portal, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert portal.get("/api/v1/whoami", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 401
    assert refresh(portal, new["refresh_token"]).json()["error"] == "invalid_grant"


def test_the_login_ends_at_the_refresh_token_lifetime(portal, clock):
    tokens = login_tokens(portal, clock)
    for _ in range(4):
        clock.advance(10000)
        tokens = refresh(portal, tokens["refresh_token"]).json()
        assert "access_token" in tokens
    clock.advance(4000)  # 44000 s > 12 h since the login: rotation never extended it
    assert refresh(portal, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revocation_logs_the_cli_out(portal, clock):
    tokens = login_tokens(portal, clock)
    assert portal.post("/oauth/revoke", data={"token": tokens["refresh_token"]}).status_code == 200
    assert portal.get("/api/v1/roles", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    assert refresh(portal, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_password_grant_only_when_enabled(portal, build):
    data = {"grant_type": "password", "username": "alice", "password": ALICE_PW, "client_id": "awsbroker"}
    assert portal.post("/oauth/token", data=data).json()["error"] == "unsupported_grant_type"
    headless = build(api={"password_login": True})
    assert headless.post("/oauth/token", data=data).json()["token_type"] == "Bearer"
    assert headless.post("/oauth/token", data=data | {"password": "x"}).json()["error"] == "invalid_grant"


@pytest.mark.parametrize("data", [
    {},
    {"grant_type": DEVICE_GRANT},
    {"grant_type": DEVICE_GRANT, "client_id": "someone-else", "device_code": "x"},
    {"grant_type": "authorization_code", "client_id": "awsbroker"},
    {"grant_type": DEVICE_GRANT, "client_id": "awsbroker", "device_code": "x" * 5000},
])
def test_bad_token_requests_are_clean_4xx(portal, data):
    r = portal.post("/oauth/token", data=data)
    assert 400 <= r.status_code < 500 and "error" in r.json()


# ---- issue 11: a whole company behind one proxy shares one address ----


def _approve(portal, grant, username="alice"):
    """The person's approval, straight through the device flow (the page is tested above)."""
    from broker.domain import Identity

    identity = Identity(source="people", id=f"id-{username}", username=username)
    assert portal.app.state.services.access.devices.decide(grant["user_code"], identity=identity, approve=True)


def test_completed_device_logins_give_their_start_back(build, clock):
    portal = build(rate_limits={"device_authorizations_per_address": 2, "known_address_days": 0})
    for _ in range(5):  # a morning of people at one address running `awsbroker login`, one after another
        grant = start(portal)
        _approve(portal, grant)
        clock.advance(2)
        assert poll(portal, grant).json()["token_type"] == "Bearer"
    abandoned = [start(portal), start(portal)]  # two left pending (a script in a loop, Ctrl-C)
    r = portal.post("/oauth/device/authorization", data={"client_id": "awsbroker"})
    assert r.status_code == 429 and r.json()["error"] == "slow_down" and int(r.headers["retry-after"]) > 0
    assert all(poll(portal, g).json()["error"] == "authorization_pending" for g in abandoned)


def test_abandoned_starts_at_an_address_where_logins_complete_do_not_stop_its_people(build, clock):
    """A stranger's abandoned starts from a shared address (an untrusted proxy) do not block the
    CLI logins of the people there: an address with completed logins has ten times the allowance."""
    portal = build(rate_limits={"device_authorizations_per_address": 2})
    grant = start(portal)
    _approve(portal, grant)
    clock.advance(2)
    assert poll(portal, grant).json()["token_type"] == "Bearer"  # people complete logins here
    flood = [start(portal) for _ in range(19)]  # far over the limit of 2: still served
    grant = start(portal)  # a colleague's login, the 20th pending start
    _approve(portal, grant, "bob")
    clock.advance(2)
    assert poll(portal, grant).json()["token_type"] == "Bearer"
    r = [portal.post("/oauth/device/authorization", data={"client_id": "awsbroker"}) for _ in range(3)]
    assert r[-1].status_code == 429  # a bounded flood: ten times the allowance, then refused
    assert len(flood) == 19


def test_wrong_user_codes_at_a_shared_address_do_not_block_everyone_there(build):
    from starlette.testclient import TestClient

    from tests.portal.conftest import BOB_PW

    portal = build(rate_limits={"user_code_attempts_per_address": 3, "over_address_limit_failures_per_user": 2})
    colleague = TestClient(portal.app, follow_redirects=False)  # the same address ("testclient")
    sign_in(portal)
    sign_in(colleague, "bob", BOB_PW)
    assert decide(portal, "BBBB-BBBB").status_code == 400  # alice's typo
    for guess in ("CCCC-CCCC", "DDDD-DDDD"):  # bob guessing: the address is at its limit now
        assert decide(colleague, guess).status_code == 400
    grant = start(colleague)
    assert decide(colleague, grant["user_code"]).status_code == 429  # bob's own bucket there is spent
    grant = start(portal)
    assert decide(portal, grant["user_code"]).status_code == 200  # alice is not blocked by bob
