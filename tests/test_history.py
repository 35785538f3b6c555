"""The mapping's history: every change is a numbered version with its actor and diff; a version's
document, the diff of two versions, and a restore (an import of the version's document).

Store tests run on SQLite and PostgreSQL (``store`` fixture); the HTTP tests on the real app."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import delete

from broker.audit import AuditContext
from broker.db.models import MappingVersion
from broker.db.store import SqlMappingStore
from broker.errors import NotFound, RestoreAccountRemoved
from broker.mapping import versions
from broker.mapping.model import AccountFields, AccountSpec, MappingDocument, MappingSpec, RoleSpec, RuleSpec

ALICE = AuditContext(actor="alice", request_id="req-1")
BOB = AuditContext(actor="bob")
CORE, TEAM = "111122223333", "444455556666"
FILE = MappingDocument.model_validate(
    {
        "accounts": [
            {"id": CORE, "alias": "core", "roles": [{"name": "Admin", "max_session_duration": 7200}]}
        ],
        "mappings": [{"group": "core-admins", "account": "core", "role": "Admin"}],
        "rules": [{"name": "adfs", "pattern": r"^AWS-(?P<account>\d{12})-(?P<role>[\w+=,.@-]+)$"}],
    }
)


def exported(store: SqlMappingStore) -> dict[str, Any]:
    return versions.canonical(store.export().model_dump(mode="json"))


def numbers(store: SqlMappingStore) -> list[int]:
    return [v["number"] for v in store.list_versions(limit=10000)]


def build_team(store: SqlMappingStore) -> None:
    store.create_account(AccountSpec(id=TEAM, alias="team", roles=[RoleSpec(name="Dev")]), ALICE)
    store.create_mapping(MappingSpec(group="devs", account="team", role="Dev"), ALICE)
    store.create_mapping(
        MappingSpec(group="ops", account="core", role="Admin"), ALICE
    )  # an API mapping on a config role


# ---- every change is a version, with its actor ----


def test_api_writes_and_the_config_sync_each_make_a_version_with_their_actor(store):
    store.sync_config(FILE)
    build_team(store)
    listed = store.list_versions()
    assert [(v["number"], v["actor"], v["via"]) for v in listed] == [
        (4, "alice", "api"),
        (3, "alice", "api"),
        (2, "alice", "api"),
        (1, "config-file", "config-sync"),
    ]
    assert listed[-1]["summary"] == {
        k: {"created": 1, "updated": 0, "deleted": 0} for k in ("accounts", "roles", "mappings", "rules")
    }
    assert listed[0]["request_id"] == "req-1"
    # one version per transaction: the account and its role came in one write
    assert listed[2]["summary"] == {
        "accounts": {"created": 1, "updated": 0, "deleted": 0},
        "roles": {"created": 1, "updated": 0, "deleted": 0},
    }


def test_nothing_changed_makes_no_version(store):
    store.sync_config(FILE)
    build_team(store)
    before = numbers(store)
    store.sync_config(FILE)  # a restart: the file is as it was
    store.patch_role("team", "Dev", {"max_session_duration": 3600}, BOB)  # the value it has
    store.apply_import(store.export(source="api"), BOB)  # the API's objects, as they are
    with pytest.raises(NotFound):
        store.delete_mapping(999, BOB)  # a failed write
    assert numbers(store) == before


def test_each_version_is_the_whole_document_as_it_was(store):
    """Through every kind of write (updates, renames, deletes, imports, a sync that releases an
    object to the API), each version's document is exactly the export taken right after it."""
    seen: dict[int, dict[str, Any]] = {}

    def snap() -> None:
        seen[numbers(store)[0]] = exported(store)

    store.sync_config(FILE)
    snap()
    build_team(store)
    snap()
    store.update_account("team", AccountFields(alias="team2", environment="dev"), ALICE)
    snap()
    store.update_role("team2", "Dev", RoleSpec(name="Developer", max_session_duration=3600), ALICE)
    snap()  # renamed
    mapping_id = store.list_mappings(group="devs")[0]["id"]
    store.patch_mapping(mapping_id, {"cli": False, "group": "DEVS"}, ALICE)
    snap()
    store.create_rule(RuleSpec(name="team", pattern=r"^t-(?P<account>\d{12})-(?P<role>\w+)$"), ALICE)
    snap()
    doc = store.export(source="api").model_dump(mode="json")
    doc["rules"] = []
    doc["mappings"].append({"group": "imported", "account": TEAM, "role": "Developer"})
    store.apply_import(MappingDocument.model_validate(doc), BOB)
    snap()
    dropped = FILE.model_copy(
        update={"mappings": [], "accounts": [FILE.accounts[0].model_copy(update={"roles": []})]}
    )
    store.sync_config(dropped)
    snap()  # the Admin role is released to the API (an API mapping uses it)
    for number, doc_then in seen.items():
        assert store.version_document(number) == doc_then, number
    last = store.get_version(max(seen))
    assert last["actor"] == "config-file"
    assert last["diff"]["roles"]["updated"][0]["changes"] == {"source": {"before": "config", "after": "api"}}


