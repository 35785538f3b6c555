"""POST /api/v1/admin/import with hostile and odd documents: every one is a 4xx with a stable
code (422 ``invalid_import`` for what cannot be read), nothing changes, the service answers;
deletions need ``allow_deletes=true``; the plan reads as text; the body is in the OpenAPI schema."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.test_admin_api import CONFIG_MAPPING, seeded

YAML = {"content-type": "application/yaml"}
JSON = {"content-type": "application/json"}


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


def export(api):
    return api.get("/export", params={"format": "json"}).json()


DEEP_FLOW = b"accounts: " + b"[" * 20000 + b"]" * 20000  # 40 KB
DEEP_BLOCK = b"".join(b" " * i + b"a:\n" for i in range(200))
FLAT = b"description: [" + b",".join([b"1"] * 300_000) + b"]\n"  # 600 KB, 300,000 nodes

HOSTILE = [
    (b"accounts: !!python/object/apply:os.system ['true']\n", YAML, "tag:yaml.org,2002:python/object/apply"),
    (b"accounts: !!python/name:os.system\n", YAML, "python/name"),
    (b"accounts: !local [x]\n", YAML, "'!local'"),
    (b"accounts: [{id: !!binary MTExMTIyMjIzMzMz}]\n", YAML, "binary"),
    (b"rules: !!set {a}\n", YAML, "set"),
    (b"version: 1\nversion: 1\n", YAML, "duplicate key 'version'"),
    (b"accounts:\n- id: '111122224444'\n  id: '111122225555'\n", YAML, "line 3"),
    (b'{"version": 1, "accounts": [], "accounts": [{"id": "111122224444"}]}', JSON, "duplicate key 'accounts'"),
    (b"a: &x [1]\nb: *x\n", YAML, "aliases"),
    (DEEP_FLOW, YAML, "nesting depth"),
    (DEEP_BLOCK, YAML, "deeper than 32"),
    (b"[" * 5000 + b"]" * 5000, JSON, "deeper than 32"),
    (b"version: " + b"9" * 5000 + b"\n", YAML, "integer of more than 32"),
    (b"version: 0x" + b"f" * 5000 + b"\n", YAML, "integer of more than 32"),
    (b'{"version": ' + b"9" * 5000 + b"}", JSON, "4300 digits"),
    (b'{"version": NaN}', JSON, "NaN is not JSON"),
    (FLAT, YAML, "more than 250000 YAML nodes"),
    ("version: 1\n".encode("utf-16"), YAML, "UTF-16"),
    (b"accounts: [{id: '111122224444', description: caf\xe9}]\n", YAML, "not UTF-8"),
    (b"version: 1\n---\nversion: 1\n", YAML, "single document"),
    (b"? [a, b]\n: c\n", YAML, "a key is a list or a map"),
    (b"accounts: [\n", YAML, "not valid YAML"),
    (b'{"accounts": [', JSON, "not valid JSON"),
    (b"   \n", YAML, "empty"),
]


@pytest.mark.parametrize("body, headers, says", HOSTILE, ids=lambda v: v[:24] if isinstance(v, bytes) else None)
def test_a_hostile_document_is_refused_and_changes_nothing(api, client, body, headers, says):
    seeded(api)
    before = export(api)
    for params in ({}, {"apply": "true", "allow_deletes": "true"}):
        r = api.post("/import", params=params, content=body, headers=headers)
        assert r.status_code == 422, (r.status_code, r.text[:300])
        error = r.json()["error"]
        assert error["code"] == "invalid_import" and says in error["message"], error
    assert export(api) == before
    assert client.get("/healthz").status_code == 200


def test_dates_and_merge_keys_are_plain_yaml_text(api):
    """A date-like description stays the text the reviewer read (it was a date object, refused)."""
    doc = b"accounts:\n- id: '111122224444'\n  description: 2024-01-31\n  roles: [{name: Dev}]\n"
    r = api.post("/import", params={"apply": "true"}, content=doc, headers=YAML)
    assert r.status_code == 200, r.text
    assert api.get("/accounts/111122224444").json()["description"] == "2024-01-31"
    r = api.post("/import", content=b"accounts: [{<<: {id: '111122225555'}}]\n", headers=YAML)
    assert r.status_code == 422, r.text
    assert any(
        d["field"] == "document.accounts.0.<<" and d["code"] == "unknown_field" for d in r.json()["error"]["details"]
    ), r.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"])
def test_other_media_types_are_415(api, content_type):
    r = api.post("/import", content=b"version: 1\n", headers={"content-type": content_type})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type", r.text


def test_utf8_bom_and_json_as_yaml_are_read(api):
    doc = {"accounts": [{"id": "111122224444", "roles": [{"name": "Dev"}]}]}
    assert api.post("/import", content=b"\xef\xbb\xbf" + json.dumps(doc).encode(), headers=YAML).json()["changes"] == 2
    assert api.post("/import", content=json.dumps(doc).encode(), headers={"content-type": "application/vnd.x+json"}).status_code == 200


def test_an_import_that_deletes_needs_allow_deletes(api):
    seeded(api)
    before = export(api)
    dry = api.post("/import", content=b"version: 1\n", headers=YAML).json()
    assert dry["deletes"] == 4 and dry["applied"] is False  # account prod, its two roles, the mapping
    assert [r["account"] for r in dry["roles"]["delete"]] == ["111122223333", "111122223333"]
    r = api.post("/import", params={"apply": "true"}, content=b"version: 1\n", headers=YAML)
    assert r.status_code == 409 and r.json()["error"]["code"] == "deletes_not_allowed", r.text
    assert {"field": "deletes", "value": 4} in [{k: d.get(k) for k in ("field", "value")} for d in r.json()["error"]["details"]]
    assert export(api) == before
    r = api.post("/import", params={"apply": "true", "allow_deletes": "true"}, content=b"version: 1\n", headers=YAML)
    assert r.status_code == 200 and r.json()["applied"] is True
    assert [a["id"] for a in api.get("/accounts").json()] == ["999988887777"]  # the config file's stays


def test_the_plan_reads_as_text_and_roles_name_their_account(api):
    seeded(api)
    doc = yaml.safe_load(api.get("/export", params={"source": "api"}).text)
    prod = doc["accounts"][0]
    prod["roles"] = [
        {**r, "max_session_duration": 7200} if r["name"] == "ReadOnly" else r for r in prod["roles"]
    ] + [{"name": "Deployer"}]
    doc["mappings"] = [{"group": "aws-admins", "account": "prod", "role": "Admin"}]
    body = yaml.safe_dump(doc).encode()
    dry = api.post("/import", content=body, headers=YAML).json()
    assert dry["roles"]["create"][0]["account"] == "111122223333" and dry["roles"]["create"][0]["name"] == "Deployer"
    text = api.post("/import", params={"format": "text"}, content=body, headers=YAML)
    assert text.headers["content-type"].startswith("text/plain")
    lines = text.text.splitlines()
    assert lines[0] == "import plan: 4 change(s) (dry run, nothing changed)"
    assert "+ role 111122223333/Deployer (path /, max_session_duration 3600)" in lines
    assert "~ role 111122223333/ReadOnly: max_session_duration 3600 -> 7200" in lines
    assert '+ mapping "aws-admins" -> 111122223333/Admin (console+cli)' in lines
    assert '- mapping "Ops" -> 111122223333/Admin' in lines
    assert "1 deletion(s): applying needs allow_deletes=true" in lines
    assert lines[-1] == f"plan_hash: {dry['plan_hash']}"
    params = {"apply": "true", "allow_deletes": "true", "format": "text", "plan_hash": dry["plan_hash"]}
    done = api.post("/import", params=params, content=body, headers=YAML)
    assert done.status_code == 200 and done.text.startswith("import plan: 4 change(s) (applied)\n"), done.text


def test_the_import_body_is_in_the_openapi_schema(client):
    op = client.get("/openapi.json").json()["paths"]["/api/v1/admin/import"]["post"]
    content = op["requestBody"]["content"]
    assert set(content) == {"application/yaml", "application/json"}
    for media in content.values():
        schema = media["schema"]
        assert schema["type"] == "object" and {"version", "accounts", "mappings", "rules"} <= set(schema["properties"])
        account = schema["properties"]["accounts"]["items"]
        assert account["properties"]["id"]["type"] == "string" and "$ref" not in json.dumps(schema)
    params = {p["name"] for p in op["parameters"]}
    assert {"apply", "plan_hash", "allow_deletes", "format"} <= params


def test_a_rule_stored_before_re2_keeps_the_broker_working(app_factory, tmp_path, admin_headers):
    """A deployment upgraded with an API rule RE2 refuses (a look-ahead): it starts, the rule is
    listed, exported, explained as never matching, and can be deleted."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from broker.db.models import NamingRule

    client = app_factory(mapping=CONFIG_MAPPING)
    now = datetime.now(UTC)
    row = {"name": "old", "pattern": r"^(?=AWS)AWS-(?P<account>\d{12})-(?P<role>\w+)$", "session_duration": None,
           "console": True, "cli": True, "description": "", "source": "api", "created_at": now, "updated_at": now}

    def store_old_rule():
        with client.app.state.services.engine.begin() as conn:
            conn.execute(insert(NamingRule), [row])

    store_old_rule()
    assert [r["name"] for r in client.get("/api/v1/admin/rules", headers=admin_headers).json()] == ["adfs", "old"]
    assert "(?=AWS)" in client.get("/api/v1/admin/export", headers=admin_headers).text
    body = {"username": "x", "groups": ["AWS-999988887777-Admin"]}
    explained = client.post("/api/v1/admin/explain", json=body, headers=admin_headers).json()
    assert [r["ref"] for g in explained["grants"] for r in g["reasons"]] == ["adfs"]
    assert any("'old'" in n and "RE2" in n for n in explained["notes"]), explained["notes"]
    r = client.delete("/api/v1/admin/rules/old", headers=admin_headers)
    assert r.status_code == 204, r.text
    store_old_rule()
    restarted = app_factory(mapping=CONFIG_MAPPING)  # the start-up sync reads it too
    assert [r["name"] for r in restarted.get("/api/v1/admin/rules", headers=admin_headers).json()] == ["adfs", "old"]
