"""The start-up config sync touches only what the file declares (conformance: SQLite and PostgreSQL).

What an API user or an import made stays as it was, whatever the file says and however often the
broker starts; a file edit that drops something API objects use keeps it, handed over to the API.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from broker.audit import AuditContext, AuditFilter
from broker.config import DatabaseConfig
from broker.db.session import make_engine, migrate
from broker.db.store import SqlMappingStore
from broker.errors import ConfigSyncFailed, ReadOnly
from broker.mapping.model import AccountSpec, MappingDocument, MappingSpec, RoleSpec, RuleSpec

CTX = AuditContext(actor="admin:test", request_id="req-1", source_ip="127.0.0.1")
CORE, TEAM = "111122223333", "444455556666"

FILE: dict[str, Any] = {
    "accounts": [
        {"id": CORE, "alias": "core", "roles": [{"name": "Admin", "max_session_duration": 7200}, {"name": "ReadOnly"}]}
    ],
    "mappings": [{"group": "core-admins", "account": "core", "role": "Admin"}],
    "rules": [{"name": "adfs", "pattern": r"^AWS-(?P<account>\d{12})-(?P<role>[\w+=,.@-]+)$"}],
}


def doc(data: dict[str, Any]) -> MappingDocument:
    return MappingDocument.model_validate(data)


def api_objects(store: SqlMappingStore) -> None:
    """What an administrator makes through the API beside the file's objects."""
    store.create_account(AccountSpec.model_validate({"id": TEAM, "alias": "team", "roles": [{"name": "Dev"}]}), CTX)
    store.create_role(CORE, RoleSpec(name="Billing"), CTX)  # an API role under a config account
    store.create_mapping(MappingSpec(group="finance", account="core", role="Billing"), CTX)
    store.create_mapping(MappingSpec(group="ops", account="core", role="ReadOnly"), CTX)  # on a config role
    store.create_mapping(MappingSpec(group="devs", account="team", role="Dev"), CTX)
    store.create_rule(RuleSpec(name="team-rule", pattern=r"^team-(?P<account>\d{12})-(?P<role>\w+)$"), CTX)


def whole_mapping(store: SqlMappingStore) -> dict[str, Any]:
    """Every object with its id, source and timestamps: what must not change across starts."""
    accounts = store.list_accounts()
    return {
        "accounts": accounts,
        "roles": [r for a in accounts for r in store.list_roles(a["id"])],
        "mappings": store.list_mappings(limit=1000),
        "rules": store.list_rules(),
    }


def sources(view: dict[str, Any]) -> dict[str, str]:
    out = {f"account {a['id']}": a["source"] for a in view["accounts"]}
    out |= {f"role {r['account']}/{r['name']}": r["source"] for r in view["roles"]}
    out |= {f"mapping {m['group']}": m["source"] for m in view["mappings"]}
    return out | {f"rule {r['name']}": r["source"] for r in view["rules"]}


def test_api_objects_survive_any_number_of_syncs_unchanged(store):
    store.sync_config(doc(FILE))
    api_objects(store)
    before = whole_mapping(store)
    for _ in range(3):
        plan = store.sync_config(doc(FILE))
        assert plan.changes == 0, plan.to_dict()
    assert whole_mapping(store) == before
    assert sources(before) == {
        f"account {CORE}": "config",
        f"account {TEAM}": "api",
        f"role {CORE}/Admin": "config",
        f"role {CORE}/ReadOnly": "config",
        f"role {CORE}/Billing": "api",
        f"role {TEAM}/Dev": "api",
        "mapping core-admins": "config",
        "mapping finance": "api",
        "mapping ops": "api",
        "mapping devs": "api",
        "rule adfs": "config",
        "rule team-rule": "api",
    }
    # nothing but the first sync wrote as the config file
    events = store.audit_events(AuditFilter(actor="config-file"), limit=100, before_id=None)
    assert {e["target_id"] for e in events} == {CORE, f"{CORE}/Admin", f"{CORE}/ReadOnly", "adfs", "1"}