def test_a_diff_names_each_field_that_changed(store):
    store.sync_config(FILE)
    build_team(store)
    store.patch_role("team", "Dev", {"max_session_duration": 7200, "description": "developers"}, BOB)
    store.delete_mapping(store.list_mappings(group="ops")[0]["id"], BOB)
    d = store.diff_versions(4, 6)
    assert d["summary"] == {
        "roles": {"created": 0, "updated": 1, "deleted": 0},
        "mappings": {"created": 0, "updated": 0, "deleted": 1},
    }
    (updated,) = d["diff"]["roles"]["updated"]
    assert updated["label"] == f"role {TEAM}/Dev"
    assert updated["changes"] == {
        "description": {"before": "", "after": "developers"},
        "max_session_duration": {"before": 3600, "after": 7200},
    }
    assert d["diff"]["mappings"]["deleted"][0]["label"] == f'mapping "ops" -> {CORE}/Admin'
    # the reverse diff undoes it; from 0 is everything created
    back = store.diff_versions(6, 4)
    assert back["diff"]["mappings"]["created"][0]["key"] == d["diff"]["mappings"]["deleted"][0]["key"]
    assert store.diff_versions(0, 1)["changes"] == 4
    with pytest.raises(NotFound):
        store.diff_versions(1, 99)


# ---- restore ----


def test_restore_round_trip_gives_back_the_old_version(store):
    store.sync_config(FILE)
    build_team(store)
    old = numbers(store)[0]
    wanted = store.version_document(old)
    store.update_role("team", "Dev", RoleSpec(name="Builder"), BOB)
    store.create_account(AccountSpec(id="777788889999", roles=[RoleSpec(name="X")]), BOB)
    store.delete_mapping(store.list_mappings(group="ops")[0]["id"], BOB)
    assert exported(store) != wanted

    planned = store.plan_restore(old)
    assert not planned.applied and planned.accounts.delete == [
        store.export().accounts[-1].model_dump(mode="json") | {"roles": []}
    ]
    assert numbers(store)[0] == old + 3  # a dry run writes nothing
    applied = store.apply_restore(old, AuditContext(actor="carol"))
    assert applied.applied and applied.changes == planned.changes
    assert exported(store) == wanted
    latest = store.list_versions(limit=1)[0]
    assert (latest["actor"], latest["via"], latest["details"]) == ("carol", "restore", {"restored_from": old})


def test_a_restore_leaves_the_configuration_files_objects_as_the_file_says(store):
    store.sync_config(FILE)
    build_team(store)
    old = numbers(store)[0]
    edited = FILE.model_copy(
        update={
            "accounts": [
                FILE.accounts[0].model_copy(
                    update={
                        "description": "edited in the file",
                        "roles": [RoleSpec(name="Admin", max_session_duration=3600)],
                    }
                )
            ]
        }
    )
    store.sync_config(edited)
    planned = store.plan_restore(old)
    assert planned.changes == 0 and not planned.conflicts
    assert any(f"account {CORE} (core) is declared in the configuration file" in n for n in planned.notices)
    assert any(f"role {CORE}/Admin is declared in the configuration file" in n for n in planned.notices)
    store.apply_restore(old, BOB)
    assert store.get_account("core")["description"] == "edited in the file"


