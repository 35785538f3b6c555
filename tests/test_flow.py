"""The issuance flow end to end over HTTP: static directory → grants → mint → moto STS (sandbox)
→ credential_process JSON / console URL, with one audit event per decision."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import bcrypt
import pytest

pytestmark = pytest.mark.sts

ALICE_PW, BOB_PW = "alice-test-pw", "bob-test-pw"


def _hash(pw: str) -> str:
    return bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()


SECTIONS = {
    "api": {"password_login": True},
    "directory": {
        "type": "static",
        "name": "people",
        "users": [
            {"username": "alice", "id": "a1b2c3d4-0000-4000-8000-000000000001", "password_hash": _hash(ALICE_PW),
             "groups": ["aws-admins", "developers"]},
            {"username": "bob", "id": "b0b0b0b0-0000-4000-8000-000000000002", "password_hash": _hash(BOB_PW),
             "groups": ["developers"]},
        ],
    },
    "mapping": {
        "accounts": [
            {"id": "111111111111", "alias": "dev", "federation": {"path": "saml"},
             "roles": [{"name": "Admin", "max_session_duration": 43200}, {"name": "Developer", "max_session_duration": 3600}]},
            {"id": "222222222222", "alias": "prod", "federation": {"path": "web_identity"},
             "roles": [{"name": "Admin"}, {"name": "ReadOnly", "max_session_duration": 7200}]},
        ],
        "mappings": [
            {"group": "aws-admins", "account": "dev", "role": "Admin"},
            {"group": "aws-admins", "account": "prod", "role": "Admin", "cli": False},
            {"group": "developers", "account": "dev", "role": "Developer"},
            {"group": "developers", "account": "prod", "role": "ReadOnly", "session_duration": 3600},
        ],
    },
}


def basic(user: str, pw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


@pytest.fixture
def client(app_factory):
    return app_factory(**SECTIONS)


def audit(client, admin_headers, **params):
    return client.get("/api/v1/admin/audit", params=params, headers=admin_headers).json()["items"]


def test_credentials_on_the_saml_path(client, admin_headers):
    r = client.post("/api/v1/credentials", json={"account": "dev", "role": "admin"}, headers=basic("alice", ALICE_PW))
    assert r.status_code == 200, r.text
    creds = r.json()
    assert set(creds) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    assert creds["Version"] == 1 and creds["Expiration"].endswith("Z")
    (event,) = audit(client, admin_headers, action="issue.credentials")
    assert event["outcome"] == "allow" and event["actor"] == "user:alice"
    d = event["details"]
    assert d["immutable_id"] == "a1b2c3d4-0000-4000-8000-000000000001"
    assert d["role_arn"] == "arn:aws:iam::111111111111:role/Admin" and d["federation_path"] == "saml"
    assert d["access_key_id"] == creds["AccessKeyId"] and d["duration"] == 43200
    assert d["groups"] == ["aws-admins", "developers"]
    assert d["granted_by"][0]["kind"] == "mapping" and d["granted_by"][0]["group"] == "aws-admins"
    # what STS was sent, for CloudTrail correlation (the access report's columns too)
    assert d["role_session_name"] == "alice"
    assert d["source_identity"] == "a1b2c3d4-0000-4000-8000-000000000001"
    assert creds["SecretAccessKey"] not in json.dumps(event) and creds["SessionToken"] not in json.dumps(event)


def test_credentials_on_the_web_identity_path_clamped(client, admin_headers):
    r = client.post(
        "/api/v1/credentials",
        json={"account": "222222222222", "role": "ReadOnly", "duration_seconds": 43200},
        headers=basic("bob", BOB_PW),
    )
    assert r.status_code == 200, r.text
    (event,) = audit(client, admin_headers, action="issue.credentials")
    assert event["details"]["federation_path"] == "web_identity"
    assert event["details"]["role_session_name"] == "bob" and event["details"]["source_identity"]
    assert event["details"]["duration"] == 3600  # the mapping's cap, below the role's 7200
    expires = datetime.fromisoformat(r.json()["Expiration"])
    assert 3000 < (expires - datetime.now(UTC)).total_seconds() <= 3600


def test_refusals_are_clear_and_audited(client, admin_headers):
    r = client.post("/api/v1/credentials", json={"account": "dev", "role": "Admin"}, headers=basic("bob", BOB_PW))
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_not_granted"
    r = client.post("/api/v1/credentials", json={"account": "prod", "role": "Admin"}, headers=basic("alice", ALICE_PW))
    assert r.status_code == 403 and r.json()["error"]["code"] == "channel_not_allowed"
    r = client.post("/api/v1/credentials", json={"account": "dev", "role": "Admin"}, headers=basic("alice", "Wr0ng-S3cret-Pw"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    r = client.post("/api/v1/credentials", json={"account": "dev", "role": "Admin"}, headers=basic("mallory", "x"))
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid username or password"
    r = client.post("/api/v1/credentials", json={"account": "dev", "role": "Admin"})
    assert r.status_code == 401
    r = client.post("/api/v1/credentials", json={"bogus": 1})  # nobody presented: refused before the body is read
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    denies = audit(client, admin_headers, outcome="deny")
    assert [(e["action"], e["details"]["code"]) for e in denies] == [
        ("login", "invalid_credentials"),
        ("login", "invalid_credentials"),
        ("issue.credentials", "channel_not_allowed"),
        ("issue.credentials", "role_not_granted"),
    ]
    assert all("Wr0ng-S3cret-Pw" not in json.dumps(e) for e in denies)


def test_a_password_sign_in_and_its_issuance_are_audited_in_one_write(client, admin_headers):
    from sqlalchemy import event

    engine = client.app.state.services.store.engine
    audit_writes: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"):
            audit_writes.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        ok = client.post("/api/v1/credentials", json={"account": "dev", "role": "Developer"}, headers=basic("bob", BOB_PW))
        refused = client.post("/api/v1/credentials", json={"account": "dev", "role": "Admin"}, headers=basic("bob", BOB_PW))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert ok.status_code == 200 and refused.status_code == 403
    assert len(audit_writes) == 2  # one per request, each carrying the sign-in and the decision
    events = list(reversed(audit(client, admin_headers, actor="user:bob")))
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("login", "allow"), ("issue.credentials", "allow"), ("login", "allow"), ("issue.credentials", "deny"),
    ]
    assert events[0]["request_id"] == events[1]["request_id"] == ok.headers["x-request-id"]
    assert events[2]["request_id"] == events[3]["request_id"] == refused.headers["x-request-id"]
    assert events[0]["at"] <= events[1]["at"]


def test_role_values_come_only_from_the_mapping(client):
    r = client.post(
        "/api/v1/credentials",
        json={"account": "dev", "role": "Developer,arn:aws:iam::111111111111:saml-provider/broker"},
        headers=basic("bob", BOB_PW),
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_not_granted"
    r = client.post(
        "/api/v1/credentials", json={"account": "dev", "role": "Developer", "role_arn": "x"}, headers=basic("bob", BOB_PW)
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_field"


def test_my_roles_and_console_url(client, admin_headers):
    roles = client.get("/api/v1/roles", headers=basic("alice", ALICE_PW)).json()
    by = {(r["account_alias"], r["role_name"]): r for r in roles}
    assert set(by) == {("dev", "Admin"), ("dev", "Developer"), ("prod", "Admin"), ("prod", "ReadOnly")}
    assert by[("prod", "Admin")]["cli"] is False and by[("prod", "Admin")]["console"] is True
    r = client.post(
        "/api/v1/console",
        json={"account": "prod", "role": "Admin", "service": "s3", "region": "eu-west-1"},
        headers=basic("alice", ALICE_PW),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["destination"] == "https://eu-west-1.console.aws.amazon.com/s3/home?region=eu-west-1"
    (event,) = audit(client, admin_headers, action="issue.console")
    assert event["outcome"] == "allow" and event["details"]["destination"] == body["destination"]
    assert body["url"] not in json.dumps(event)
    bad = client.post("/api/v1/console", json={"account": "prod", "role": "Admin", "service": "s3/../x"},
                      headers=basic("alice", ALICE_PW))
    assert bad.status_code == 422


def test_password_login_is_off_by_default(app_factory):
    sections = {k: v for k, v in SECTIONS.items() if k != "api"}
    client = app_factory(**sections)
    r = client.post("/api/v1/credentials", json={"account": "dev", "role": "Admin"}, headers=basic("alice", ALICE_PW))
    assert r.status_code == 401


class _CountingDirectory:
    """A password + lookup connector that counts its directory reads."""

    name = "fake"

    def __init__(self) -> None:
        self.lookups = 0

    def close(self) -> None:
        pass

    def login(self, username, password):
        from broker.domain import Identity

        return Identity(id="u-1", username=username, source=self.name)

    def login_key(self, username):
        return username.casefold()

    def lookup(self, username, *, uncached=False):
        from broker.domain import Identity

        self.lookups += 1
        return Identity(id="u-1", username=username, source=self.name)


def test_a_password_sign_in_is_the_directory_read_of_its_own_issuance(monkeypatch):
    import broker.flow
    from broker.domain import Identity
    from broker.flow import DecisionContext
    from tests.flows import unit_flow

    directory = _CountingDirectory()
    flow = unit_flow(directory)
    signed_in = flow.sign_in("pat", "pw", ctx=DecisionContext())
    assert flow.current_identity(signed_in) is signed_in and directory.lookups == 0
    flow.current_identity(signed_in)  # used once: the next issuance reads the directory again
    assert directory.lookups == 1
    flow.current_identity(Identity(id="u-1", username="pat", source="fake"))  # an equal identity from elsewhere
    assert directory.lookups == 2
    monkeypatch.setattr(broker.flow, "FRESH_SIGN_IN_SECONDS", 0.0)  # a sign-in that is no longer fresh
    flow.current_identity(flow.sign_in("pat", "pw", ctx=DecisionContext()))
    assert directory.lookups == 3


def test_a_misspelt_account_or_role_is_answered_with_did_you_mean_among_ones_own_grants(client):
    r = client.post("/api/v1/credentials", json={"account": "dev", "role": "admn"}, headers=basic("alice", ALICE_PW))
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_not_granted"
    assert "did you mean role Admin in dev?" in r.json()["error"]["message"]
    assert r.json()["error"]["details"] == [{"field": "role", "code": "did_you_mean", "message": "Admin"}]
    r = client.post("/api/v1/console", json={"account": "pord", "role": "Admin"}, headers=basic("alice", ALICE_PW))
    assert r.status_code == 403 and "did you mean account prod?" in r.json()["error"]["message"]
    assert r.json()["error"]["details"] == [{"field": "account", "code": "did_you_mean", "message": "prod"}]
    # bob's own grants only: Developer in dev, ReadOnly in prod; never alice's Admin
    r = client.post("/api/v1/credentials", json={"account": "dev", "role": "Admn"}, headers=basic("bob", BOB_PW))
    assert r.status_code == 403
    assert r.json()["error"]["message"].endswith("; your roles in dev: Developer") and "Admin" not in r.text
    r = client.post("/api/v1/credentials", json={"account": "333333333333", "role": "Admin"}, headers=basic("bob", BOB_PW))
    assert r.json()["error"]["message"].endswith("; your accounts: dev, prod")
