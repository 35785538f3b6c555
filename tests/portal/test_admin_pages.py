"""The admin pages in the portal (TestClient, real app on SQLite): who may open them, CSRF on every
write, the API's validation messages beside their fields, audit rows with the directory admin as
actor, config-declared objects read-only, and bad input answered with a page, never a 500."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from tests.portal.conftest import BOB_PW, audit, csrf_of, sign_in

ADMINS = {"directory_groups": ["aws-admins"]}


@pytest.fixture
def admin(build: Any) -> Any:
    client = build(admin=ADMINS)
    assert sign_in(client).status_code == 303
    return client


def new_mapping(client: Any, **fields: str) -> Any:
    form = client.get("/admin/mappings")
    data = {"csrf_token": csrf_of(form.text), "group": "qa", "target": "account", "account": "sandbox-dev",
            "role": "Developer", "console": "on", "cli": "on", **fields}
    return client.post("/admin/mappings", data=data)


def field_error(page: str, name: str) -> str:
    """The messages shown beside a form field (its <ul id="<name>-error">)."""
    m = re.search(rf'<ul class="field-errors" id="{name}-error" role="alert">(.*?)</ul>', page, re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", m.group(1))).strip() if m else ""


# ---- who may open them ----


def test_signed_out_goes_to_sign_in_and_comes_back(build: Any) -> None:
    client = build(admin=ADMINS)
    r = client.get("/admin/audit?actor=x")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/admin/audit%3Factor%3Dx"
    assert sign_in(client, next_url="/admin/audit?actor=x").headers["location"] == "/admin/audit?actor=x"


def test_a_person_in_no_admin_group_gets_403_on_every_page(build: Any) -> None:
    client = build(admin=ADMINS)
    sign_in(client, "bob", BOB_PW)
    for path in ("/admin", "/admin/mappings", "/admin/rules", "/admin/audit", "/admin/explain?user=alice",
                 "/admin/report", "/admin/report.csv", "/admin/mappings/1"):
        r = client.get(path)
        assert r.status_code == 403, path
        assert "Admins only" in r.text
    home = client.get("/")
    assert 'href="/admin"' not in home.text
    r = client.post("/admin/mappings", data={"csrf_token": csrf_of(home.text), "group": "qa", "target": "account",
                                             "account": "sandbox-dev", "role": "Developer"})
    assert r.status_code == 403


def test_the_home_page_links_admins_to_the_admin_pages(admin: Any) -> None:
    assert 'href="/admin"' in admin.get("/").text


def test_no_admin_groups_configured_means_no_admin(build: Any) -> None:
    client = build()
    sign_in(client)
    assert client.get("/admin").status_code == 403
    assert 'href="/admin"' not in client.get("/").text


def test_pages_are_never_cached_nor_framed(admin: Any) -> None:
    for path in ("/admin", "/admin/mappings", "/admin/audit"):
        r = admin.get(path)
        assert r.status_code == 200
        assert r.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "<script>" not in r.text and "style=" not in r.text


# ---- the matrix ----


def test_matrix_cells_name_roles_and_link_to_the_mapping(admin: Any) -> None:
    page = admin.get("/admin")
    assert page.status_code == 200
    assert '<th scope="col">aws-admins</th>' in page.text and '<th scope="col">developers</th>' in page.text
    (href,) = set(re.findall(r'href="(/admin/mappings/\d+)"[^>]*aria-label="ReadOnly in sandbox-prod for developers', page.text))
    mapping = admin.get(href)
    assert mapping.status_code == 200 and "developers" in mapping.text and "ReadOnly" in mapping.text


def test_matrix_filters_by_environment_and_group(admin: Any) -> None:
    prod = admin.get("/admin", params={"environment": "prod"}).text
    assert "sandbox-prod" in prod and "sandbox-dev" not in prod.split("<tbody>")[1]
    dev = admin.get("/admin", params={"group": "develop"}).text
    assert '<th scope="col">developers</th>' in dev and '<th scope="col">aws-admins</th>' not in dev


def test_a_group_only_a_naming_rule_names_shows_what_the_rule_gives(admin: Any) -> None:
    r = new_rule(admin, name="adfs", pattern=r"^AWS-(?P<account>\d{12})-(?P<role>\w+)$")
    assert r.status_code == 303
    page = admin.get("/admin", params={"group": "AWS-222222222222-ReadOnly"}).text
    assert 'href="/admin/rules/adfs"' in page


def test_matrix_stays_small_with_many_accounts_and_groups(admin: Any, admin_headers: dict[str, str]) -> None:
    for i in range(60):
        acc = {"id": f"3000000000{i:02d}", "alias": f"acct-{i:02d}", "environment": "test",
               "roles": [{"name": "Dev"}]}
        assert admin.post("/api/v1/admin/accounts", json=acc, headers=admin_headers).status_code == 201
        body = {"group": f"team-{i:02d}", "account": acc["id"], "role": "Dev"}
        assert admin.post("/api/v1/admin/mappings", json=body, headers=admin_headers).status_code == 201
    page = admin.get("/admin").text
    assert page.count('<th scope="row">') == 50
    assert page.count('<th scope="col">') == 1 + 25
    assert "filter by group to see the others" in page
    second = admin.get("/admin?page=2").text
    assert second.count('<th scope="row">') == 12


# ---- mappings: create, validation, edit, delete ----


def test_create_a_mapping_audited_as_the_directory_admin(admin: Any, admin_headers: dict[str, str]) -> None:
    r = new_mapping(admin)
    assert r.status_code == 303
    ref = r.headers["location"].split("/")[-1].split("?")[0]
    assert "Saved." in admin.get(r.headers["location"]).text
    (event,) = audit(admin, admin_headers, action="mapping.create", target_id=ref)
    assert event["actor"] == "directory:alice"
    assert event["target_id"] == ref and event["request_id"] and event["source_ip"]
    api = admin.get(f"/api/v1/admin/mappings/{ref}", headers=admin_headers).json()
    assert (api["group"], api["account"], api["role"], api["source"]) == ("qa", "111111111111", "Developer", "api")
    versions = admin.get("/api/v1/admin/history/versions", headers=admin_headers).json()["items"]
    assert versions[0]["actor"] == "directory:alice" and versions[0]["summary"]["mappings"]["created"] == 1


def test_validation_messages_are_the_apis_beside_the_field_and_input_is_kept(admin: Any, admin_headers: dict[str, str]) -> None:
    r = new_mapping(admin, role="Bad Role!", session_duration="60", group="qa-kept")
    assert r.status_code == 422
    api = admin.post("/api/v1/admin/mappings", headers=admin_headers, json={
        "group": "qa-kept", "account": "sandbox-dev", "role": "Bad Role!", "session_duration": 60}).json()
    by_field = {d["field"]: d for d in api["error"]["details"]}
    assert by_field["role"]["message"] in field_error(r.text, "role")
    assert "(invalid_role_name)" in field_error(r.text, "role")
    assert by_field["session_duration"]["message"] in field_error(r.text, "session_duration")
    assert 'value="qa-kept"' in r.text and 'value="Bad Role!"' in r.text
    assert 'aria-invalid="true"' in r.text
    assert audit(admin, admin_headers, action="mapping.create", actor="directory:alice") == []


def test_a_store_error_lands_beside_its_field(admin: Any) -> None:
    r = new_mapping(admin, account="999999999999")
    assert r.status_code == 422
    assert "(unknown_account)" in field_error(r.text, "account")
    r = new_mapping(admin, role="NoSuchRole")
    assert "(unknown_role)" in field_error(r.text, "role")


def test_a_duplicate_is_a_409_above_the_form(admin: Any) -> None:
    assert new_mapping(admin).status_code == 303
    r = new_mapping(admin)
    assert r.status_code == 409 and "(duplicate)" in r.text


def test_an_ou_mapping_is_created_and_edited_as_org_ref(admin: Any, admin_headers: dict[str, str]) -> None:
    r = new_mapping(admin, target="ou", account="", ou="ou-abcd-12345678", role="Auditor")
    assert r.status_code == 303 and "/admin/mappings/org-" in r.headers["location"]
    bad = new_mapping(admin, target="ou", account="", ou="not-an-ou", role="Auditor")
    assert bad.status_code == 422 and "(invalid_ou_id)" in field_error(bad.text, "ou")
    tag = new_mapping(admin, target="tag", account="", tag="aws:x=1", role="Auditor")
    assert tag.status_code == 422 and "(invalid_tag)" in field_error(tag.text, "tag")
    (event,) = audit(admin, admin_headers, action="org_mapping.create")
    assert event["actor"] == "directory:alice"


def test_edit_and_delete_a_mapping_with_confirmation(admin: Any, admin_headers: dict[str, str]) -> None:
    location = new_mapping(admin).headers["location"].split("?")[0]
    page = admin.get(location)
    data = {"csrf_token": csrf_of(page.text), "group": "qa", "target": "account", "account": "sandbox-dev",
            "role": "Developer", "console": "on", "session_duration": "1800"}
    assert admin.post(location, data=data).status_code == 303
    ref = location.split("/")[-1]
    api = admin.get(f"/api/v1/admin/mappings/{ref}", headers=admin_headers).json()
    assert (api["cli"], api["session_duration"]) == (False, 1800)
    bad = admin.post(location, data={**data, "session_duration": "soon"})
    assert bad.status_code == 422 and "(invalid_type)" in field_error(bad.text, "session_duration")

    confirm = admin.get(location + "/delete")
    assert confirm.status_code == 200 and "Delete" in confirm.text
    assert admin.get(f"/api/v1/admin/mappings/{ref}", headers=admin_headers).status_code == 200  # a GET deletes nothing
    done = admin.post(location + "/delete", data={"csrf_token": csrf_of(confirm.text)})
    assert done.status_code == 303 and "was deleted" in admin.get(done.headers["location"]).text
    assert admin.get(f"/api/v1/admin/mappings/{ref}", headers=admin_headers).status_code == 404
    (event,) = audit(admin, admin_headers, action="mapping.delete", target_id=ref)
    assert event["actor"] == "directory:alice"


# ---- CSRF ----


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(admin: Any, admin_headers: dict[str, str]) -> None:
    location = new_mapping(admin).headers["location"].split("?")[0]
    before = admin.get("/api/v1/admin/mappings", headers=admin_headers).json()["items"]
    data = {"group": "qa2", "target": "account", "account": "sandbox-dev", "role": "Developer", "console": "on"}
    for path, body in (("/admin/mappings", data), (location, data), (location + "/delete", {}),
                       ("/admin/rules", {"name": "x", "pattern": "(?P<account>a)(?P<role>b)"})):
        for token in ({}, {"csrf_token": "forged"}):
            r = admin.post(path, data={**body, **token})
            assert r.status_code == 403, path
            assert "Please try again" in r.text
    r = admin.post("/admin/mappings", data={**data, "csrf_token": csrf_of(admin.get("/admin").text)},
                   headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert admin.get("/api/v1/admin/mappings", headers=admin_headers).json()["items"] == before
    assert admin.get("/api/v1/admin/rules", headers=admin_headers).json() == []


# ---- config-declared objects ----


def test_config_declared_mappings_and_rules_are_read_only(build: Any, admin_headers: dict[str, str]) -> None:
    client = build(admin=ADMINS, mapping={"rules": [{"name": "cfg-rule", "pattern": r"^X-(?P<account>\d{12})-(?P<role>\w+)$"}]})
    sign_in(client)
    listing = client.get("/admin/mappings").text
    (config_id,) = {m["id"] for m in client.get("/api/v1/admin/mappings", headers=admin_headers).json()["items"]
                    if m["group"] == "developers" and m["role"] == "ReadOnly"}
    assert f'href="/admin/mappings/{config_id}/delete"' not in listing
    page = client.get(f"/admin/mappings/{config_id}").text
    assert "Declared in the config file; change it there." in page
    assert "Save</button>" not in page and "disabled" in page
    confirm = client.get(f"/admin/mappings/{config_id}/delete").text
    assert "Declared in the config file" in confirm and "Delete</button>" not in confirm
    r = client.post(f"/admin/mappings/{config_id}/delete", data={"csrf_token": csrf_of(page)})
    assert r.status_code == 409 and "configuration file" in r.text
    rule = client.get("/admin/rules/cfg-rule").text
    assert "Declared in the config file; change it there." in rule and "Save</button>" not in rule
    r = client.post("/admin/rules/cfg-rule", data={"csrf_token": csrf_of(page), "pattern": "(?P<account>a)(?P<role>b)",
                                                "console": "on"})
    assert r.status_code == 409 and "(read_only)" in r.text
    assert client.get("/api/v1/admin/rules/cfg-rule", headers=admin_headers).json()["pattern"].startswith("^X-")


# ---- naming rules ----


def new_rule(client: Any, **fields: str) -> Any:
    form = client.get("/admin/rules")
    data = {"csrf_token": csrf_of(form.text), "target": "none", "console": "on", "cli": "on", **fields}
    return client.post("/admin/rules", data=data)


def test_a_rule_with_a_bad_regex_shows_the_apis_message_beside_the_pattern(admin: Any, admin_headers: dict[str, str]) -> None:
    for pattern, code in (("(?P<account>\\d+)(?P<role>(?=x))", "invalid_regex"), ("^AWS-(?P<role>\\w+)$", "invalid_regex")):
        r = new_rule(admin, name="bad", pattern=pattern)
        assert r.status_code == 422
        api = admin.post("/api/v1/admin/rules", headers=admin_headers, json={"name": "bad", "pattern": pattern}).json()
        assert api["error"]["details"][0]["message"] in field_error(r.text, "pattern")
        assert f"({code})" in field_error(r.text, "pattern")
        assert f'value="{pattern}"' in r.text.replace("&lt;", "<").replace("&gt;", ">")
    ok = new_rule(admin, name="adfs", pattern=r"^AWS-(?P<account>\d{12})-(?P<role>\w+)$")
    assert ok.status_code == 303 and ok.headers["location"] == "/admin/rules/adfs?saved=1"
    (event,) = audit(admin, admin_headers, action="rule.create")
    assert event["actor"] == "directory:alice" and event["target_id"] == "adfs"


def test_edit_and_delete_a_rule(admin: Any, admin_headers: dict[str, str]) -> None:
    new_rule(admin, name="adfs", pattern=r"^AWS-(?P<account>\d{12})-(?P<role>\w+)$")
    page = admin.get("/admin/rules/adfs")
    data = {"csrf_token": csrf_of(page.text), "pattern": r"^G-(?P<role>\w+)$", "target": "tag", "tag": "env=dev",
            "console": "on"}
    assert admin.post("/admin/rules/adfs", data=data).status_code == 303
    api = admin.get("/api/v1/admin/rules/adfs", headers=admin_headers).json()
    assert api["accounts"] == {"tag": {"env": "dev"}} and api["cli"] is False
    done = admin.post("/admin/rules/adfs/delete", data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 303
    assert admin.get("/api/v1/admin/rules/adfs", headers=admin_headers).status_code == 404
    assert [e["actor"] for e in audit(admin, admin_headers, action="rule.")] == ["directory:alice"] * 3


# ---- audit, explain, report ----


def test_audit_filters_and_pages(admin: Any) -> None:
    for i in range(3):
        new_mapping(admin, group=f"qa-{i}")
    page = admin.get("/admin/audit", params={"actor": "directory:alice", "action": "mapping."})
    assert page.status_code == 200
    assert page.text.count("<td>mapping.create</td>") == 3
    assert admin.get("/admin/audit", params={"outcome": "deny", "action": "mapping."}).text.count("mapping.create") == 0
    bad = admin.get("/admin/audit", params={"since": "yesterday", "outcome": "maybe"})
    assert bad.status_code == 422 and "not a date and time" in bad.text and "one of: allow, deny, error" in bad.text
    future = admin.get("/admin/audit", params={"since": "2999-01-01T00:00"})
    assert "No event matches." in future.text


def test_audit_keyset_pages(admin: Any) -> None:
    for i in range(51):
        new_mapping(admin, group=f"p-{i}")
    first = admin.get("/admin/audit", params={"action": "mapping.create", "actor": "directory:alice"}).text
    assert first.count("<td>mapping.create</td>") == 50
    older = re.search(r'href="([^"]+)" rel="next">Older events', first).group(1).replace("&amp;", "&")
    second = admin.get(older).text
    assert second.count("<td>mapping.create</td>") == 1 and "Newest" in second


def test_explain_a_person(admin: Any) -> None:
    page = admin.get("/admin/explain", params={"user": "bob"})
    assert page.status_code == 200
    assert "developers" in page.text and "ReadOnly" in page.text and "Developer" in page.text
    assert re.search(r'href="/admin/mappings/\d+">mapping \d+</a> through group developers', page.text)
    nobody = admin.get("/admin/explain", params={"user": "nobody"})
    assert nobody.status_code == 404 and "no active account of that name" in nobody.text


def test_report_table_and_the_same_csv_as_the_api(admin: Any, admin_headers: dict[str, str]) -> None:
    page = admin.get("/admin/report", params={"account": "sandbox-prod"})
    assert page.status_code == 200 and "alice" in page.text and "bob" in page.text
    assert 'href="/admin/report.csv?account=sandbox-prod"' in page.text
    assert re.search(r'href="/admin/mappings/\d+">mapping \d+</a>', page.text)  # each row links to its grant
    csv = admin.get("/admin/report.csv", params={"account": "sandbox-prod"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["cache-control"] == "no-store"
    api = admin.get("/api/v1/admin/reports/access", params={"account": "sandbox-prod", "format": "csv"},
                    headers=admin_headers)
    assert csv.text == api.text and csv.text.count("\r\n") == 4  # header + alice Admin, alice ReadOnly, bob ReadOnly


def test_bad_input_is_a_page_never_a_500(admin: Any) -> None:
    for path in ("/admin/mappings/abc", "/admin/mappings/org-", "/admin/mappings/99999999999999999999999",
                 "/admin/mappings/0", "/admin/rules/nope", "/admin/mappings/42/delete"):
        r = admin.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
    assert admin.get("/admin?page=0").status_code == 422
    assert admin.get("/admin", params={"group": "x" * 5000}).status_code == 422
    r = new_mapping(admin, group="x" * 2000)
    assert r.status_code == 422
    # the notice after a delete names only a mapping ref or rule name, never text a link brought
    for path in ("/admin/mappings?deleted=all+your+accounts", "/admin/rules?deleted=every+rule%21"):
        assert "was deleted" not in admin.get(path).text


# ---- the demo ----


@pytest.mark.sts
def test_the_demo_makes_alice_an_admin_of_the_pages(tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from broker.app import create_app
    from broker.cli.server import ensure_demo_keys
    from broker.config import load_config
    from tests.conftest import ROOT, require_module

    require_module("moto")
    ensure_demo_keys(tmp_path)
    config = load_config(ROOT / "config" / "demo.yaml", env={"BROKER_DEMO_DIR": str(tmp_path), "BROKER_DEMO_PORT": "8124",
                                                                "BROKER_DEMO_STS_PORT": "0"})
    app = create_app(config, env={}, configure_logging=False)
    try:
        alice, bob = TestClient(app, follow_redirects=False), TestClient(app, follow_redirects=False)
        sign_in(alice, "alice", "alice-demo-pw")
        sign_in(bob, "bob", "bob-demo-pw")
        assert 'href="/admin"' in alice.get("/").text and 'href="/admin"' not in bob.get("/").text
        page = alice.get("/admin")
        assert page.status_code == 200 and "sandbox-prod" in page.text
        assert 'href="/admin/rules/adfs-style"' in alice.get("/admin", params={"group": "AWS-sandbox-dev-ReadOnly"}).text
        assert "Declared in the config file" in alice.get("/admin/rules/adfs-style").text
        assert bob.get("/admin").status_code == 403
    finally:
        app.state.services.aws.close()
        app.state.services.engine.dispose()