def test_a_restore_naming_an_account_removed_since_is_refused_and_changes_nothing(store):
    store.sync_config(FILE)
    build_team(store)
    old = numbers(store)[0]
    store.delete_mapping(store.list_mappings(group="devs")[0]["id"], BOB)
    store.delete_role("team", "Dev", BOB)
    store.delete_account("team", BOB)
    before, versions_before = exported(store), numbers(store)
    for attempt in (lambda: store.plan_restore(old), lambda: store.apply_restore(old, BOB)):
        with pytest.raises(RestoreAccountRemoved) as caught:
            attempt()
        assert caught.value.code == "restore_account_removed"
        assert f"account {TEAM} (team)" in caught.value.message
        assert caught.value.details[0]["value"] == TEAM
    assert exported(store) == before and numbers(store) == versions_before


def test_an_unknown_version_is_not_found(store):
    with pytest.raises(NotFound):
        store.get_version(1)
    with pytest.raises(NotFound):
        store.plan_restore(3)


# ---- numbers, checkpoints, the baseline ----


def test_concurrent_writers_get_dense_unique_numbers(store):
    """Two threads write at once (on PostgreSQL: two connections, really concurrent); every write
    gets its own number, with no gap, and the last version rebuilds (checkpoint + diffs) the export."""
    store.create_account(AccountSpec(id=CORE, roles=[RoleSpec(name="A"), RoleSpec(name="B")]), ALICE)
    per_thread = 30
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(role: str) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                store.create_mapping(
                    MappingSpec(group=f"{role}-{i}", account=CORE, role=role),
                    AuditContext(actor=f"writer-{role}"),
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(r,)) for r in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert numbers(store) == list(range(1 + 2 * per_thread, 0, -1))
    assert store.version_document(1 + 2 * per_thread) == exported(store)  # past the checkpoint at 50
    assert len(store.version_document(40)["mappings"]) == 39
    actors = {v["actor"] for v in store.list_versions(limit=100)}
    assert actors == {"alice", "writer-A", "writer-B"}


def test_a_mapping_older_than_its_history_becomes_the_baseline(store, engine):
    store.sync_config(FILE)
    build_team(store)
    wanted = exported(store)
    with engine.begin() as conn:  # a database upgraded to the history's migration: no version yet
        conn.execute(delete(MappingVersion))
    store.delete_mapping(store.list_mappings(group="ops")[0]["id"], BOB)
    baseline, change = sorted(store.list_versions(), key=lambda v: v["number"])
    assert (baseline["number"], baseline["via"], baseline["actor"]) == (1, "baseline", "history")
    assert store.version_document(1) == wanted
    assert (change["number"], change["actor"], change["summary"]) == (
        2,
        "bob",
        {"mappings": {"created": 0, "updated": 0, "deleted": 1}},
    )


def test_versions_are_listed_in_pages(store):
    for i in range(5):
        store.create_rule(RuleSpec(name=f"r{i}", pattern=r"^(?P<account>\d{12})-(?P<role>\w+)$"), ALICE)
    first = store.list_versions(limit=2)
    rest = store.list_versions(limit=10, before=first[-1]["number"])
    assert [v["number"] for v in first + rest] == [5, 4, 3, 2, 1]


# ---- the pure part ----


def test_restore_document_decides_per_object_by_its_source_then_and_now():
    def entry(kind: str, source: str, **fields: Any) -> dict[str, Any]:
        return fields | {"source": source}

    acc = {"id": CORE, "alias": None}
    then = versions.empty()
    then["accounts"][CORE] = entry("accounts", "config", **acc)
    then["roles"][f"{CORE}/a"] = entry("roles", "config", name="A", account=CORE)  # the file dropped it since
    then["roles"][f"{CORE}/b"] = entry("roles", "config", name="B", account=CORE)  # released to the API since
    then["roles"][f"{CORE}/c"] = entry("roles", "api", name="C", account=CORE, path="/old/")
    now = versions.empty()
    now["accounts"][CORE] = entry("accounts", "config", **acc, description="now")
    now["roles"][f"{CORE}/b"] = entry("roles", "api", name="B", account=CORE)
    now["roles"][f"{CORE}/c"] = entry(
        "roles", "config", name="C", account=CORE, path="/"
    )  # the file declares it now
    doc, notices, removed = versions.restore_document(then, now, 7)
    assert removed == []
    assert doc["accounts"] == [{"id": CORE, "alias": None, "description": "now", "roles": [{"name": "B"}]}]
    assert len(notices) == 3
    assert "role 111122223333/A was declared in the configuration file in version 7" in notices[2] or any(
        "role 111122223333/A was declared in the configuration file in version 7" in n for n in notices
    )
    gone = versions.empty()
    assert versions.restore_document(then, gone, 7)[2] == [then["accounts"][CORE]]


