"""Mappings and naming rules with ``accounts:`` (an OU or a tag): resolution against the recorded
placements, the store on SQLite and PostgreSQL, the admin API, config sync and import/export.
(The moto Organizations end-to-end test is tests/federation/test_org_targets.py.)"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from broker.audit import AuditContext, AuditFilter
from broker.mapping.grants import grants_for
from broker.mapping.model import MappingDocument, MappingSpec, RuleSpec
from broker.mapping.org_targets import Placement, placement_targets
from broker.mapping.plan_text import render
from broker.mapping.rules import resolve
from broker.mapping.snapshot import AccountRecord, MappingSnapshot, OrgMappingRecord, RoleRecord, RuleRecord

CTX = AuditContext(actor="admin")
ROOT, PROD, PROD_EU, DEV = "r-ab12", "ou-ab12-prod0001", "ou-ab12-prodeu01", "ou-ab12-dev00001"
A, B, C = "111111111111", "222222222222", "333333333333"


def _acc(account_id: str) -> AccountRecord:
    return AccountRecord(account_id, None, "aws", "us-east-1", None, "saml", "broker", None)


def _snapshot(
    *, org: tuple[OrgMappingRecord, ...] = (), rules: tuple[RuleRecord, ...] = ()
) -> MappingSnapshot:
    placed = {
        A: ((ROOT, PROD), {"env": "prod"}),
        B: ((ROOT, PROD, PROD_EU), {"env": "Prod"}),
        C: ((ROOT, DEV), {"Env": "prod"}),
    }
    pairs = [(acc, t) for acc, (path, tags) in placed.items() for t in placement_targets(path, tags)]
    roles = [RoleRecord(A, "Admin", "/ops/", 7200)]
    return MappingSnapshot.build([_acc(A), _acc(B), _acc(C)], roles, [], rules, org, pairs)


def _org(target: str, role: str = "Admin", group: str = "platform", **kw: Any) -> OrgMappingRecord:
    fields: dict[str, Any] = {"session_duration": None, "console": True, "cli": True, "source": "api"} | kw
    return OrgMappingRecord("7", group, group, target, role, **fields)


def _key(spec: dict[str, Any]) -> str:
    return MappingSpec(group="g", accounts=spec, role="R").accounts.target().key  # type: ignore[union-attr]


def test_an_ou_mapping_reaches_the_accounts_of_the_ou_and_of_its_child_ous() -> None:
    r = resolve(["Platform"], _snapshot(org=(_org(_key({"ou": PROD})),)))
    assert {(g.account_id, g.role_name) for g in r.grants} == {(A, "Admin"), (B, "Admin")}
    by_account = {g.account_id: g for g in r.grants}
    assert by_account[A].role_path == "/ops/" and by_account[A].role_max_session == 7200  # declared in A
    assert by_account[B].role_max_session == 3600  # undeclared in B: AWS's default maximum
    (reason,) = by_account[B].reasons
    assert (reason.kind, reason.ref, reason.via, reason.group) == (
        "mapping",
        "org-7",
        f"OU {PROD}",
        "Platform",
    )
    assert by_account[B].to_dict()["reasons"][0]["via"] == f"OU {PROD}"


def test_the_root_reaches_every_placed_account_and_an_empty_ou_says_so() -> None:
    r = resolve(["platform"], _snapshot(org=(_org(_key({"ou": ROOT})),)))
    assert {g.account_id for g in r.grants} == {A, B, C} and r.grants[0].reasons[0].via == f"root {ROOT}"
    empty = resolve(["platform"], _snapshot(org=(_org(_key({"ou": "ou-ab12-empty0001"})),)))
    assert empty.grants == () and empty.unmatched == ("platform",)
    assert any("no registered account is under OU ou-ab12-empty0001" in n for n in empty.notes)


def test_a_tag_mapping_needs_the_exact_key_and_value() -> None:
    r = resolve(["platform"], _snapshot(org=(_org(_key({"tag": {"env": "prod"}})),)))
    assert [(g.account_id, g.reasons[0].via) for g in r.grants] == [(A, "tag env=prod")]


def test_a_named_reason_keeps_the_shape_it_had() -> None:
    from broker.mapping.snapshot import MappingRecord

    snap = MappingSnapshot.build(
        [_acc(A)],
        [RoleRecord(A, "Admin", "/", 3600)],
        [MappingRecord("1", "ops", "ops", A, "Admin", None, True, True, "api")],
    )
    (grant,) = resolve(["ops"], snap).grants
    assert grant.to_dict()["reasons"] == [
        {
            "kind": "mapping",
            "ref": "1",
            "group": "ops",
            "console": True,
            "cli": True,
            "session_duration": None,
            "source": "api",
        }
    ]


def test_targeted_rules_grant_in_the_target_or_check_the_named_account_is_in_it() -> None:
    every = RuleRecord("prod", r"^prod-(?P<role>\w+)$", None, True, True, "api", _key({"ou": PROD}))
    named = RuleRecord(
        "adfs", r"^AWS-(?P<account>\d{12})-(?P<role>\w+)$", None, True, True, "api", _key({"ou": PROD})
    )
    r = resolve(["prod-Deploy", f"AWS-{A}-Ops", f"AWS-{C}-Ops"], _snapshot(rules=(every, named)))
    assert {(g.account_id, g.role_name) for g in r.grants} == {(A, "Deploy"), (B, "Deploy"), (A, "Ops")}
    assert all(g.reasons[0].via == f"OU {PROD}" for g in r.grants)
    assert any(f"account {C} is not under OU {PROD}" in n for n in r.notes)
    assert f"AWS-{C}-Ops" in r.unmatched


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"group": "g", "role": "Admin"}, "invalid_target"),
        (
            {"group": "g", "account": "111122223333", "accounts": {"ou": PROD}, "role": "Admin"},
            "invalid_target",
        ),
        ({"group": "g", "accounts": {}, "role": "Admin"}, "invalid_target"),
        ({"group": "g", "accounts": {"ou": PROD, "tag": {"env": "prod"}}, "role": "Admin"}, "invalid_target"),
        ({"group": "g", "accounts": {"ou": "ou-AB12-cdef3456"}, "role": "Admin"}, "invalid_ou_id"),
        ({"group": "g", "accounts": {"ou": "ou-ab1-cdef3456"}, "role": "Admin"}, "invalid_ou_id"),
        ({"group": "g", "accounts": {"ou": "r-"}, "role": "Admin"}, "invalid_ou_id"),
        ({"group": "g", "accounts": {"tag": {}}, "role": "Admin"}, "invalid_tag"),
        ({"group": "g", "accounts": {"tag": {" ": "x"}}, "role": "Admin"}, "invalid_tag"),
        ({"group": "g", "accounts": {"tag": {"a": "1", "b": "2"}}, "role": "Admin"}, "invalid_tag"),
        ({"group": "g", "accounts": {"tag": {"aws:createdBy": "x"}}, "role": "Admin"}, "invalid_tag"),
        ({"group": "g", "accounts": {"ou": PROD}, "role": "AWSReservedSSO_Admin_1"}, "reserved_role"),
    ],
)
def test_bad_targets_have_stable_codes(body: dict[str, Any], code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MappingSpec.model_validate(body)
    assert [e["type"] for e in caught.value.errors()] == [code]


def test_a_rule_without_an_account_group_needs_a_target() -> None:
    with pytest.raises(ValidationError) as caught:
        RuleSpec(name="x", pattern=r"^prod-(?P<role>\w+)$")
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [("invalid_regex", ("pattern",))]
    assert RuleSpec(name="x", pattern=r"^prod-(?P<role>\w+)$", accounts={"ou": PROD}).accounts is not None


# ---- the store, on SQLite and PostgreSQL ----


def _seed(store: Any) -> None:
    from broker.mapping.model import AccountSpec

    for acc in (A, B, C):
        store.create_account(AccountSpec(id=acc, roles=[{"name": "ReadOnly"}] if acc == A else []), CTX)


def test_store_resolves_org_mappings_from_the_recorded_placements(store: Any) -> None:
    _seed(store)
    m = store.create_org_mapping(MappingSpec(group="Platform", accounts={"ou": PROD}, role="ReadOnly"), CTX)
    assert m["accounts"] == {"ou": PROD} and m["account"] is None and m["source"] == "api"
    assert grants_for(store, ["platform"]).grants == ()  # nothing placed yet
    changes = store.record_placements(
        [
            Placement(A, (ROOT, PROD), {"env": "prod"}),
            Placement(B, (ROOT, PROD, PROD_EU), {}),
            Placement(C, (ROOT, DEV), {}),
            Placement("444444444444", (ROOT,), {}),
        ]
    )
    assert changes.placed == [A, B, C] and changes.unregistered == ["444444444444"]
    issued = grants_for(store, ["platform"])
    full = resolve(["platform"], store.full_snapshot())
    assert [(g.account_id, g.role_max_session) for g in issued.grants] == [(A, 3600), (B, 3600)]
    assert issued.grants == full.grants  # the issuance snapshot reads what the full one holds
    assert grants_for(store, ["someone-else"]).grants == ()

    moved = store.record_placements(
        [
            Placement(A, (ROOT, DEV), {"env": "dev"}),
            Placement(B, (ROOT, PROD, PROD_EU), {}),
            Placement(C, (ROOT, DEV), {}),
        ]
    )
    assert moved.moved == {A: {"from": PROD, "to": DEV}} and moved.placed == [] and moved.removed == []
    assert moved.retagged == {A: {"from": {"env": "prod"}, "to": {"env": "dev"}}}
    assert [g.account_id for g in grants_for(store, ["platform"]).grants] == [B]
    assert [p["account"] for p in store.list_placements()] == [A, B, C]

    left = store.record_placements(
        [Placement(A, (ROOT, DEV), {"env": "dev"})]
    )  # B and C left the organization
    assert left.removed == [B, C]
    assert grants_for(store, ["platform"]).grants == ()
    assert [a["id"] for a in store.list_accounts()] == [A, B, C]  # registrations stay as people left them


def test_store_org_mapping_writes_are_audited_and_duplicates_refused(store: Any) -> None:
    from broker.errors import Duplicate, InvalidInput

    spec = MappingSpec(group="g", accounts={"tag": {"env": "prod"}}, role="Admin")
    created = store.create_org_mapping(spec, CTX)
    with pytest.raises(Duplicate):
        store.create_org_mapping(spec, CTX)
    with pytest.raises(InvalidInput) as caught:
        store.create_mapping(spec, CTX)  # /mappings names one account
    assert caught.value.details[0]["code"] == "invalid_target"
    patched = store.patch_org_mapping(created["id"], {"accounts": {"ou": PROD}, "cli": False}, CTX)
    assert patched["accounts"] == {"ou": PROD} and patched["cli"] is False
    store.delete_org_mapping(created["id"], CTX)
    assert store.list_org_mappings() == []
    actions = [
        e["action"] for e in store.audit_events(AuditFilter(action="org_mapping."), limit=10, before_id=None)
    ]
    assert actions == ["org_mapping.delete", "org_mapping.update", "org_mapping.create"]


def test_config_sync_manages_config_org_mappings_and_never_api_ones(store: Any) -> None:
    doc = MappingDocument.model_validate(
        {
            "mappings": [{"group": "auditors", "accounts": {"tag": {"env": "prod"}}, "role": "ReadOnly"}],
            "rules": [{"name": "prod", "pattern": r"^prod-(?P<role>\w+)$", "accounts": {"ou": PROD}}],
        }
    )
    plan = store.sync_config(doc)
    assert len(plan.org_mappings.create) == 1 and len(plan.rules.create) == 1
    api = store.create_org_mapping(MappingSpec(group="ops", accounts={"ou": PROD}, role="Admin"), CTX)
    assert store.sync_config(doc).changes == 0  # a restart: nothing changes
    assert store.sync_config(MappingDocument()).org_mappings.delete[0]["group"] == "auditors"
    assert [m["id"] for m in store.list_org_mappings()] == [api["id"]]  # the API's stays as it was
    text = render(store.plan_config_sync(doc).to_dict())
    assert '+ mapping "auditors" -> tag env=prod/ReadOnly (console+cli)' in text
    assert f'+ rule "prod": ^prod-(?P<role>\\w+)$ (accounts via OU {PROD})' in text


def test_export_then_import_round_trips_org_mappings_and_targeted_rules(store: Any, engine: Any) -> None:
    from broker.db.store import SqlMappingStore

    store.create_org_mapping(MappingSpec(group="ops", accounts={"ou": PROD}, role="Admin", cli=False), CTX)
    store.create_rule(
        RuleSpec(name="prod", pattern=r"^prod-(?P<role>\w+)$", accounts={"tag": {"env": "prod"}}), CTX
    )
    exported = store.export()
    doc = MappingDocument.model_validate(exported.model_dump(mode="json"))
    assert store.plan_import(doc).changes == 0
    cleared = store.apply_import(MappingDocument(), CTX)
    assert len(cleared.org_mappings.delete) == 1
    again = SqlMappingStore(engine).apply_import(doc, CTX)
    assert len(again.org_mappings.create) == 1 and again.rules.unchanged == 0
    assert store.export().model_dump(mode="json") == exported.model_dump(mode="json")


# ---- the admin API ----


def test_admin_api_org_mappings(app_factory: Any, admin_headers: dict[str, str]) -> None:
    client = app_factory(mapping={"mappings": [{"group": "cfg", "accounts": {"ou": PROD}, "role": "Admin"}]})

    def call(method: str, path: str, **kw: Any) -> Any:
        return getattr(client, method)(f"/api/v1/admin{path}", headers=admin_headers, **kw)

    (declared,) = call("get", "/org-mappings").json()
    assert declared["source"] == "config"
    assert call("delete", f"/org-mappings/{declared['id']}").json()["error"]["code"] == "read_only"
    r = call(
        "post", "/org-mappings", json={"group": "ops", "accounts": {"tag": {"team": "shop"}}, "role": "Dev"}
    )
    assert r.status_code == 201, r.text
    bad = call("post", "/org-mappings", json={"group": "ops", "accounts": {"ou": "ou-nope"}, "role": "Dev"})
    assert bad.status_code == 422 and "invalid_ou_id" in bad.text
    wrong = call("post", "/mappings", json={"group": "ops", "accounts": {"ou": PROD}, "role": "Dev"})
    assert wrong.status_code == 422 and "/org-mappings" in wrong.text
    assert [m["group"] for m in call("get", "/org-mappings").json()] == ["cfg", "ops"]
    assert call("get", "/mappings").json()["items"] == []  # named-account mappings only
    exported = yaml.safe_load(call("get", "/export").text)
    assert {"group": "ops", "accounts": {"tag": {"team": "shop"}}, "role": "Dev"}.items() <= next(
        m for m in exported["mappings"] if m["group"] == "ops"
    ).items()
    assert call("get", "/org-placements").json() == []

    # explain over HTTP, once discovery has placed an account under the config mapping's OU
    assert call("post", "/accounts", json={"id": A, "roles": [{"name": "Admin"}]}).status_code == 201
    client.app.state.services.store.record_placements([Placement(A, (ROOT, PROD, PROD_EU), {"team": "shop"})])
    assert call("get", "/org-placements").json()[0] | {"discovered_at": None} == {
        "account": A,
        "ou_id": PROD_EU,
        "ou_path": [ROOT, PROD, PROD_EU],
        "tags": {"team": "shop"},
        "discovered_at": None,
    }
    body = call("post", "/explain", json={"username": "alice", "groups": ["cfg", "ops"]}).json()
    vias = sorted((g["role_name"], r["via"]) for g in body["grants"] for r in g["reasons"])
    assert vias == [("Admin", f"OU {PROD}"), ("Dev", "tag team=shop")]


def test_aws_setup_and_revoke_see_the_roles_org_mappings_grant(store: Any) -> None:
    """aws-setup's trust plan (doctor checks the same) and revoke's targets list a role an OU
    mapping grants in an account, even one the account does not declare."""
    from broker.aws.trust import BrokerSide, account_trust
    from broker.cli.revoke_targets import _account_targets

    _seed(store)
    store.create_org_mapping(MappingSpec(group="platform", accounts={"ou": PROD}, role="Admin"), CTX)
    store.record_placements([Placement(A, (ROOT, PROD), {}), Placement(C, (ROOT, DEV), {})])
    snapshot = store.full_snapshot()
    broker = BrokerSide(issuer="https://broker.example.com", saml_metadata="<md/>")
    trust = account_trust(snapshot, A, broker)
    roles = {r.name: r for r in trust.roles}
    assert set(roles) == {"Admin", "ReadOnly"} and roles["Admin"].mapped_by == ("platform",)
    assert roles["Admin"].max_session_duration == 3600
    assert [r.name for r in account_trust(snapshot, C, broker).roles] == []  # not under the OU
    assert [t.role_arn for t in _account_targets(snapshot, A)] == [
        f"arn:aws:iam::{A}:role/Admin",
        f"arn:aws:iam::{A}:role/ReadOnly",
    ]


def test_a_deleted_account_takes_its_placement_with_it(store: Any) -> None:
    _seed(store)
    store.create_org_mapping(MappingSpec(group="platform", accounts={"ou": ROOT}, role="Admin"), CTX)
    store.record_placements([Placement(B, (ROOT,), {}), Placement(C, (ROOT,), {})])
    store.delete_account(C, CTX)  # C declares no roles: it can go
    assert [p["account"] for p in store.list_placements()] == [B]
    assert [g.account_id for g in grants_for(store, ["platform"]).grants] == [B]
