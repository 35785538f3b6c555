"""The directory wired into the running app: readiness, explain by username, directory admins."""

from __future__ import annotations

import base64
import socket

import pytest

from tests.directory.servers import SUFFIX

MAPPING = {
    "accounts": [
        {
            "id": "111122223333",
            "alias": "dev",
            "roles": [{"name": "Developer", "max_session_duration": 28800}],
        },
        {"id": "444455556666", "alias": "prod", "roles": [{"name": "Admin", "max_session_duration": 3600}]},
    ],
    "mappings": [
        {"group": "developers", "account": "dev", "role": "Developer"},
        {"group": "engineering", "account": "prod", "role": "Admin", "cli": False},
    ],
}


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


@pytest.fixture
def ldap_app(app_factory, ldap_settings):
    def build(**directory):
        return app_factory(
            directory=ldap_settings(**directory), mapping=MAPPING, admin={"directory_groups": ["aws-admins"]}
        )

    return build


@pytest.mark.ldap
def test_readiness_includes_an_authenticated_bind_to_the_directory(ldap_app):
    r = ldap_app().get("/readyz")
    assert r.status_code == 200 and r.json()["dependencies"]["directory"] == "ok"
    broken = ldap_app(bind_password="wrong").get("/readyz")
    # the directory is every replica's: reported, not a 503 that would empty the load balancer
    assert broken.status_code == 200
    assert broken.json()["dependencies"]["directory"].startswith("down: ")
    assert "service account" in broken.json()["dependencies"]["directory"]