def test_imported_objects_stay_api_objects_across_syncs(store):
    store.sync_config(doc(FILE))
    imported = {
        "accounts": [{"id": TEAM, "alias": "team", "roles": [{"name": "Dev"}]}],
        "mappings": [{"group": "devs", "account": "team", "role": "Dev"}, {"group": "ops", "account": "core", "role": "Admin"}],
        "rules": [],
    }
    store.apply_import(doc(imported), CTX)
    before = whole_mapping(store)
    store.sync_config(doc(FILE))
    store.sync_config(doc(FILE))
    assert whole_mapping(store) == before
    assert store.plan_import(doc(imported)).changes == 0  # the import's objects are still the import's


def test_a_declaration_the_api_already_owns_is_left_to_the_api(store):
    """The file names an account the API created: it is not taken over (nor changed, nor later deleted)."""
    store.create_account(AccountSpec.model_validate({"id": CORE, "alias": "core", "owner": "team-a"}), CTX)
    plan = store.sync_config(doc(FILE))
    account = store.get_account(CORE)
    assert account["source"] == "api" and account["owner"] == "team-a"
    assert any(f"account {CORE}" in n and "created through the API" in n for n in plan.notices)
    # the roles the file declares under it are the file's
    assert {r["name"]: r["source"] for r in store.list_roles(CORE)} == {"Admin": "config", "ReadOnly": "config"}
    # and dropping the account from the file never deletes the API's account
    store.sync_config(doc({"accounts": [], "mappings": [], "rules": []}))
    assert store.get_account(CORE)["source"] == "api" and store.list_roles(CORE) == []


def test_dropping_a_role_api_mappings_use_keeps_it_for_the_api(store):
    store.sync_config(doc(FILE))
    api_objects(store)
    ops = store.list_mappings(group="ops", limit=1)[0]
    edited = {**FILE, "accounts": [{**FILE["accounts"][0], "roles": [{"name": "Admin", "max_session_duration": 7200}]}]}
    plan = store.sync_config(doc(edited))
    role = store.get_role(CORE, "ReadOnly")
    assert role["source"] == "api"
    assert plan.roles.release == [{"key": f"role {CORE}/readonly", "held_by": [f"mapping {ops['id']} ('ops' -> {CORE}/ReadOnly, API)"]}]
    assert any(f"mapping {ops['id']}" in n and "now managed through the API" in n for n in plan.notices)
    [event] = store.audit_events(AuditFilter(action="role.release"), limit=10, before_id=None)
    assert event["actor"] == "config-file" and event["target_id"] == f"{CORE}/ReadOnly"
    assert event["details"]["held_by"] == [f"mapping {ops['id']} ('ops' -> {CORE}/ReadOnly, API)"]
    # the API can now manage it; the mapping that held it is untouched
    assert store.get_mapping(ops["id"]) == ops
    store.update_role(CORE, "ReadOnly", RoleSpec(name="ReadOnly", max_session_duration=3600), CTX)


def test_dropping_an_account_api_roles_use_keeps_it_and_deletes_the_rest(store):
    store.sync_config(doc(FILE))
    store.create_role(CORE, RoleSpec(name="Billing"), CTX)
    plan = store.sync_config(doc({"accounts": [], "mappings": [], "rules": []}))
    assert store.get_account(CORE)["source"] == "api"
    assert [r["name"] for r in store.list_roles(CORE)] == ["Billing"]  # the file's roles are gone
    assert len(plan.roles.delete) == 2 and len(plan.mappings.delete) == 1 and len(plan.rules.delete) == 1
    assert plan.accounts.release[0]["held_by"] == [f"role {CORE}/Billing (API)"]
    # declared again, the account stays the API's; the roles and mapping the file declares are the file's
    plan = store.sync_config(doc(FILE))
    assert store.get_account(CORE)["source"] == "api" and any("created through the API" in n for n in plan.notices)
    with pytest.raises(ReadOnly):
        store.delete_mapping(store.list_mappings(group="core-admins", limit=1)[0]["id"], CTX)


