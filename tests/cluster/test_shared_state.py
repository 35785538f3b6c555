"""Three replicas behind nginx share one state: whichever replica a request lands on, a person
gets the same answer — a portal session, a device login, a refresh token (and its reuse
detection), a device code's single use, a rate limit's count, the API's mapping changes.

Each step that must reach a given replica goes to it directly (with the same cookies or
tokens); the rest goes through nginx's round robin.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.cluster.harness import PASSWORD, TEAM_ACCOUNT, Cluster

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.ldap, pytest.mark.sts, pytest.mark.proxy]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ADDRESS_LIMIT = 6  # rate_limits.login_failures_per_address of this module's cluster (tests/cluster/conftest.py)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def sign_in(client: httpx.Client, username: str, password: str = PASSWORD, next_url: str = "/") -> httpx.Response:
    page = client.get(f"/login?next={next_url}")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf_of(page.text),
                                       "next": next_url})


def poll(base: str, device_code: str) -> httpx.Response:
    return httpx.post(base + "/oauth/token", data={"grant_type": DEVICE_GRANT, "device_code": device_code,
                                                   "client_id": "awsbroker"}, timeout=30)


def refresh(base: str, token: str) -> httpx.Response:
    return httpx.post(base + "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                   "client_id": "awsbroker"}, timeout=30)


def roles_of(base: str, uid: str) -> set[tuple[str, str]]:
    r = httpx.get(base + "/api/v1/roles", auth=(uid, PASSWORD), timeout=30)
    assert r.status_code == 200, r.text
    return {(g["account_id"], g["role_name"]) for g in r.json()}


def test_a_portal_session_made_through_nginx_works_on_every_replica(cluster: Cluster):
    uid = cluster.uids[1]
    with cluster.client() as browser:  # signed in: the home page lists the person's roles
        r = sign_in(browser, uid)  # the login page from one replica, its POST to the next
        assert r.status_code == 303, r.text
        cookies = browser.cookies
        for replica in cluster.replicas:
            with cluster.client(replica.url, cookies=cookies) as direct:
                page = direct.get("/")
                assert page.status_code == 200 and "saml-acct" in page.text, (replica.index, page.status_code)
        # signed out on one replica: signed out on all of them
        with cluster.client(cluster.replicas[0].url, cookies=cookies) as direct:
            home = direct.get("/")
            assert direct.post("/logout", data={"csrf_token": csrf_of(home.text)}).status_code in (200, 303)
        for replica in cluster.replicas:
            with cluster.client(replica.url, cookies=cookies) as direct:
                r = direct.get("/")
                assert r.status_code == 303 and r.headers["location"].startswith("/login"), replica.index


def test_device_login_started_approved_and_polled_on_three_replicas(cluster: Cluster):
    a, b, c = (r.url for r in cluster.replicas)
    uid = cluster.uids[2]
    grant = httpx.post(a + "/oauth/device/authorization", data={"client_id": "awsbroker"}, timeout=30).json()
    assert poll(c, grant["device_code"]).json()["error"] == "authorization_pending"

    with cluster.client(b, follow_redirects=True) as browser:  # the person approves on replica B
        r = sign_in(browser, uid, next_url=f"/device?user_code={grant['user_code']}")
        r = browser.post("/device", data={"user_code": grant["user_code"], "decision": "approve",
                                          "csrf_token": csrf_of(r.text)})
        assert r.status_code == 200, r.text

    time.sleep(grant["interval"] + 0.2)
    tokens = poll(c, grant["device_code"]).json()  # the CLI's poll lands on replica C
    assert tokens["token_type"] == "Bearer", tokens
    # the device code is single-use on every replica (a replay cache in the shared state)
    time.sleep(grant["interval"] + 0.2)
    replay = poll(a, grant["device_code"])
    assert replay.status_code == 400 and replay.json()["error"] in ("invalid_grant", "expired_token")
    for base in (a, b, c):
        who = httpx.get(base + "/api/v1/whoami", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert who.json()["username"] == uid


def test_refresh_tokens_rotate_across_replicas_and_a_reused_one_is_refused_elsewhere(cluster: Cluster):
    a, b, c = (r.url for r in cluster.replicas)
    login = httpx.post(cluster.url + "/oauth/token", data={"grant_type": "password", "username": cluster.uids[3],
                                                          "password": PASSWORD, "client_id": "awsbroker"})
    if login.status_code != 200:  # no password grant: a device login, as the CLI does
        pytest.fail(f"password grant refused: {login.text}")
    first = login.json()
    second = refresh(a, first["refresh_token"]).json()  # rotated on A
    assert second["refresh_token"] != first["refresh_token"]
    third = refresh(b, second["refresh_token"]).json()  # and again on B
    assert third["access_token"]
    # the first one again, on C: someone copied it — refused, and the whole login with it
    reused = refresh(c, first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert refresh(a, third["refresh_token"]).json()["error"] == "invalid_grant"


def whoami(base: str, uid: str, password: str, address: str) -> int:
    """A sign-in straight to a replica, from ``address`` as nginx would forward it (the replicas
    trust 127.0.0.1's X-Forwarded-For)."""
    return httpx.get(base + "/api/v1/whoami", auth=(uid, password), headers={"X-Forwarded-For": address},
                     timeout=30).status_code


def test_the_per_user_failure_limit_counts_across_replicas(cluster: Cluster):
    uid = cluster.uids[-1]  # never signed in successfully: no known address to let them in
    limit = 5  # rate_limits.login_failures_per_user (the default)
    replicas = [r.url for r in cluster.replicas]
    # one failure after another, each on the next replica: no replica sees more than two
    assert [whoami(replicas[i % 3], uid, "wrong", "10.0.0.5") for i in range(limit)] == [401] * limit
    for base in replicas:  # the limit is reached on all of them at once, even with the right password
        assert whoami(base, uid, PASSWORD, "10.0.0.5") == 429


def test_the_per_address_failure_limit_counts_across_replicas(cluster: Cluster):
    limit = ADDRESS_LIMIT
    guessed = cluster.uids[-3 - limit:-3]  # one wrong password for each of `limit` names, from one address
    replicas = [r.url for r in cluster.replicas]
    assert [whoami(replicas[i % 3], uid, "guess", "10.0.0.6") for i, uid in enumerate(guessed)] == [401] * limit
    # the address is over its limit on every replica: the next name gets the degraded bucket there
    # (over_address_limit_failures_per_user: 3), not the per-user limit of 5
    uid = cluster.uids[-2]
    assert [whoami(replicas[i % 3], uid, "guess", "10.0.0.6") for i in range(4)] == [401, 401, 401, 429]
    assert whoami(replicas[0], uid, "guess", "10.0.0.7") == 401  # from elsewhere: still its own allowance


def test_an_api_mapping_change_is_seen_by_every_replica_at_once(cluster: Cluster):
    uid = cluster.uids[1]  # in g-001
    assert all((TEAM_ACCOUNT, "Operator") not in roles_of(r.url, uid) for r in cluster.replicas)
    with cluster.admin(cluster.replicas[0].url) as admin:
        made = admin.post("/api/v1/admin/mappings", json={"group": "g-001", "account": "team", "role": "Operator"})
        assert made.status_code == 201, made.text
        # no wait: the next request on each replica reads the shared database
        assert all((TEAM_ACCOUNT, "Operator") in roles_of(r.url, uid) for r in cluster.replicas)
        assert admin.delete(f"/api/v1/admin/mappings/{made.json()['id']}").status_code == 204
    assert all((TEAM_ACCOUNT, "Operator") not in roles_of(r.url, uid) for r in cluster.replicas)
