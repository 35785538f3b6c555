"""The admin API over HTTP: CRUD, stable error codes, read-only config objects, import, audit."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
import yaml

from tests.conftest import ADMIN_TOKEN

ACC = {"id": "111122223333", "alias": "prod", "environment": "prod", "owner": "sre"}
CONFIG_MAPPING = {
    "accounts": [
        {"id": "999988887777", "alias": "core", "roles": [{"name": "Admin", "max_session_duration": 43200}]}
    ],
    "mappings": [{"group": "core-admins", "account": "core", "role": "Admin"}],
    "rules": [{"name": "adfs", "pattern": r"^AWS-(?P<account>\d{12})-(?P<role>[\w+=,.@-]+)$"}],
}


@pytest.fixture
def client(app_factory):
    return app_factory(mapping=CONFIG_MAPPING)


@pytest.fixture
def api(client, admin_headers):
    class Api:
        def __getattr__(self, method):
            def call(path, **kw):
                return getattr(client, method)(f"/api/v1/admin{path}", headers={**admin_headers, **kw.pop("headers", {})}, **kw)

            return call

    return Api()


def seeded(api):
    assert api.post("/accounts", json={**ACC, "roles": [{"name": "Admin", "max_session_duration": 43200}]}).status_code == 201
    assert api.post("/accounts/prod/roles", json={"name": "ReadOnly", "path": "/audit/"}).status_code == 201
    r = api.post("/mappings", json={"group": "CN=Ops,OU=Groups,DC=corp", "account": "prod", "role": "Admin"})
    assert r.status_code == 201, r.text
    return r.json()


def test_crud_round_trip(api):
    m = seeded(api)
    assert m["group"] == "Ops" and m["account"] == "111122223333"
    assert api.get("/accounts/111122223333").json()["alias"] == "prod"
    assert [r["name"] for r in api.get("/accounts/prod/roles").json()] == ["Admin", "ReadOnly"]
    assert api.get("/accounts/prod/roles/readonly").json()["arn"] == "arn:aws:iam::111122223333:role/audit/ReadOnly"
    r = api.patch(f"/mappings/{m['id']}", json={"cli": False, "session_duration": 3600})
    assert r.status_code == 200 and r.json()["cli"] is False and r.json()["session_duration"] == 3600
    r = api.patch("/accounts/prod", json={"owner": "platform"})
    assert r.json()["owner"] == "platform" and r.json()["alias"] == "prod"
    r = api.put("/accounts/prod/roles/ReadOnly", json={"name": "ReadOnly", "max_session_duration": 7200})
    assert r.json()["max_session_duration"] == 7200 and r.json()["path"] == "/"
    assert api.post("/rules", json={"name": "mine", "pattern": "^x-(?P<account>\\d{12})-(?P<role>\\w+)$"}).status_code == 201
    assert api.patch("/rules/mine", json={"console": False}).json()["console"] is False
    assert api.delete("/rules/mine").status_code == 204
    assert api.delete(f"/mappings/{m['id']}").status_code == 204
    assert api.get(f"/mappings/{m['id']}").json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "path, body, status, code",
    [
        ("/accounts", {"id": "12345"}, 422, "invalid_account_id"),
        ("/accounts", {"id": "11112222333a"}, 422, "invalid_account_id"),
        ("/accounts", {"id": "111122224444", "partition": "aws-mars"}, 422, "invalid_value"),
        ("/accounts", {"id": "111122224444", "partition": "aws-cn", "default_region": "eu-west-1"}, 422, "invalid_region"),
        ("/accounts/prod/roles", {"name": "bad role!"}, 422, "invalid_role_name"),
        ("/accounts/prod/roles", {"name": "AWSReservedSSO_Admin_0123"}, 422, "reserved_role"),
        ("/accounts/prod/roles", {"name": "X", "max_session_duration": 50000}, 422, "invalid_value"),
        ("/accounts/000000000000/roles", {"name": "X"}, 422, "unknown_account"),
        ("/mappings", {"group": "g", "account": "nosuch", "role": "Admin"}, 422, "unknown_account"),
        ("/mappings", {"group": "g", "account": "prod", "role": "Nope"}, 422, "unknown_role"),
        ("/mappings", {"group": "g", "account": "prod", "role": "Admin", "console": False, "cli": False}, 422, "invalid_input"),
        ("/rules", {"name": "r", "pattern": "^(?P<account>\\d{12}"}, 422, "invalid_regex"),
        ("/rules", {"name": "r", "pattern": "^AWS-(?P<acct>\\d{12})-(?P<role>\\w+)$"}, 422, "invalid_regex"),
        ("/accounts", {**ACC}, 409, "duplicate"),
        ("/accounts/prod/roles", {"name": "admin"}, 409, "duplicate"),
        ("/mappings", {"group": "ops", "account": "111122223333", "role": "ADMIN"}, 409, "duplicate"),
        ("/mappings", {"group": "g", "account": "prod", "role": "Admin", "session_duration": "3600"}, 422, "invalid_type"),
        ("/mappings", {"group": "g", "account": "prod", "role": "Admin", "colour": "red"}, 422, "unknown_field"),
        ("/mappings", {"account": "prod", "role": "Admin"}, 422, "missing_field"),
        ("/mappings", ["not", "an", "object"], 422, "invalid_type"),
    ],
)
def test_bad_input_gets_a_stable_code_and_changes_nothing(api, path, body, status, code):
    seeded(api)
    before = api.get("/export", params={"format": "json"}).json()
    audit_before = api.get("/audit").json()["items"][0]["id"]
    r = api.post(path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and "Traceback" not in r.text
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert api.get("/export", params={"format": "json"}).json() == before
    assert api.get("/audit").json()["items"][0]["id"] == audit_before


@pytest.mark.parametrize(
    "path, body, code",
    [
        ("/mappings/{id}", {"colour": "red"}, "unknown_field"),
        ("/mappings/{id}", {"cli": "yes"}, "invalid_type"),
        ("/mappings/{id}", {"session_duration": 100}, "invalid_value"),
        ("/mappings/{id}", ["cli", False], "invalid_type"),
        ("/accounts/prod", {"alias": "-bad-"}, "invalid_alias"),
        ("/accounts/prod", {"id": "222233334444"}, "unknown_field"),
        ("/accounts/prod/roles/Admin", {"max_session_duration": 100000}, "invalid_value"),
        ("/rules/adfs-mine", {"pattern": "("}, "invalid_regex"),
    ],
)
def test_bad_patches_change_nothing(api, path, body, code):
    m = seeded(api)
    api.post("/rules", json={"name": "adfs-mine", "pattern": "^x-(?P<account>\\d{12})-(?P<role>\\w+)$"})
    before = api.get("/export", params={"format": "json"}).json()
    r = api.patch(path.format(id=m["id"]), json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == code, r.text
    assert api.get("/export", params={"format": "json"}).json() == before


def test_regex_errors_say_why(api):
    r = api.post("/rules", json={"name": "r", "pattern": "^AWS-(?P<account>\\d{12})$"})
    assert r.status_code == 422 and "missing: role" in r.json()["error"]["message"]
    r = api.post("/rules", json={"name": "r", "pattern": "(?P<account>[)(?P<role>x)"})
    assert "does not compile" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "content, code, status",
    [
        (b'{"id": "111122224444",', "malformed_json", 400),
        (b"\xff\xfe not utf8", "malformed_json", 400),
        (b"", "missing_body", 422),
    ],
)
def test_malformed_bodies(api, content, code, status):
    r = api.post("/accounts", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_oversized_body_is_refused(app_factory, admin_headers):
    client = app_factory(server={"max_body_bytes": 2048})
    big = {"id": "111122224444", "description": "x" * 5000}
    r = client.post("/api/v1/admin/accounts", json=big, headers=admin_headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(10):
            yield b" " * 1024

    r = client.post("/api/v1/admin/accounts", content=chunks(), headers={**admin_headers, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert client.get("/api/v1/admin/accounts", headers=admin_headers).json() == []
    assert client.get("/healthz").status_code == 200


def test_authentication(client):
    r = client.get("/api/v1/admin/accounts")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/v1/admin/accounts", headers={"Authorization": "Bearer another-deployments-token"}).status_code == 401
    assert client.get("/api/v1/admin/accounts", headers={"Authorization": f"Basic {ADMIN_TOKEN}"}).status_code == 401
    r = client.post("/api/v1/admin/accounts", json={"id": "111122224444"})
    assert r.status_code == 401
    assert client.get("/api/v1/admin/accounts", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200


def test_configured_token_hashes_and_actor(app_factory):
    import hashlib

    token = "configured-token-abcdef"
    client = app_factory(admin={"tokens": [{"name": "ci-bot", "sha256": hashlib.sha256(token.encode()).hexdigest()}]}, env={})
    h = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/admin/accounts", json={"id": "111122224444"}, headers=h).status_code == 201
    event = client.get("/api/v1/admin/audit", headers=h).json()["items"][0]
    assert event["actor"] == "admin:ci-bot" and event["action"] == "account.create"
    assert event["after"]["id"] == "111122224444" and event["before"] is None
    assert event["source_ip"] and event["request_id"]
    # without BROKER_ADMIN_TOKEN in the environment, the test default token is refused
    assert client.get("/api/v1/admin/accounts", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 401


def test_config_declared_objects_are_read_only(api):
    core = api.get("/accounts/core").json()
    assert core["source"] == "config"
    mapping_id = api.get("/mappings", params={"group": "core-admins"}).json()["items"][0]["id"]
    for r in (
        api.delete(f"/mappings/{mapping_id}"),
        api.patch(f"/mappings/{mapping_id}", json={"cli": False}),
        api.patch("/accounts/core", json={"owner": "me"}),
        api.delete("/accounts/core/roles/Admin"),
        api.put("/rules/adfs", json={"name": "adfs", "pattern": "^(?P<account>\\d{12})-(?P<role>x)$"}),
    ):
        assert r.status_code == 409 and r.json()["error"]["code"] == "read_only", r.text
        assert "configuration file" in r.json()["error"]["message"]
    # but the API may add its own mappings to config-declared roles
    assert api.post("/mappings", json={"group": "more-admins", "account": "core", "role": "Admin"}).status_code == 201


def test_explain_says_which_mapping_or_rule_and_why(api):
    seeded(api)
    r = api.post(
        "/explain",
        json={"username": "alice", "groups": ["CN=OPS,OU=x,DC=corp", "AWS-999988887777-Admin", "AWS-123412341234-X", "other"]},
    )
    assert r.status_code == 200
    body = r.json()
    grants = {g["role_arn"]: g for g in body["grants"]}
    assert set(grants) == {"arn:aws:iam::111122223333:role/Admin", "arn:aws:iam::999988887777:role/Admin"}
    assert grants["arn:aws:iam::111122223333:role/Admin"]["reasons"][0]["kind"] == "mapping"
    assert grants["arn:aws:iam::999988887777:role/Admin"]["reasons"][0] == {
        "kind": "rule",
        "ref": "adfs",
        "group": "AWS-999988887777-Admin",
        "console": True,
        "cli": True,
        "session_duration": None,
        "source": "config",
        "via": None,  # a named account; "OU ou-..." / "tag k=v" for an accounts: target
    }
    assert body["unmatched_groups"] == ["AWS-123412341234-X", "other"]
    assert any("123412341234" in n for n in body["notes"])


def test_export_then_import_dry_run_then_apply(api):
    seeded(api)
    exported = api.get("/export")
    assert exported.headers["content-type"].startswith("application/yaml")
    doc = yaml.safe_load(exported.text)
    assert {a["id"] for a in doc["accounts"]} == {"111122223333", "999988887777"}
    assert api.post("/import", content=exported.text, headers={"content-type": "application/yaml"}).json()["changes"] == 0

    doc["mappings"] = [m for m in doc["mappings"] if m["group"] != "Ops"] + [
        {"group": "auditors", "account": "prod", "role": "ReadOnly"}
    ]
    text = yaml.safe_dump(doc)
    dry = api.post("/import", content=text, headers={"content-type": "application/yaml"}).json()
    assert dry["applied"] is False and dry["changes"] == 2
    assert [m["group"] for m in dry["mappings"]["create"]] == ["auditors"]
    assert [m["group"] for m in dry["mappings"]["delete"]] == ["Ops"]
    assert api.get("/mappings", params={"group": "auditors"}).json()["items"] == []  # dry run changed nothing

    stale = api.post("/import", params={"apply": "true", "plan_hash": "0" * 64}, content=text)
    assert stale.status_code == 409
    assert dry["deletes"] == 1
    refused = api.post("/import", params={"apply": "true", "plan_hash": dry["plan_hash"]}, content=text)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "deletes_not_allowed", refused.text
    assert api.get("/mappings", params={"group": "auditors"}).json()["items"] == []  # nothing changed
    params = {"apply": "true", "plan_hash": dry["plan_hash"], "allow_deletes": "true"}
    done = api.post("/import", params=params, content=text).json()
    assert done["applied"] is True and done["changes"] == 2
    assert [m["group"] for m in api.get("/mappings", params={"account": "prod"}).json()["items"]] == ["auditors"]
    events = api.get("/audit", params={"action": "mapping."}).json()["items"]
    assert {e["action"] for e in events[:2]} == {"mapping.create", "mapping.delete"}
    assert all(e["details"] == {"via": "import"} for e in events[:2])


@pytest.mark.parametrize(
    "text, code",
    [
        ("accounts: [\n", "invalid_import"),
        ("a: &x [1]\nb: *x\n", "invalid_import"),
        ("accounts: [{id: '1'}]\n", "invalid_account_id"),
        ("mappings: [{group: g, account: nosuch, role: r}]\n", "invalid_import"),
        ("rules: [{name: adfs, pattern: '^X-(?P<account>\\d{12})-(?P<role>\\w+)$'}]\n", "read_only"),
        ("version: 2\n", "invalid_value"),
        ("", "invalid_import"),
    ],
)
def test_failed_import_changes_nothing(api, text, code):
    seeded(api)
    before = api.get("/export", params={"format": "json"}).json()
    r = api.post("/import", params={"apply": "true"}, content=text, headers={"content-type": "application/yaml"})
    assert 400 <= r.status_code < 500 and r.json()["error"]["code"] == code, r.text
    assert api.get("/export", params={"format": "json"}).json() == before


def test_import_accepts_json(api):
    doc = {"accounts": [{"id": "111122224444", "roles": [{"name": "Dev"}]}], "mappings": [{"group": "d", "account": "111122224444", "role": "Dev"}]}
    r = api.post("/import", params={"apply": "true"}, content=json.dumps(doc), headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["applied"] is True
    assert api.get("/accounts/111122224444/roles/dev").status_code == 200


def test_audit_filters_and_pages(api):
    seeded(api)
    for i in range(5):
        api.post("/mappings", json={"group": f"g{i}", "account": "prod", "role": "Admin"})
    q = {"action": "mapping.create", "actor": "admin:bootstrap"}
    p1 = api.get("/audit", params={**q, "limit": 4}).json()
    assert len(p1["items"]) == 4 and p1["next_cursor"] == p1["items"][-1]["id"]
    p2 = api.get("/audit", params={**q, "limit": 4, "cursor": p1["next_cursor"]}).json()
    assert len(p2["items"]) == 2 and p2["next_cursor"] is None
    assert api.get("/audit", params={"actor": "admin:bootstrap", "target_type": "role"}).json()["items"][0]["action"] == "role.create"
    assert api.get("/audit", params={"since": "2999-01-01T00:00:00Z"}).json()["items"] == []
    assert api.get("/audit", params={"limit": 0}).status_code == 422
    assert api.get("/audit", params={"since": "yesterday"}).status_code == 422


# ---- the OpenAPI schema documents every answer ----

AUTH_AND_BODY = {"400", "401", "403", "413", "422", "429", "503"}


def test_openapi_documents_every_error_status_and_every_body(client):
    spec = client.get("/openapi.json").json()
    ops = [(path, method, op) for path, item in spec["paths"].items() if path.startswith("/api/v1/admin")
           for method, op in item.items()]
    assert len(ops) >= 25
    for path, method, op in ops:
        where = f"{method.upper()} {path}"
        codes = set(op["responses"])
        assert AUTH_AND_BODY <= codes, (where, codes)
        if "{" in path and method != "post":  # POST .../roles on an unknown account: 422 unknown_account
            assert "404" in codes, where
        if method in ("put", "patch", "delete") or (method == "post" and path.endswith(("/accounts", "/roles", "/mappings", "/rules"))):
            assert "409" in codes, where
        for status in codes - {"200", "201", "204"}:
            assert op["responses"][status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, where
        if path.endswith("/import"):
            continue  # its body and answer are the import's own (documented with it)
        ok = op["responses"].get("200") or op["responses"].get("201")
        if ok is not None:  # a named model, not "any object"
            schema = ok["content"]["application/json"]["schema"]
            assert "$ref" in schema or "$ref" in schema.get("items", {}), (where, schema)
    user_ops = [(path, method, op) for path, item in spec["paths"].items()
                if path.startswith("/api/v1/") and not path.startswith("/api/v1/admin") for method, op in item.items()]
    # whoami, roles, cli-config, credentials, console; just-in-time access: requests (create, list, get,
    # approve, deny, cancel) and ending a grant
    assert len(user_ops) == 12
    for path, method, op in user_ops:  # the user API: its errors, and a named model for each answer
        issuing = not path.startswith(("/api/v1/requests", "/api/v1/grants"))  # only issuance reaches AWS (502)
        assert {"401", "403", "422", "503"} | ({"502"} if issuing else set()) <= set(op["responses"]), (method, path)
        schema = (op["responses"].get("200") or op["responses"]["201"])["content"]["application/json"]["schema"]
        assert "$ref" in schema or "$ref" in schema.get("items", {}), (method, path, schema)
    detail = spec["components"]["schemas"]["ErrorDetail"]
    assert set(detail["properties"]) == {"message", "field", "code", "value"} and detail["required"] == ["message"]


def test_timestamps_are_rfc3339_with_an_offset(api):
    from datetime import timedelta

    m = seeded(api)
    api.patch("/accounts/prod", json={"owner": "platform"})
    stamps = [api.get("/accounts/prod").json()[k] for k in ("created_at", "updated_at")]
    stamps += [api.get(f"/mappings/{m['id']}").json()["created_at"], api.get("/accounts/prod/roles/Admin").json()["updated_at"]]
    stamps += [api.get("/rules/adfs").json()["created_at"], api.get("/accounts").json()[0]["created_at"]]
    event = api.get("/audit", params={"action": "account.update"}).json()["items"][0]
    stamps += [event["at"], event["after"]["updated_at"], event["before"]["created_at"]]
    for stamp in stamps:
        assert stamp.endswith("Z") and "T" in stamp, stamp
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0), stamp


def _details_are_one_shape(body):
    from broker.web.errors import Error

    Error.model_validate(body)  # the documented model
    details = body["error"]["details"]
    assert isinstance(details, list) and details
    for d in details:
        assert isinstance(d, dict) and isinstance(d["message"], str) and set(d) <= {"message", "field", "code", "value"}, d
    return details


def test_error_details_have_one_shape(api):
    seeded(api)
    r = api.post("/mappings", json={"group": "g", "account": "prod", "role": "Admin", "colour": "red", "cli": "x"})
    assert r.status_code == 422
    details = _details_are_one_shape(r.json())
    assert {(d["field"], d["code"]) for d in details} == {("colour", "unknown_field"), ("cli", "invalid_type")}

    r = api.delete("/accounts/prod")  # still has roles
    assert r.status_code == 409 and r.json()["error"]["code"] == "in_use"
    (detail,) = _details_are_one_shape(r.json())
    assert detail["field"] == "roles" and detail["value"] == 2

    r = api.post("/import", params={"apply": "true"}, content="mappings: [{group: g, account: nosuch, role: r}]\n",
                 headers={"content-type": "application/yaml"})
    assert r.status_code == 422
    assert any("nosuch" in d["message"] for d in _details_are_one_shape(r.json()))

    r = api.patch("/accounts/prod", json={"alias": "-bad-"})
    assert r.status_code == 422
    (detail,) = _details_are_one_shape(r.json())
    assert detail["field"] == "alias" and detail["code"] == "invalid_alias"


# ---- PATCH is one transaction: concurrent changes of different fields all survive ----


def _live_admin_api(database_url: str, tmp_path: Any, serve_app: Any) -> tuple[str, dict[str, str]]:
    """A broker on ``database_url`` served by uvicorn (real threads, real transactions): its admin
    API's base URL and the admin headers."""
    from broker.app import create_app
    from tests.conftest import free_port, make_config

    port = free_port()
    app = create_app(make_config(tmp_path, database={"url": database_url, "auto_migrate": True},
                                 server={"public_url": f"http://127.0.0.1:{port}"}),
                     env={"BROKER_ADMIN_TOKEN": ADMIN_TOKEN}, configure_logging=False)
    serve_app(app, port)
    return f"http://127.0.0.1:{port}/api/v1/admin", {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_concurrent_patches_never_undo_each_other(database_url, tmp_path, serve_app):
    import threading

    import httpx

    base, headers = _live_admin_api(database_url, tmp_path, serve_app)
    assert httpx.post(f"{base}/accounts", json={**ACC, "roles": [{"name": "Admin"}]}, headers=headers).status_code == 201
    m = httpx.post(f"{base}/mappings", json={"group": "ops", "account": "prod", "role": "Admin"}, headers=headers).json()
    rounds, failures = 20, []

    def patcher(path, field, values):
        with httpx.Client(headers=headers, timeout=60) as c:
            for value in values:
                r = c.patch(f"{base}{path}", json={field: value})
                if r.status_code != 200:
                    failures.append((field, value, r.status_code, r.text))

    threads = [
        threading.Thread(target=patcher, args=("/accounts/prod", "owner", [f"owner-{i}" for i in range(rounds)])),
        threading.Thread(target=patcher, args=("/accounts/prod", "description", [f"d-{i}" for i in range(rounds)])),
        threading.Thread(target=patcher, args=(f"/mappings/{m['id']}", "session_duration", [900 + i for i in range(rounds)])),
        threading.Thread(target=patcher, args=(f"/mappings/{m['id']}", "description", [f"m-{i}" for i in range(rounds)])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    acc = httpx.get(f"{base}/accounts/prod", headers=headers).json()
    mapping = httpx.get(f"{base}/mappings/{m['id']}", headers=headers).json()
    last = rounds - 1
    assert (acc["owner"], acc["description"], acc["alias"]) == (f"owner-{last}", f"d-{last}", "prod")
    assert (mapping["session_duration"], mapping["description"]) == (900 + last, f"m-{last}")
    # and no update, while it ran, put back a value another one had just changed
    events = httpx.get(f"{base}/audit", params={"action": "account.update", "limit": 100}, headers=headers).json()["items"]
    events += httpx.get(f"{base}/audit", params={"action": "mapping.update", "limit": 100}, headers=headers).json()["items"]
    assert len(events) == 4 * rounds
    for e in events:
        changed = {k for k in e["after"] if e["after"][k] != e["before"][k]} - {"updated_at"}
        assert len(changed) == 1, (e["before"], e["after"])


def test_concurrent_patches_cannot_combine_into_an_invalid_object(database_url, tmp_path, serve_app):
    """console=false and cli=false, each valid alone, sent at once: one is refused (a mapping must
    allow a channel), never both applied."""
    import threading

    import httpx

    base, headers = _live_admin_api(database_url, tmp_path, serve_app)
    httpx.post(f"{base}/accounts", json={**ACC, "roles": [{"name": "Admin"}]}, headers=headers)
    for i in range(8):
        m = httpx.post(f"{base}/mappings", json={"group": f"g{i}", "account": "prod", "role": "Admin"}, headers=headers).json()
        barrier, answers = threading.Barrier(2), {}

        def patch(field, mapping_id=m["id"], barrier=barrier, answers=answers):
            barrier.wait()
            answers[field] = httpx.patch(f"{base}/mappings/{mapping_id}", json={field: False}, headers=headers, timeout=60)

        threads = [threading.Thread(target=patch, args=(f,)) for f in ("console", "cli")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in answers.values()) == [200, 422], [r.text for r in answers.values()]
        now = httpx.get(f"{base}/mappings/{m['id']}", headers=headers).json()
        assert now["console"] or now["cli"], now


def test_audit_time_filters_honour_the_offset_given(api):
    from datetime import timedelta, timezone

    seeded(api)
    q = {"action": "account.create", "target_id": "111122223333"}
    (event,) = api.get("/audit", params=q).json()["items"]
    at = datetime.fromisoformat(event["at"])
    east = timezone(timedelta(hours=5))  # the same instants, written in another offset
    since, until = at.astimezone(east).isoformat(), (at + timedelta(milliseconds=1)).astimezone(east).isoformat()
    found = api.get("/audit", params={**q, "since": since, "until": until}).json()["items"]
    assert [e["id"] for e in found] == [event["id"]]
    later = (at + timedelta(milliseconds=1)).astimezone(east).isoformat()
    assert api.get("/audit", params={**q, "since": later}).json()["items"] == []
