"""The reconciler on its own: a pure function from (document, stored objects as values) to a plan.

No database: what is stored is written out as ``Stored`` values; the database side (loading the
rows, applying the steps in one transaction) is tests/test_config_sync.py's and test_store.py's.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any

from broker.db import reconcile
from broker.db.reconcile import API, CONFIG, Current, Stored, plan
from broker.domain import Source
from broker.mapping.model import AccountSpec, MappingDocument, MappingSpec, RoleSpec, RuleSpec

CORE, TEAM, NEW = "111122223333", "444455556666", "777788889999"


def doc(data: dict[str, Any]) -> MappingDocument:
    return MappingDocument.model_validate(data)


def account(id_: str, alias: str | None = None, source: Source = CONFIG) -> Stored[AccountSpec]:
    return Stored(AccountSpec(id=id_, alias=alias), source)


def role(name: str, source: Source = CONFIG, **kw: Any) -> Stored[RoleSpec]:
    return Stored(RoleSpec(name=name, **kw), source)


def mapping(id_: int, group: str, account_id: str, role_name: str, source: Source) -> Stored[MappingSpec]:
    return Stored(MappingSpec(group=group, account=account_id, role=role_name), source, id_)


def ops(rec: reconcile.Reconciliation) -> list[tuple[str, str, Any]]:
    return [(st.kind, st.op, st.key) for st in rec.steps]


def test_the_reconciler_imports_no_database() -> None:
    tree = ast.parse(inspect.getsource(reconcile))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not {m for m in imported if m and (m.startswith(("sqlalchemy", "broker.db")))}


def test_a_first_sync_creates_what_the_file_declares() -> None:
    rec = plan(Current(), doc({
        "accounts": [{"id": CORE, "alias": "core", "roles": [{"name": "Admin"}]}],
        "mappings": [{"group": "Core-Admins", "account": "core", "role": "admin"}],
        "rules": [{"name": "adfs", "pattern": r"^AWS-(?P<account>\d{12})-(?P<role>\w+)$"}],
    }), managed=CONFIG)
    assert rec.problems == []
    assert ops(rec) == [
        ("accounts", "create", CORE),
        ("roles", "create", (CORE, "admin")),
        ("mappings", "create", ("core-admins", CORE, "admin")),
        ("rules", "create", "adfs"),
    ]
    # the mapping names the account by id and the role in the role's own spelling
    (m,) = rec.of("mappings", "create")
    assert (m.spec.account, m.spec.role) == (CORE, "Admin")
    assert rec.plan.changes == 4 and rec.plan.roles.create == [{"account": CORE, "name": "Admin", "path": "/",
                                                               "max_session_duration": 3600, "description": "",
                                                               "managed_policy_arns": []}]


def test_the_sync_never_takes_an_api_object_over() -> None:
    current = Current(accounts={TEAM: account(TEAM, "team", API)}, roles={(TEAM, "dev"): role("Dev", API)})
    rec = plan(current, doc({"accounts": [{"id": TEAM, "alias": "team", "description": "the file's",
                                           "roles": [{"name": "Dev"}]}]}), managed=CONFIG)
    assert rec.steps == [] and rec.problems == []
    assert rec.plan.accounts.unchanged == 1 and rec.plan.roles.unchanged == 1
    assert rec.plan.notices == [
        (f"account {TEAM} (API) is declared in the configuration file but was created through the API: it stays as "
        "the API made it, and the file's version is not applied (delete it through the API to let the file manage it)"),
        (f"role {TEAM}/Dev (API) is declared in the configuration file but was created through the API: it stays as "
        "the API made it (delete it through the API to let the file manage it)"),
    ]


def test_an_import_that_would_change_a_config_object_is_a_conflict() -> None:
    current = Current(accounts={CORE: account(CORE, "core")}, roles={(CORE, "admin"): role("Admin")})
    rec = plan(current, doc({"accounts": [{"id": CORE, "alias": "core", "roles": [{"name": "Admin",
                                                                                   "max_session_duration": 7200}]}]}),
               managed=API)
    assert rec.steps == []
    assert rec.plan.conflicts == [
        f"role {CORE}/admin is declared in the configuration file and differs from the document"
    ]


def test_a_dropped_role_api_mappings_use_is_released_naming_its_holders() -> None:
    current = Current(
        accounts={CORE: account(CORE, "core")},
        roles={(CORE, "admin"): role("Admin"), (CORE, "readonly"): role("ReadOnly")},
        mappings={("ops", CORE, "readonly"): mapping(7, "ops", CORE, "ReadOnly", API)},
    )
    rec = plan(current, doc({"accounts": [{"id": CORE, "alias": "core", "roles": [{"name": "Admin"}]}]}),
               managed=CONFIG)
    assert rec.problems == []
    (release,) = rec.of("roles", "release")
    assert release.key == (CORE, "readonly") and release.before == current.roles[(CORE, "readonly")].spec
    assert release.held_by == (f"mapping 7 ('ops' -> {CORE}/ReadOnly, API)",)
    assert rec.plan.roles.release == [{"key": f"role {CORE}/readonly", "held_by": list(release.held_by)}]
    assert rec.plan.notices == [
        (f"role {CORE}/ReadOnly (configuration file) is no longer declared in the configuration file, but "
        f"mapping 7 ('ops' -> {CORE}/ReadOnly, API) still uses it: it is kept, now managed through the API")
    ]
    assert rec.of("roles", "delete") == []


def test_a_dropped_account_is_released_for_its_api_roles_and_the_rest_deleted() -> None:
    current = Current(
        accounts={CORE: account(CORE, "core")},
        roles={(CORE, "admin"): role("Admin"), (CORE, "billing"): role("Billing", API)},
        rules={"adfs": Stored(RuleSpec(name="adfs", pattern=r"^(?P<account>\d{12})-(?P<role>\w+)$"), CONFIG)},
    )
    rec = plan(current, doc({}), managed=CONFIG)
    assert rec.problems == []
    assert ops(rec) == [("rules", "delete", "adfs"), ("roles", "delete", (CORE, "admin")),
                        ("accounts", "release", CORE)]
    assert rec.of("accounts", "release")[0].held_by == (f"role {CORE}/Billing (API)",)


def test_an_import_never_releases_it_deletes_and_reports_what_would_dangle() -> None:
    current = Current(
        accounts={TEAM: account(TEAM, "team", API)},
        roles={(TEAM, "dev"): role("Dev", API)},
        mappings={("devs", TEAM, "dev"): mapping(3, "devs", TEAM, "Dev", API)},
    )
    rec = plan(current, doc({"mappings": [{"group": "devs", "account": TEAM, "role": "Dev"}]}), managed=API)
    assert rec.of("roles", "release") == [] and [st.key for st in rec.of("roles", "delete")] == [(TEAM, "dev")]
    assert rec.problems == [
        f"mapping 'devs' -> {TEAM}/dev (API) needs role {TEAM}/dev, which is not registered or would be removed"
    ]


def test_an_alias_moves_between_accounts_in_one_plan() -> None:
    current = Current(accounts={CORE: account(CORE, "core")})
    rec = plan(current, doc({"accounts": [{"id": CORE, "alias": "old-core"}, {"id": NEW, "alias": "core"}],
                             "mappings": []}), managed=CONFIG)
    assert rec.problems == []
    assert ops(rec) == [("accounts", "update", CORE), ("accounts", "create", NEW)]
    (update,) = rec.of("accounts", "update")
    assert (update.before.alias, update.spec.alias) == ("core", "old-core")


def test_a_declared_account_answers_to_the_documents_alias_only() -> None:
    current = Current(accounts={CORE: account(CORE, "core")}, roles={(CORE, "admin"): role("Admin")})
    rec = plan(current, doc({"accounts": [{"id": CORE, "alias": "renamed", "roles": [{"name": "Admin"}]}],
                             "mappings": [{"group": "g", "account": "core", "role": "Admin"}]}), managed=CONFIG)
    assert rec.problems == ["mappings[0] (group 'g'): unknown account 'core'"]


def test_dangling_references_are_named_each() -> None:
    rec = plan(Current(), doc({"accounts": [{"id": CORE, "roles": [{"name": "Admin"}]}],
                               "mappings": [{"group": "g", "account": TEAM, "role": "Admin"},
                                            {"group": "h", "account": CORE, "role": "Nobody"}]}), managed=CONFIG)
    assert rec.problems == [
        f"mappings[0] (group 'g'): unknown account '{TEAM}'",
        (f"mapping 'h' -> {CORE}/nobody (configuration file) needs role {CORE}/nobody, "
        "which is not registered or would be removed"),
    ]


def test_an_alias_clash_with_an_api_account_names_both() -> None:
    current = Current(accounts={TEAM: account(TEAM, "shared", API)})
    rec = plan(current, doc({"accounts": [{"id": CORE, "alias": "shared"}]}), managed=CONFIG)
    assert rec.problems == [
        f"alias 'shared' would name two accounts: account {CORE} (configuration file) and account {TEAM} (API)"
    ]


def test_duplicates_in_the_document_are_problems() -> None:
    rec = plan(Current(), doc({"accounts": [{"id": CORE, "alias": "dup"}, {"id": TEAM, "alias": "dup"}],
                               "rules": []}), managed=API)
    assert f"alias 'dup' is used by {CORE} and {TEAM}" in rec.problems


def test_an_unchanged_document_plans_nothing() -> None:
    current = Current(accounts={CORE: account(CORE, "core")}, roles={(CORE, "admin"): role("Admin")})
    rec = plan(current, doc({"accounts": [{"id": CORE, "alias": "core", "roles": [{"name": "Admin"}]}]}),
               managed=CONFIG)
    assert rec.steps == [] and rec.plan.changes == 0 and rec.plan.notices == []
    assert (rec.plan.accounts.unchanged, rec.plan.roles.unchanged) == (1, 1)