def test_a_sync_that_cannot_apply_names_every_object_and_changes_nothing(store):
    store.create_account(AccountSpec.model_validate({"id": TEAM, "alias": "core"}), CTX)
    store.create_account(AccountSpec.model_validate({"id": "999988887777", "alias": "edge"}), CTX)
    before = whole_mapping(store)
    clash = {
        **FILE,
        "accounts": [*FILE["accounts"], {"id": "555566667777", "alias": "edge"}],
    }
    with pytest.raises(ConfigSyncFailed) as failed:
        store.sync_config(doc(clash))
    assert sorted(failed.value.details) == [
        f"alias 'core' would name two accounts: account {CORE} (configuration file) and account {TEAM} (API)",
        "alias 'edge' would name two accounts: account 555566667777 (configuration file) and account 999988887777 (API)",
    ]
    assert whole_mapping(store) == before
    with pytest.raises(ConfigSyncFailed):
        store.plan_config_sync(doc(clash))


def test_plan_config_sync_writes_nothing(store):
    store.sync_config(doc(FILE))
    api_objects(store)
    before = whole_mapping(store)
    plan = store.plan_config_sync(doc({**FILE, "mappings": [], "accounts": [{**FILE["accounts"][0], "roles": []}]}))
    assert plan.roles.release and plan.notices and not plan.applied
    assert whole_mapping(store) == before


def test_import_plan_names_the_account_of_each_role(store):
    plan = store.plan_import(doc({"accounts": [{"id": TEAM, "roles": [{"name": "Dev"}]}], "mappings": [], "rules": []}))
    assert plan.roles.create == [{"account": TEAM, **RoleSpec(name="Dev").model_dump(mode="json")}]


def test_syncs_starting_together_run_one_after_the_other(database_url):
    """Workers and replicas start at once: each syncs under the lock; none fails, none duplicates."""
    engines = [make_engine(DatabaseConfig(url=database_url)) for _ in range(4)]
    migrate(engines[0])
    results: list[Any] = []

    def start(engine: Any) -> None:
        try:
            results.append(SqlMappingStore(engine).sync_config(doc(FILE)).changes)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            results.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert sorted(results, key=str) == [0, 0, 0, 5], results  # one sync did the work, the others found it done
        view = whole_mapping(SqlMappingStore(engines[0]))
        assert len(view["accounts"]) == 1 and len(view["roles"]) == 2 and len(view["mappings"]) == 1
    finally:
        for e in engines:
            e.dispose()


def test_a_worker_that_cannot_start_stops_the_server_instead_of_respawning(tmp_path, monkeypatch, capsys):
    """uvicorn respawns a worker that dies, except one exiting with its start-up failure code (3)."""
    import yaml

    from broker.app import UVICORN_STARTUP_FAILURE, app_from_env

    db = f"sqlite:///{tmp_path / 'b.db'}"
    engine = make_engine(DatabaseConfig(url=db))
    migrate(engine)
    SqlMappingStore(engine).create_account(AccountSpec.model_validate({"id": TEAM, "alias": "core"}), CTX)
    engine.dispose()
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": db}, "mapping": FILE}))
    monkeypatch.setenv("BROKER_CONFIG", str(path))
    monkeypatch.delenv("BROKER_MAPPING_SYNCED", raising=False)
    with pytest.raises(SystemExit) as exited:
        app_from_env()
    assert exited.value.code == UVICORN_STARTUP_FAILURE == 3
    err = capsys.readouterr().err
    assert f"alias 'core' would name two accounts: account {CORE} (configuration file) and account {TEAM} (API)" in err


