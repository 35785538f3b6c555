"""The mapping store conformance suite: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from broker.audit import AuditContext, AuditFilter
from broker.db.models import AuditEvent
from broker.errors import (
    Conflict,
    Duplicate,
    InUse,
    InvalidImport,
    NotFound,
    ReadOnly,
    UnknownAccount,
    UnknownRole,
)
from broker.mapping.model import AccountFields, AccountSpec, MappingDocument, MappingSpec, RoleSpec, RuleSpec
from broker.mapping.rules import resolve

CTX = AuditContext(actor="admin:test", request_id="req-1", source_ip="127.0.0.1")
PROD, DEV = "111122223333", "444455556666"


def account(id_: str = PROD, alias: str | None = "prod", **kw) -> AccountSpec:
    return AccountSpec.model_validate({"id": id_, "alias": alias, **kw})


def seed(store) -> None:
    store.create_account(account(roles=[{"name": "Admin", "max_session_duration": 43200}, {"name": "ReadOnly"}]), CTX)
    store.create_account(account(DEV, "dev", federation={"path": "web_identity", "audience": "sts.amazonaws.com"}), CTX)
    store.create_role(DEV, RoleSpec(name="Developer", path="/teams/", max_session_duration=7200), CTX)


def test_account_round_trip_by_id_and_alias(store):
    seed(store)
    by_id = store.get_account(PROD)
    by_alias = store.get_account("PROD")
    assert by_id == by_alias
    assert by_id["alias"] == "prod" and by_id["source"] == "api"
    assert by_id["federation"] == {"path": "saml", "saml_provider": "broker", "assertion_encryption": None}
    assert [a["id"] for a in store.list_accounts()] == [PROD, DEV]
    roles = store.list_roles("dev")
    assert roles[0]["arn"] == f"arn:aws:iam::{DEV}:role/teams/Developer"


def test_duplicates_are_refused(store):
    seed(store)
    with pytest.raises(Duplicate):
        store.create_account(account(), CTX)
    with pytest.raises(Duplicate):
        store.create_account(account("999999999999", "prod"), CTX)  # alias taken
    with pytest.raises(Duplicate):
        store.create_role(PROD, RoleSpec(name="admin"), CTX)  # IAM role names ignore case
    store.create_mapping(MappingSpec(group="Ops", account="prod", role="Admin"), CTX)
    with pytest.raises(Duplicate):
        store.create_mapping(MappingSpec(group="OPS", account=PROD, role="admin"), CTX)


def test_unknown_references(store):
    seed(store)
    with pytest.raises(UnknownAccount):
        store.create_mapping(MappingSpec(group="g", account="nosuch", role="Admin"), CTX)
    with pytest.raises(UnknownRole):
        store.create_mapping(MappingSpec(group="g", account="prod", role="Nope"), CTX)
    with pytest.raises(UnknownAccount):
        store.create_role("000000000000", RoleSpec(name="X"), CTX)
    with pytest.raises(NotFound):
        store.get_mapping(424242)


def test_delete_in_use_is_refused_then_allowed(store):
    seed(store)
    m = store.create_mapping(MappingSpec(group="Ops", account="prod", role="Admin"), CTX)
    with pytest.raises(InUse):
        store.delete_role(PROD, "Admin", CTX)
    with pytest.raises(InUse):
        store.delete_account(PROD, CTX)
    store.delete_mapping(m["id"], CTX)
    store.delete_role(PROD, "Admin", CTX)
    store.delete_role(PROD, "ReadOnly", CTX)
    store.delete_account(PROD, CTX)
    with pytest.raises(NotFound):
        store.get_account(PROD)


def test_updates_keep_identity_and_are_audited(store):
    seed(store)
    fields = AccountFields(alias="production", environment="prod", owner="sre")
    after = store.update_account(PROD, fields, CTX)
    assert after["alias"] == "production" and after["owner"] == "sre"
    assert store.get_account("production")["id"] == PROD
    events = store.audit_events(AuditFilter(action="account.update"), limit=10, before_id=None)
    assert events[0]["before"]["alias"] == "prod" and events[0]["after"]["alias"] == "production"
    assert events[0]["actor"] == "admin:test" and events[0]["request_id"] == "req-1"


def test_every_write_is_audited_with_before_and_after(store):
    seed(store)
    m = store.create_mapping(MappingSpec(group="Ops", account="prod", role="Admin"), CTX)
    store.update_mapping(m["id"], MappingSpec(group="Ops", account="prod", role="ReadOnly", cli=False), CTX)
    store.create_rule(RuleSpec(name="adfs", pattern=r"^AWS-(?P<account>\d{12})-(?P<role>\w+)$"), CTX)
    store.delete_rule("adfs", CTX)
    actions = [e["action"] for e in store.audit_events(AuditFilter(), limit=100, before_id=None)]
    assert actions == [
        "rule.delete",
        "rule.create",
        "mapping.update",
        "mapping.create",
        "role.create",
        "account.create",
        "role.create",
        "role.create",
        "account.create",
    ]
    upd = store.audit_events(AuditFilter(action="mapping.update"), limit=1, before_id=None)[0]
    assert upd["before"]["role"] == "Admin" and upd["after"]["role"] == "ReadOnly" and upd["after"]["cli"] is False


def test_audit_paging_and_filters(store):
    seed(store)
    for i in range(7):
        store.create_mapping(MappingSpec(group=f"g{i}", account="prod", role="Admin"), CTX)
    page1 = store.audit_events(AuditFilter(action="mapping."), limit=3, before_id=None)
    page2 = store.audit_events(AuditFilter(action="mapping."), limit=3, before_id=page1[-1]["id"])
    page3 = store.audit_events(AuditFilter(action="mapping."), limit=3, before_id=page2[-1]["id"])
    ids = [e["id"] for e in page1 + page2 + page3]
    assert len(ids) == 7 == len(set(ids)) and ids == sorted(ids, reverse=True)
    assert store.audit_events(AuditFilter(actor="admin:nobody"), limit=10, before_id=None) == []
    assert len(store.audit_events(AuditFilter(target_type="account"), limit=10, before_id=None)) == 2


def test_failed_write_changes_nothing(store, engine):
    seed(store)
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        before = s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    with pytest.raises(Duplicate):
        store.create_account(account(roles=[{"name": "X"}]), CTX)
    with Session(engine) as s:
        assert s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) == before


def test_snapshot_for_groups_resolves_like_the_full_snapshot(store):
    seed(store)
    store.create_mapping(MappingSpec(group="CN=Ops,OU=Groups,DC=corp", account="prod", role="Admin", session_duration=3600), CTX)
    store.create_mapping(MappingSpec(group="devs", account="dev", role="Developer"), CTX)
    store.create_rule(RuleSpec(name="adfs", pattern=r"^AWS-(?P<account>\d{12}|[a-z-]+)-(?P<role>[\w+=,.@-]+)$"), CTX)
    groups = ["ops", "AWS-dev-Developer", "AWS-prod-ReadOnly", "AWS-999999999999-Admin", "unrelated"]
    part = resolve(groups, store.snapshot_for(groups))
    full = resolve(groups, store.full_snapshot())
    assert part.grants == full.grants
    arns = {g.role_arn: g for g in part.grants}
    assert set(arns) == {
        f"arn:aws:iam::{PROD}:role/Admin",
        f"arn:aws:iam::{PROD}:role/ReadOnly",
        f"arn:aws:iam::{DEV}:role/teams/Developer",
    }
    assert arns[f"arn:aws:iam::{PROD}:role/Admin"].max_duration("cli") == 3600  # mapping cap below role max
    assert "unrelated" in part.unmatched and "AWS-999999999999-Admin" in part.unmatched
    assert any("999999999999" in n for n in part.notes)


def test_mapping_list_filters_and_pages(store):
    seed(store)
    for i in range(5):
        store.create_mapping(MappingSpec(group=f"team-{i}", account="prod", role="ReadOnly"), CTX)
    store.create_mapping(MappingSpec(group="devs", account="dev", role="Developer"), CTX)
    first = store.list_mappings(account="prod", limit=3)
    rest = store.list_mappings(account="prod", limit=3, after_id=first[-1]["id"])
    assert len(first) == 3 and len(rest) == 2
    assert [m["group"] for m in store.list_mappings(group="DEVS", limit=10)] == ["devs"]
    assert store.list_mappings(account="nosuch", limit=10) == []


DOC = {
    "accounts": [
        {"id": PROD, "alias": "prod", "roles": [{"name": "Admin", "max_session_duration": 43200}, {"name": "ReadOnly"}]},
        {"id": DEV, "alias": "dev", "federation": {"path": "web_identity"}, "roles": [{"name": "Developer"}]},
    ],
    "mappings": [
        {"group": "ops", "account": "prod", "role": "Admin"},
        {"group": "devs", "account": DEV, "role": "Developer"},
    ],
    "rules": [{"name": "adfs", "pattern": r"^AWS-(?P<account>\d{12})-(?P<role>\w+)$"}],
}


def test_import_dry_run_changes_nothing_then_apply(store):
    doc = MappingDocument.model_validate(DOC)
    plan = store.plan_import(doc)
    assert plan.changes == 2 + 3 + 2 + 1 and not plan.applied
    assert store.list_accounts() == []
    applied = store.apply_import(doc, CTX)
    assert applied.applied and applied.changes == plan.changes
    again = store.plan_import(doc)
    assert again.changes == 0 and again.mappings.unchanged == 2
    exported = store.export()
    assert store.plan_import(exported).changes == 0


def test_import_replaces_and_deletes_api_objects(store):
    store.apply_import(MappingDocument.model_validate(DOC), CTX)
    smaller = {**DOC, "mappings": [{"group": "ops", "account": "prod", "role": "ReadOnly"}], "rules": []}
    plan = store.apply_import(MappingDocument.model_validate(smaller), CTX)
    assert len(plan.mappings.create) == 1 and len(plan.mappings.delete) == 2 and len(plan.rules.delete) == 1
    assert [(m["group"], m["role"]) for m in store.list_mappings(limit=10)] == [("ops", "ReadOnly")]


def test_failed_import_changes_nothing(store):
    store.apply_import(MappingDocument.model_validate(DOC), CTX)
    before = store.export().model_dump()
    bad = {**DOC, "mappings": [*DOC["mappings"], {"group": "x", "account": "prod", "role": "Missing"}]}
    with pytest.raises(InvalidImport):
        store.apply_import(MappingDocument.model_validate(bad), CTX)
    assert store.export().model_dump() == before


def test_config_objects_are_read_only_and_imports_cannot_change_them(store):
    store.sync_config(MappingDocument.model_validate(DOC))
    m = store.list_mappings(group="ops", limit=1)[0]
    assert m["source"] == "config"
    with pytest.raises(ReadOnly):
        store.delete_mapping(m["id"], CTX)
    with pytest.raises(ReadOnly):
        store.update_account(PROD, AccountFields(alias="prod-two"), CTX)
    with pytest.raises(ReadOnly):
        store.delete_rule("adfs", CTX)
    # API objects can still hang off config accounts
    store.create_role(PROD, RoleSpec(name="Billing"), CTX)
    store.create_mapping(MappingSpec(group="finance", account="prod", role="Billing"), CTX)
    # an import that leaves config objects out does not delete them...
    plan = store.apply_import(MappingDocument.model_validate({"accounts": [], "mappings": [], "rules": []}), CTX)
    assert {d["group"] for d in plan.mappings.delete} == {"finance"}
    assert len(store.list_mappings(limit=10)) == 2
    # ...and one that changes them is refused whole
    changed = {**DOC, "rules": [{"name": "adfs", "pattern": r"^X-(?P<account>\d{12})-(?P<role>\w+)$"}]}
    with pytest.raises(ReadOnly):
        store.apply_import(MappingDocument.model_validate(changed), CTX)


def test_config_sync_follows_the_file(store):
    store.sync_config(MappingDocument.model_validate(DOC))
    second = {**DOC, "mappings": DOC["mappings"][:1], "rules": []}
    plan = store.sync_config(MappingDocument.model_validate(second))
    assert len(plan.mappings.delete) == 1 and len(plan.rules.delete) == 1
    assert store.sync_config(MappingDocument.model_validate(second)).changes == 0
    events = store.audit_events(AuditFilter(actor="config-file"), limit=100, before_id=None)
    assert events and all(e["details"]["via"] == "config-sync" for e in events)


def test_an_import_is_checked_and_applied_on_one_plan(store):
    """The caller's check (plan hash, allow_deletes) sees the very plan the apply writes, inside its
    transaction; a refusal there changes nothing."""
    store.apply_import(MappingDocument.model_validate(DOC), CTX)
    before = store.export().model_dump()
    smaller = MappingDocument.model_validate({**DOC, "mappings": [], "rules": []})
    seen = []

    def refuse(plan):
        seen.append(plan.to_dict())
        raise Conflict("refused by the check")

    with pytest.raises(Conflict):
        store.apply_import(smaller, CTX, check=refuse)
    assert store.export().model_dump() == before
    assert seen == [store.plan_import(smaller).to_dict()]
    applied = store.apply_import(smaller, CTX, check=seen.append)
    assert len(applied.mappings.delete) == 2 and len(store.list_mappings(limit=10)) == 0


def test_views_are_the_models_fields_plus_what_the_database_adds(store):
    """The answers and their documented models come from one definition (broker.mapping.model)."""
    from broker.web.admin_schema import AccountView, MappingView, RoleView, RuleView

    seed(store)
    mapping = store.create_mapping(MappingSpec(group="ops", account="prod", role="Admin"), CTX)
    rule = store.create_rule(RuleSpec(name="adfs", pattern=r"^AWS-(?P<account>\d{12})-(?P<role>\w+)$"), CTX)
    meta = {"source", "created_at", "updated_at"}
    cases = [
        (store.get_account(PROD), AccountView, set(AccountSpec.model_fields) - {"roles"}),
        (store.get_role(PROD, "admin"), RoleView, set(RoleSpec.model_fields) | {"account", "arn"}),
        (mapping, MappingView, set(MappingSpec.model_fields) | {"id"}),
        (rule, RuleView, set(RuleSpec.model_fields)),
    ]
    for view, model, fields in cases:
        assert set(view) == set(model.model_fields) == fields | meta
        model.model_validate(view)
    assert store.get_role(PROD, "admin")["arn"] == f"arn:aws:iam::{PROD}:role/Admin"


def test_a_mapping_view_documents_its_account_as_the_id() -> None:
    """A write names the account by id or alias; the answer holds its id, and says so."""
    from broker.web.admin_schema import MappingView

    assert MappingView.model_fields["account"].description == "the account id"
