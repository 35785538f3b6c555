"""A role's managed policy ARNs (what aws-setup's templates attach): validated by IAM's rules and
the account's partition in the file, the API and imports alike; stored (migration 0004), synced
from the file without touching what the API made, and shown in plans."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import inspect, text

from broker.audit import AuditContext
from broker.config import DatabaseConfig, parse_config
from broker.db.session import current_revision, downgrade, head_revision, make_engine, migrate
from broker.db.store import SqlMappingStore
from broker.errors import ConfigError, ConfigSyncFailed
from broker.mapping.model import AccountSpec, MappingDocument, MappingSpec, RoleSpec
from broker.mapping.plan_text import render

CTX = AuditContext(actor="admin:test")
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
DEPLOY = "arn:aws:iam::111122223333:policy/team/ci/Deploy"
CN_READ_ONLY = "arn:aws-cn:iam::aws:policy/ReadOnlyAccess"


def _codes(exc: ValidationError) -> list[tuple[str, tuple[Any, ...]]]:
    return [(e["type"], e["loc"]) for e in exc.errors()]


# ---- the model ----


def test_good_arns_are_kept_in_order() -> None:
    role = RoleSpec(name="Admin", managed_policy_arns=[DEPLOY, READ_ONLY])
    assert role.managed_policy_arns == [DEPLOY, READ_ONLY]
    assert RoleSpec(name="Admin").managed_policy_arns == []  # the default: the role's permissions as they are
    account = AccountSpec(id="111122223333", partition="aws-cn", roles=[{"name": "Admin", "managed_policy_arns": [CN_READ_ONLY]}])
    assert account.roles[0].managed_policy_arns == [CN_READ_ONLY]


@pytest.mark.parametrize("arn", [
    "arn:aws:iam::aws:role/ReadOnlyAccess",  # a role, not a policy
    "arn:aws:iam::12345:policy/Short",  # the account is 12 digits or "aws"
    "arn:aws:s3:::bucket/policy/x",
    "arn:aws:iam::aws:policy/",  # no name
    "arn:aws:iam::aws:policy/has space",
    "arn:aws:iam::aws:policy/Résumé",  # IAM names are ASCII
    "arn:aws:iam::aws:policy/" + "n" * 129,  # names are at most 128
    "arn:aws:iam::aws:policy/" + "p/" * 300 + "Name",  # paths are at most 512
    "arn:AWS:iam::aws:policy/ReadOnlyAccess",
    " arn:aws:iam::aws:policy/ReadOnlyAccess x",
])
def test_a_malformed_arn_is_refused_with_its_code(arn: str) -> None:
    with pytest.raises(ValidationError) as err:
        RoleSpec(name="Admin", managed_policy_arns=[READ_ONLY, arn])
    assert _codes(err.value) == [("invalid_policy_arn", ("managed_policy_arns", 1))]


def test_an_arn_of_another_partition_names_the_role_and_the_arn() -> None:
    with pytest.raises(ValidationError) as err:
        AccountSpec(id="111122223333", roles=[{"name": "ReadOnly"}, {"name": "Admin", "managed_policy_arns": [READ_ONLY, CN_READ_ONLY]}])
    assert _codes(err.value) == [("wrong_partition", ("roles", 1, "managed_policy_arns", 1))]
    message = err.value.errors()[0]["msg"]
    assert "'Admin'" in message and CN_READ_ONLY in message and "'aws-cn'" in message and "'aws'" in message


def test_a_customer_managed_policy_of_another_account_is_refused() -> None:
    with pytest.raises(ValidationError) as err:
        AccountSpec(id="444455556666", roles=[{"name": "Admin", "managed_policy_arns": [READ_ONLY, DEPLOY]}])
    assert _codes(err.value) == [("foreign_policy", ("roles", 0, "managed_policy_arns", 1))]
    assert "belongs to account 111122223333" in err.value.errors()[0]["msg"]
    assert AccountSpec(id="111122223333", roles=[{"name": "Admin", "managed_policy_arns": [READ_ONLY, DEPLOY]}])


def test_at_most_twenty_and_no_duplicates() -> None:
    twenty = [f"arn:aws:iam::aws:policy/P{i}" for i in range(20)]
    assert len(RoleSpec(name="Admin", managed_policy_arns=twenty).managed_policy_arns) == 20  # IAM's hard maximum
    with pytest.raises(ValidationError) as err:
        RoleSpec(name="Admin", managed_policy_arns=[*twenty, "arn:aws:iam::aws:policy/P20"])
    assert _codes(err.value) == [("policy_limit", ("managed_policy_arns",))]
    with pytest.raises(ValidationError) as err:
        RoleSpec(name="Admin", managed_policy_arns=[READ_ONLY, DEPLOY, READ_ONLY])
    assert _codes(err.value) == [("duplicate", ("managed_policy_arns",))]
    assert READ_ONLY in err.value.errors()[0]["msg"]


# ---- the configuration file ----


def _file_mapping(arns: list[str]) -> dict[str, Any]:
    return {"accounts": [{"id": "111122223333", "alias": "prod",
                          "roles": [{"name": "ReadOnly"}, {"name": "Admin", "managed_policy_arns": arns}]}],
            "mappings": [{"group": "ops", "account": "prod", "role": "Admin"}]}


@pytest.mark.parametrize("arns, problem", [
    ([CN_READ_ONLY], ("mapping.accounts[0].roles[1].managed_policy_arns[0]: role 'Admin': managed policy "
                     f"'{CN_READ_ONLY}' is in partition 'aws-cn' but the account is in 'aws'")),
    (["arn:aws:iam::aws:policy/a b"], "mapping.accounts[0].roles[1].managed_policy_arns[0]: not a managed policy ARN"),
    ([READ_ONLY, READ_ONLY], f"mapping.accounts[0].roles[1].managed_policy_arns: managed policy '{READ_ONLY}' is listed twice"),
])
def test_a_config_file_problem_names_its_path(arns: list[str], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"mapping": _file_mapping(arns)}, env={})
    (found,) = err.value.problems  # that one problem, and no dangling-reference noise besides
    assert found.startswith(problem), found


# ---- the admin API ----


@pytest.fixture
def api(app_factory: Any, admin_headers: dict[str, str]) -> Any:
    client = app_factory(mapping=_file_mapping([READ_ONLY]))

    class Api:
        def __getattr__(self, method: str) -> Any:
            def call(path: str, **kw: Any) -> Any:
                return getattr(client, method)(f"/api/v1/admin{path}", headers=admin_headers, **kw)

            return call

    return Api()


def test_the_api_stores_shows_and_exports_the_list(api: Any) -> None:
    assert api.get("/accounts/prod/roles/Admin").json()["managed_policy_arns"] == [READ_ONLY]  # from the file
    assert api.post("/accounts", json={"id": "444455556666", "alias": "team"}).status_code == 201
    r = api.post("/accounts/team/roles", json={"name": "Dev", "managed_policy_arns": [READ_ONLY]})
    assert r.status_code == 201, r.text
    assert r.json()["managed_policy_arns"] == [READ_ONLY]
    r = api.patch("/accounts/team/roles/Dev", json={"managed_policy_arns": ["arn:aws:iam::444455556666:policy/Dev", READ_ONLY]})
    assert r.status_code == 200 and r.json()["managed_policy_arns"] == ["arn:aws:iam::444455556666:policy/Dev", READ_ONLY]
    exported = api.get("/export", params={"format": "json"}).json()
    team = next(a for a in exported["accounts"] if a["id"] == "444455556666")
    assert team["roles"][0]["managed_policy_arns"] == ["arn:aws:iam::444455556666:policy/Dev", READ_ONLY]
    assert r.json()["arn"] == "arn:aws:iam::444455556666:role/Dev"


@pytest.mark.parametrize("method, path, body, code, field", [
    ("post", "/accounts/team/roles", {"name": "Dev", "managed_policy_arns": [CN_READ_ONLY]}, "wrong_partition",
     "managed_policy_arns.0"),
    ("post", "/accounts", {"id": "777788889999", "roles": [{"name": "X", "managed_policy_arns": [CN_READ_ONLY]}]},
     "wrong_partition", "roles.0.managed_policy_arns.0"),
    ("put", "/accounts/team/roles/Ops", {"name": "Ops", "managed_policy_arns": [READ_ONLY, CN_READ_ONLY]},
     "wrong_partition", "managed_policy_arns.1"),
    ("patch", "/accounts/team", {"partition": "aws-cn"}, "wrong_partition", "partition"),  # Ops's ARNs are aws's
    ("patch", "/accounts/team/roles/Ops", {"managed_policy_arns": [READ_ONLY, DEPLOY]}, "foreign_policy",
     "managed_policy_arns.1"),  # another account's customer managed policy
    ("patch", "/accounts/team/roles/Ops", {"managed_policy_arns": ["arn:aws:iam::aws:role/X"]}, "invalid_policy_arn",
     "managed_policy_arns.0"),
    ("patch", "/accounts/team/roles/Ops", {"managed_policy_arns": [READ_ONLY, READ_ONLY]}, "duplicate",
     "managed_policy_arns"),
    ("post", "/accounts/team/roles", {"name": "Dev", "managed_policy_arns": [f"arn:aws:iam::aws:policy/P{i}" for i in range(21)]},
     "policy_limit", "managed_policy_arns"),
])
def test_bad_arns_get_a_stable_code_and_change_nothing(
    api: Any, method: str, path: str, body: dict[str, Any], code: str, field: str
) -> None:
    api.post("/accounts", json={"id": "444455556666", "alias": "team",
                                "roles": [{"name": "Ops", "managed_policy_arns": [READ_ONLY]}]})
    before = api.get("/export", params={"format": "json"}).json()
    audit_before = api.get("/audit").json()["items"][0]["id"]
    r = getattr(api, method)(path, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["details"][0]["field"] == field, error
    assert api.get("/export", params={"format": "json"}).json() == before
    assert api.get("/audit").json()["items"][0]["id"] == audit_before


def test_an_import_round_trips_the_list_and_refuses_another_partition(api: Any) -> None:
    doc = {"accounts": [{"id": "444455556666", "alias": "team", "roles": [{"name": "Dev", "managed_policy_arns": [READ_ONLY]}]}]}
    r = api.post("/import", params={"apply": "true"}, json=doc)
    assert r.status_code == 200 and r.json()["applied"] is True, r.text
    exported = api.get("/export", params={"format": "json", "source": "api"}).json()
    assert exported["accounts"][0]["roles"][0]["managed_policy_arns"] == [READ_ONLY]
    assert api.post("/import", json=exported).json()["changes"] == 0  # the export imports as it is

    before = api.get("/export", params={"format": "json"}).json()
    doc["accounts"][0]["roles"][0]["managed_policy_arns"] = [CN_READ_ONLY]
    r = api.post("/import", params={"apply": "true"}, json=doc)
    assert r.status_code == 422 and r.json()["error"]["code"] == "wrong_partition", r.text
    assert r.json()["error"]["details"][0]["field"].endswith("accounts.0.roles.0.managed_policy_arns.0")
    assert api.get("/export", params={"format": "json"}).json() == before


def test_a_config_role_is_read_only_through_the_api(api: Any) -> None:
    r = api.patch("/accounts/prod/roles/Admin", json={"managed_policy_arns": []})
    assert r.status_code == 409 and r.json()["error"]["code"] == "read_only"


# ---- the config sync ----


def _doc(arns: list[str]) -> MappingDocument:
    return MappingDocument.model_validate(_file_mapping(arns))


def test_a_file_edit_updates_the_config_role_and_leaves_the_apis_alone(store: SqlMappingStore) -> None:
    first = render(store.sync_config(_doc([READ_ONLY])).to_dict())
    assert f'+ role 111122223333/Admin (path /, max_session_duration 3600, managed_policy_arns ["{READ_ONLY}"])' in first
    assert "+ role 111122223333/ReadOnly (path /, max_session_duration 3600)\n" in first  # none: not mentioned
    store.create_role("prod", RoleSpec(name="Billing", managed_policy_arns=[DEPLOY]), CTX)  # an API role, config account
    store.create_account(AccountSpec.model_validate({"id": "444455556666", "roles": [{"name": "Dev"}]}), CTX)
    api_made = {a: store.list_roles(a) for a in ("111122223333", "444455556666")}

    plan = store.sync_config(_doc([DEPLOY, READ_ONLY]))
    (update,) = plan.to_dict()["roles"]["update"]
    assert update["after"]["managed_policy_arns"] == [DEPLOY, READ_ONLY]
    assert f'managed_policy_arns ["{READ_ONLY}"] -> ["{DEPLOY}", "{READ_ONLY}"]' in render(plan.to_dict())
    assert store.get_role("prod", "Admin")["managed_policy_arns"] == [DEPLOY, READ_ONLY]
    assert store.full_snapshot().role("111122223333", "admin").managed_policy_arns == (DEPLOY, READ_ONLY)
    # what people made through the API: as it was, whatever the file says and however often it syncs
    store.sync_config(_doc([]))
    assert store.get_role("prod", "Billing") == next(r for r in api_made["111122223333"] if r["name"] == "Billing")
    assert store.list_roles("444455556666") == api_made["444455556666"]
    assert store.get_role("prod", "Admin")["managed_policy_arns"] == []


def test_a_role_the_api_owns_keeps_its_list_when_the_file_declares_it(store: SqlMappingStore) -> None:
    store.create_account(AccountSpec.model_validate({"id": "111122223333", "alias": "prod"}), CTX)
    store.create_role("prod", RoleSpec(name="Admin", managed_policy_arns=[DEPLOY]), CTX)
    for _ in range(2):  # a restart syncs again
        store.sync_config(_doc([READ_ONLY]))
        admin = store.get_role("prod", "Admin")
        assert (admin["source"], admin["managed_policy_arns"]) == ("api", [DEPLOY])


def test_a_file_moving_an_account_under_an_api_roles_policies_is_refused_whole(store: SqlMappingStore) -> None:
    store.sync_config(_doc([]))
    store.create_role("prod", RoleSpec(name="Billing", managed_policy_arns=[DEPLOY]), CTX)
    before = store.export()
    moved = _file_mapping([])
    moved["accounts"][0]["partition"] = "aws-cn"
    with pytest.raises(ConfigSyncFailed) as failed:
        store.sync_config(MappingDocument.model_validate(moved))
    assert failed.value.details == [
        (f"API role in account 111122223333: role 'Billing': managed policy '{DEPLOY}' is in partition 'aws' "
        "but the account is in 'aws-cn'")
    ]
    assert store.export() == before


def test_the_issuance_snapshot_carries_the_list(store: SqlMappingStore) -> None:
    store.sync_config(_doc([READ_ONLY]))
    assert store.snapshot_for(["ops"]).role("111122223333", "Admin").managed_policy_arns == (READ_ONLY,)


# ---- the migration ----


def test_migration_0004_upgrades_existing_roles_and_downgrades(database_url: str) -> None:
    engine = make_engine(DatabaseConfig(url=database_url))
    try:
        migrate(engine, "0003")
        with engine.begin() as conn:  # a role written before the column existed
            conn.execute(text("INSERT INTO accounts (id, partition, description, federation_path, source, created_at, "
                              "updated_at) VALUES ('111122223333', 'aws', '', 'saml', 'api', :t, :t)"),
                         {"t": "2026-12-01 00:00:00+00:00"})
            conn.execute(text("INSERT INTO roles (account_id, name, name_key, path, max_session_duration, description, "
                              "source, created_at, updated_at) VALUES ('111122223333', 'Old', 'old', '/', 3600, '', "
                              "'api', :t, :t)"), {"t": "2026-12-01 00:00:00+00:00"})
        migrate(engine)
        assert current_revision(engine) == head_revision()  # 0004 and any later migration
        store = SqlMappingStore(engine)
        assert store.get_role("111122223333", "Old")["managed_policy_arns"] == []
        store.create_role("111122223333", RoleSpec(name="New", managed_policy_arns=[READ_ONLY]), CTX)
        assert store.get_role("111122223333", "New")["managed_policy_arns"] == [READ_ONLY]
        # a mapping on the role: its foreign key must not stand in the downgrade's way
        store.create_mapping(MappingSpec(group="ops", account="111122223333", role="New"), CTX)

        downgrade(engine, "0003")
        assert current_revision(engine) == "0003"
        assert "managed_policy_arns" not in {c["name"] for c in inspect(engine).get_columns("roles")}
        with engine.connect() as conn:
            assert sorted(conn.execute(text("SELECT name FROM roles")).scalars()) == ["New", "Old"]  # rows kept
        migrate(engine)
        assert SqlMappingStore(engine).get_role("111122223333", "New")["managed_policy_arns"] == []
    finally:
        engine.dispose()