# ---- over HTTP, on the real app ----

HTTP_MAPPING = {
    "accounts": [{"id": CORE, "alias": "core", "roles": [{"name": "Admin"}]}],
    "mappings": [{"group": "core-admins", "account": "core", "role": "Admin"}],
}


@pytest.fixture
def http(app_factory, admin_headers):
    def build() -> Any:
        client = app_factory(mapping=HTTP_MAPPING)

        def call(method: str, path: str, **kw: Any) -> Any:
            return client.request(method, f"/api/v1/admin{path}", headers=admin_headers, **kw)

        return call

    return build


def test_http_versions_carry_the_actor_and_a_restart_makes_none(http):
    api = http()
    assert (
        api("POST", "/accounts", json={"id": TEAM, "alias": "team", "roles": [{"name": "Dev"}]}).status_code
        == 201
    )
    admin = api("GET", "/audit", params={"action": "account.create"}).json()["items"][0]["actor"]
    page = api("GET", "/history/versions").json()
    assert [(v["number"], v["actor"], v["via"]) for v in page["items"]] == [
        (2, admin, "api"),
        (1, "config-file", "config-sync"),
    ]
    assert page["next_cursor"] is None
    api = http()  # the broker started again on the same database and file: the sync changes nothing
    assert [v["number"] for v in api("GET", "/history/versions").json()["items"]] == [2, 1]
    one = api("GET", "/history/versions/1").json()
    assert (
        one["document"]["accounts"][0]["id"] == CORE
        and one["document"]["accounts"][0]["roles"][0]["name"] == "Admin"
    )
    assert one["diff"]["mappings"]["created"][0]["label"] == f'mapping "core-admins" -> {CORE}/Admin'
    paged = api("GET", "/history/versions", params={"limit": 1}).json()
    assert paged["next_cursor"] == 2
    assert api("GET", "/history/versions", params={"cursor": 2}).json()["items"][0]["number"] == 1


def test_http_restore_is_a_dry_run_then_an_apply_with_its_plan_hash(http):
    api = http()
    api("POST", "/accounts", json={"id": TEAM, "alias": "team", "roles": [{"name": "Dev"}]})
    api("POST", "/mappings", json={"group": "devs", "account": "team", "role": "Dev"})
    wanted = api("GET", "/history/versions/3/document", params={"format": "json"}).json()
    mapping_id = api("GET", "/mappings", params={"group": "devs"}).json()["items"][0]["id"]
    api("PATCH", f"/mappings/{mapping_id}", json={"console": False})
    api("POST", "/mappings", json={"group": "extra", "account": "team", "role": "Dev"})
    d = api("GET", "/history/diff", params={"from": 3, "to": 5}).json()
    assert d["diff"]["mappings"]["updated"][0]["changes"] == {"console": {"before": True, "after": False}}

    dry = api("POST", "/history/versions/3/restore").json()
    assert (dry["applied"], dry["changes"], dry["deletes"]) == (False, 2, 1)
    text = api("POST", "/history/versions/3/restore", params={"format": "text"}).text
    assert '- mapping "extra" -> 444455556666/Dev' in text and "~ mapping" in text
    stale = api(
        "POST",
        "/history/versions/3/restore",
        params={"apply": "true", "plan_hash": "0" * 64, "allow_deletes": "true"},
    )
    assert (stale.status_code, stale.json()["error"]["code"]) == (409, "conflict")
    no_deletes = api(
        "POST", "/history/versions/3/restore", params={"apply": "true", "plan_hash": dry["plan_hash"]}
    )
    assert (no_deletes.status_code, no_deletes.json()["error"]["code"]) == (409, "deletes_not_allowed")
    assert len(api("GET", "/history/versions").json()["items"]) == 5  # refused applies wrote nothing
    done = api(
        "POST",
        "/history/versions/3/restore",
        params={"apply": "true", "plan_hash": dry["plan_hash"], "allow_deletes": "true"},
    )
    assert done.status_code == 200 and done.json()["applied"] is True
    assert versions.canonical(api("GET", "/export", params={"format": "json"}).json()) == wanted
    latest = api("GET", "/history/versions", params={"limit": 1}).json()["items"][0]
    assert (latest["number"], latest["via"], latest["details"]) == (6, "restore", {"restored_from": 3})