def test_an_alias_can_move_between_accounts_in_one_sync_or_import(store):
    """Renamed, taken over by a new account, swapped: the plan applies as the dry run said."""
    other = "999988887777"
    store.sync_config(doc({"accounts": [{"id": CORE, "alias": "prod"}]}))
    moved = doc({"accounts": [{"id": CORE, "alias": "prod-old"}, {"id": TEAM, "alias": "prod"}]})
    assert store.plan_config_sync(moved).changes == 2
    store.sync_config(moved)
    assert (store.get_account("prod")["id"], store.get_account("prod-old")["id"]) == (TEAM, CORE)
    swapped = doc({"accounts": [{"id": CORE, "alias": "prod"}, {"id": TEAM, "alias": "prod-old"}]})
    store.sync_config(swapped)
    assert (store.get_account("prod")["id"], store.get_account("prod-old")["id"]) == (CORE, TEAM)
    # the same through an import: an API account dropped, its alias given to a new one
    store.apply_import(doc({"accounts": [{"id": other, "alias": "edge"}]}), CTX)
    store.apply_import(doc({"accounts": [{"id": "555566667777", "alias": "edge"}]}), CTX)
    assert store.get_account("edge")["id"] == "555566667777"
    [deleted] = store.audit_events(AuditFilter(action="account.delete"), limit=10, before_id=None)
    assert deleted["before"]["alias"] == "edge"  # the audit shows the account as it was


def test_a_mapping_naming_an_alias_the_document_renamed_is_refused_at_once(store):
    """The document's alias is the account's only alias: a mapping using the old one would dangle
    after the apply, so the first sync refuses it (not the second)."""
    store.sync_config(doc({"accounts": [{"id": CORE, "alias": "prod", "roles": [{"name": "Admin"}]}],
                           "mappings": [{"group": "g", "account": "prod", "role": "Admin"}]}))
    renamed = doc({"accounts": [{"id": CORE, "alias": "production", "roles": [{"name": "Admin"}]}],
                   "mappings": [{"group": "g", "account": "prod", "role": "Admin"}]})
    with pytest.raises(ConfigSyncFailed) as failed:
        store.sync_config(renamed)
    assert failed.value.details == ["mappings[0] (group 'g'): unknown account 'prod'"]


def test_the_files_own_mapping_never_keeps_what_the_file_dropped(store):
    """Only API objects hold a dropped role or account; the file's own mapping to it is a dangling
    reference, reported, not a reason to hand the role to the API."""
    store.sync_config(doc(FILE))
    with pytest.raises(ConfigSyncFailed) as failed:
        store.sync_config(doc({"mappings": FILE["mappings"]}))
    assert any("mapping 'core-admins'" in p and "would be removed" in p for p in failed.value.details), failed.value.details
    assert store.get_account(CORE)["source"] == "config"


def test_workers_restarted_after_a_file_edit_sync_it(tmp_path, monkeypatch):
    """`broker serve` syncs once for its workers; a worker started later (SIGHUP, a respawn) whose
    file says something else syncs again instead of serving the old mapping."""
    import yaml

    from broker.app import MAPPING_SYNCED_ENV, app_from_env, prepare_start
    from broker.config import load_config

    db = f"sqlite:///{tmp_path / 'b.db'}"
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": db, "auto_migrate": True}, "mapping": FILE}))
    monkeypatch.setenv("BROKER_CONFIG", str(path))
    monkeypatch.setenv(MAPPING_SYNCED_ENV, "")  # restored (removed) after the test; prepare_start sets it
    prepare_start(load_config(path))
    app = app_from_env()  # the same file: nothing to sync again
    app.state.services.engine.dispose()
    revoked = {**FILE, "mappings": []}
    path.write_text(yaml.safe_dump({"database": {"url": db, "auto_migrate": True}, "mapping": revoked}))
    app = app_from_env()  # a worker restarted after the edit
    try:
        assert app.state.services.store.list_mappings(limit=10) == []
    finally:
        app.state.services.engine.dispose()