@pytest.mark.ldap
def test_explain_with_just_a_username_reads_the_groups_from_the_directory(ldap_app, admin_headers):
    client = ldap_app()
    r = client.post("/api/v1/admin/explain", json={"username": "carol"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["groups_from"] == "directory"
    assert {"backend", "developers", "engineering"} <= {g["name"] for g in body["groups"]}
    assert {g["role_arn"] for g in body["grants"]} == {
        "arn:aws:iam::111122223333:role/Developer",
        "arn:aws:iam::444455556666:role/Admin",  # through engineering: two levels of nesting
    }
    assert body["directory"]["source"] == "corp-ldap" and body["directory"]["id"]
    gone = client.post("/api/v1/admin/explain", json={"username": "nobody"}, headers=admin_headers)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    given = client.post(
        "/api/v1/admin/explain", json={"username": "x", "groups": ["developers"]}, headers=admin_headers
    )
    assert given.json()["groups_from"] == "request" and len(given.json()["grants"]) == 1


@pytest.mark.ldap
def test_members_of_a_directory_admin_group_use_the_admin_api_with_their_password(ldap_app, ldap_passwords):
    client = ldap_app()
    alice = basic("alice", ldap_passwords["alice"])
    assert client.get("/api/v1/admin/accounts", headers=alice).status_code == 200
    r = client.post(
        "/api/v1/admin/mappings",
        json={"group": "aws-admins", "account": "dev", "role": "Developer"},
        headers=alice,
    )
    assert r.status_code == 201, r.text
    audit = client.get("/api/v1/admin/audit", params={"action": "mapping."}, headers=alice).json()["items"]
    assert audit[0]["actor"] == "directory:alice"


@pytest.mark.ldap
@pytest.mark.parametrize(
    "user, password, status, code",
    [
        ("bob", "right", 403, "forbidden"),  # a real account, not in an admin group
        ("alice", "wrong-password", 401, "invalid_credentials"),
        ("nobody", "wrong-password", 401, "invalid_credentials"),
        ("alice", "", 401, "invalid_credentials"),
        ("*", "right", 401, "invalid_credentials"),
    ],
)
def test_directory_admin_refusals(ldap_app, ldap_passwords, user, password, status, code):
    client = ldap_app()
    pw = ldap_passwords.get(user, ldap_passwords["alice"]) if password == "right" else password
    r = client.get("/api/v1/admin/accounts", headers=basic(user, pw))
    assert r.status_code == status and r.json()["error"]["code"] == code
    assert r.json()["error"]["message"] != ""
    assert "Traceback" not in r.text
    assert (
        client.get("/api/v1/admin/accounts", headers=basic("alice", ldap_passwords["alice"])).status_code
        == 200
    )


@pytest.mark.ldap
def test_directory_admin_sign_ins_are_rate_limited_and_audited_like_every_other(
    ldap_app, ldap_passwords, admin_headers
):
    client = ldap_app()
    for _ in range(5):
        assert client.get("/api/v1/admin/accounts", headers=basic("alice", "guess")).status_code == 401
    r = client.get("/api/v1/admin/accounts", headers=basic("alice", ldap_passwords["alice"]))
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"  # the portal's counter too
    assert client.get("/api/v1/admin/accounts", headers=basic("bob", ldap_passwords["bob"])).status_code == 403

    logins = [
        (e["details"]["user"], e["outcome"], e["details"]["via"], e["details"].get("code"))
        for e in client.get("/api/v1/admin/audit", params={"action": "login"}, headers=admin_headers).json()["items"]
    ]
    assert logins.count(("alice", "deny", "admin-api", "invalid_credentials")) == 5
    assert ("alice", "deny", "admin-api", "rate_limited") in logins and ("bob", "allow", "admin-api", None) in logins
    (refusal,) = client.get("/api/v1/admin/audit", params={"action": "admin.sign_in"}, headers=admin_headers).json()["items"]
    assert refusal["outcome"] == "deny" and refusal["details"]["user"] == "bob"
    assert refusal["details"]["code"] == "forbidden" and refusal["details"]["groups"]
    assert "guess" not in client.get("/api/v1/admin/audit", headers=admin_headers).text


@pytest.mark.ldap
def test_a_directory_outage_is_a_503_not_a_401(app_factory, ldap_settings, ldap_passwords):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    client = app_factory(
        directory=ldap_settings(servers=[f"ldaps://127.0.0.1:{dead}"], connect_timeout=1),
        admin={"directory_groups": ["aws-admins"]},
    )
    r = client.get("/api/v1/admin/accounts", headers=basic("alice", ldap_passwords["alice"]))
    assert r.status_code == 503 and r.json()["error"]["code"] == "directory_unavailable"
    assert client.get("/readyz").json()["dependencies"]["directory"] != "ok"


def test_without_directory_admin_groups_basic_is_not_accepted(app_factory):
    from tests.directory.test_static import DEMO_USERS

    client = app_factory(directory={"type": "static", "users": DEMO_USERS})
    r = client.get("/api/v1/admin/accounts", headers=basic("alice", "alice-demo-pw"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"


def test_explain_by_username_without_a_directory_says_what_to_do(app_factory, admin_headers):
    r = app_factory().post("/api/v1/admin/explain", json={"username": "alice"}, headers=admin_headers)
    assert r.status_code == 400 and "groups" in r.json()["error"]["message"]


def test_group_dns_in_admin_groups_match_like_mappings(app_factory):
    from tests.directory.test_static import DEMO_USERS

    client = app_factory(
        directory={"type": "static", "users": DEMO_USERS},
        admin={"directory_groups": [f"CN=AWS-Admins,ou=groups,{SUFFIX}"]},
    )
    assert client.get("/api/v1/admin/accounts", headers=basic("alice", "alice-demo-pw")).status_code == 200
    assert client.get("/api/v1/admin/accounts", headers=basic("bob", "bob-demo-pw")).status_code == 403


@pytest.mark.ldap
def test_an_issuance_with_http_basic_costs_the_directory_one_sign_in(app_factory, ldap_settings, ldap_passwords):
    from broker.flow import DecisionContext

    client = app_factory(directory=ldap_settings(), mapping=MAPPING, api={"password_login": True})
    services = client.app.state.services
    alice = basic("alice", ldap_passwords["alice"])
    body = {"account": "dev", "role": "Developer"}
    assert client.post("/api/v1/credentials", json=body, headers=alice).status_code == 200  # pools opened

    def cost(action) -> dict[str, int]:
        before = services.directory.stats.snapshot()
        action()
        return {k: v - before[k] for k, v in services.directory.stats.snapshot().items()}

    sign_in = cost(lambda: services.flow.sign_in("alice", ldap_passwords["alice"], ctx=DecisionContext()))
    issuance = cost(lambda: client.post("/api/v1/credentials", json=body, headers=alice).raise_for_status())
    assert issuance == sign_in and sign_in["binds"] == 1