def test_http_bad_input_is_refused_with_a_stable_code(http):
    api = http()
    api("POST", "/accounts", json={"id": TEAM, "roles": [{"name": "Dev"}]})
    api("DELETE", f"/accounts/{TEAM}/roles/Dev")
    api("DELETE", f"/accounts/{TEAM}")
    refused = api("POST", "/history/versions/2/restore")
    assert refused.status_code == 409
    body = refused.json()["error"]
    assert body["details"][0]["value"] == TEAM
    assert body["code"] == "restore_account_removed" and f"account {TEAM}" in body["message"]
    assert api("GET", "/history/versions/99").json()["error"]["code"] == "not_found"
    assert api("GET", "/history/diff", params={"from": 1, "to": 99}).status_code == 404
    assert api("GET", "/history/versions/0").status_code == 422
    assert api("GET", "/history/versions").status_code == 200  # still serving


# ---- the command line ----


def test_cli_lists_shows_diffs_and_restores(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from broker.app import open_store
    from broker.cli.server import app as cli
    from broker.config import load_config

    path = tmp_path / "broker.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{tmp_path / 'b.db'}", "auto_migrate": True},
                "mapping": HTTP_MAPPING,
            }
        )
    )
    engine, store = open_store(
        load_config(path)
    )  # the start: migrated, the file's mapping synced (version 1)
    store.create_account(AccountSpec(id=TEAM, alias="team", roles=[RoleSpec(name="Dev")]), ALICE)
    engine.dispose()

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["history", *args, "--config", str(path)])

    listed = run("list")
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines()[0].split()[2:4] == ["alice", "(api)"]
    assert "config-file  (config-sync)" in listed.output.splitlines()[1]
    shown = run("show", "2")
    assert f"+ account {TEAM} (team)" in shown.output and f"+ role {TEAM}/Dev" in shown.output
    assert run("diff", "2", "1").output.splitlines()[1:] == [f"- account {TEAM} (team)", f"- role {TEAM}/Dev"]
    dry = run("restore", "1")
    assert "dry run, nothing changed" in dry.output and f"- account {TEAM} (team)" in dry.output
    refused = run("restore", "1", "--apply")
    assert refused.exit_code == 1 and "deletes_not_allowed" in refused.output
    done = run("restore", "1", "--apply", "--allow-deletes", "--actor", "carol")
    assert done.exit_code == 0 and "(applied)" in done.output
    assert "carol  (restore)" in run("list", "-n", "1").output
    missing = run("show", "9")
    assert missing.exit_code == 1 and "not_found" in missing.output


def test_ou_and_tag_targeted_mappings_are_versioned_and_restored(store):
    """A mapping that targets an OU or a tag is part of the mapping: its writes are versions, a
    version's document has it under ``mappings:`` (``accounts:``) as the export does, and a
    restore brings it back."""
    store.sync_config(FILE)
    ou = MappingSpec.model_validate(
        {"group": "platform", "accounts": {"ou": "ou-ab12-cdef3456"}, "role": "Admin"}
    )
    tag = MappingSpec.model_validate(
        {"group": "auditors", "accounts": {"tag": {"env": "prod"}}, "role": "ReadOnly"}
    )
    created = store.create_org_mapping(ou, ALICE)
    store.create_org_mapping(tag, ALICE)
    two = numbers(store)[0]
    assert store.version_document(two) == exported(store)
    assert sum(1 for m in exported(store)["mappings"] if m.get("accounts")) == 2

    store.patch_org_mapping(created["id"], {"session_duration": 1800}, BOB)
    (changed,) = store.get_version(numbers(store)[0])["diff"]["org_mappings"]["updated"]
    assert changed["changes"]["session_duration"] == {"before": None, "after": 1800}
    store.delete_org_mapping(store.list_org_mappings(group="auditors")[0]["id"], BOB)
    assert numbers(store)[:3] == [two + 2, two + 1, two]
    assert store.get_version(two + 2)["actor"] == "bob"

    store.apply_restore(two, AuditContext(actor="carol"))
    assert exported(store) == store.version_document(two)
    assert sorted((m["group"], m["role"]) for m in store.list_org_mappings()) == [
        ("auditors", "ReadOnly"),
        ("platform", "Admin"),
    ]
