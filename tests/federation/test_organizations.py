"""Account discovery from AWS Organizations (``broker.aws.organizations``) against moto's
Organizations server, reached like production: a read-only role assumed in the management account."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from broker.app import build_services
from broker.audit import AuditContext, AuditFilter
from broker.aws.config import OrganizationsConfig
from broker.aws.iam_access import AccessProblem, IamAccess
from broker.aws.organizations import discover
from broker.cli.server import app as cli
from broker.config import DatabaseConfig, load_config
from broker.db.session import make_engine
from broker.db.store import SqlMappingStore
from broker.errors import ConfigError, NotFound

MANAGEMENT = "999999999999"
_MANAGEMENT_IDS = itertools.count(761000000001)


def _config(url: str, management: str = MANAGEMENT, **extra: Any) -> OrganizationsConfig:
    return OrganizationsConfig(management_account=management, endpoint_url=url,
                               assume_role="arn:aws:iam::{account}:role/BrokerOrgReader", **extra)


def _account(org: Any, name: str, parent: str, root: str, tags: dict[str, str] | None = None) -> str:
    created = org.create_account(AccountName=name, Email=f"{name}@example.com",
                                 Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()])
    account_id: str = created["CreateAccountStatus"]["AccountId"]
    if parent != root:
        org.move_account(AccountId=account_id, SourceParentId=root, DestinationParentId=parent)
    return account_id


@pytest.mark.usefixtures("credentials")
def test_discovery_finds_every_account_with_its_nested_ou_path_and_tags(moto_sts: str) -> None:
    access = IamAccess(_config(moto_sts), session_name="setup")
    org = access.client(MANAGEMENT, "aws", "organizations")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    workloads = org.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
    prod = org.create_organizational_unit(ParentId=workloads, Name="prod")["OrganizationalUnit"]["Id"]
    shop = _account(org, "shop-prod", prod, root, {"env": "prod", "team": "shop"})
    lab = _account(org, "lab", workloads, root, {"env": "dev"})
    loose = _account(org, "loose", root, root)

    inventory = discover(_config(moto_sts))

    by_id = {a.id: a for a in inventory.accounts}
    assert {shop, lab, loose, MANAGEMENT} <= set(by_id)
    assert by_id[shop].ou_path == (workloads, prod)
    assert by_id[shop].tags == {"env": "prod", "team": "shop"}
    assert by_id[shop].name == "shop-prod" and by_id[shop].active
    assert by_id[lab].ou_path == (workloads,)
    assert by_id[loose].ou_path == ()
    assert inventory.ou_names == {workloads: "workloads", prod: "prod"}
    assert {a.id for a in inventory.in_ou(workloads)} == {shop, lab}  # nested OUs included
    assert {a.id for a in inventory.in_ou(prod)} == {shop}
    assert {a.id for a in inventory.tagged("env", "prod")} == {shop}
    assert set(by_id) == {a.id for a in inventory.in_ou(inventory.root_id)}


@pytest.mark.usefixtures("credentials")
def test_an_account_outside_any_organization_is_an_access_problem_not_a_crash(moto_sts: str) -> None:
    with pytest.raises(AccessProblem) as caught:
        discover(_config(moto_sts, management="888888888888"))
    assert caught.value.account_id == "888888888888"
    assert caught.value.code == "access.failed"
    assert "management_account" in caught.value.fix


@pytest.mark.usefixtures("credentials")
def test_a_walk_longer_than_its_budget_stops_with_an_error_instead_of_a_partial_inventory(moto_sts: str) -> None:
    access = IamAccess(_config(moto_sts, management="777777777777"), session_name="setup")
    org = access.client("777777777777", "aws", "organizations")
    org.create_organization(FeatureSet="ALL")
    with pytest.raises(AccessProblem) as caught:
        discover(_config(moto_sts, management="777777777777", discovery_timeout=1e-9))
    assert caught.value.code == "access.unreachable"
    assert "discovery_timeout" in caught.value.fix


@pytest.mark.usefixtures("credentials")
def test_credentials_of_another_account_say_how_to_reach_the_management_account(moto_sts: str) -> None:
    config = OrganizationsConfig(management_account=MANAGEMENT, endpoint_url=moto_sts)  # no assume_role
    with pytest.raises(AccessProblem) as caught:
        discover(config)
    assert caught.value.code == "access.wrong_account"
    assert "organizations.assume_role" in caught.value.fix and "Doctor" not in caught.value.fix


# ---- broker org discover: the organization against the mapping, new accounts registered on --apply ----


@pytest.fixture
def org_world(tmp_path: Path, moto_sts: str, credentials: None) -> dict[str, Any]:
    """An organization in moto (management account of its own), and a broker config and database."""
    management = f"{next(_MANAGEMENT_IDS):012d}"
    org = IamAccess(_config(moto_sts, management=management), session_name="setup").client(
        management, "aws", "organizations")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    prod = org.create_organizational_unit(ParentId=root, Name="prod")["OrganizationalUnit"]["Id"]
    shop = _account(org, "Shop Prod", prod, root, {"env": "production"})
    lab = _account(org, "lab", root, root)
    config = tmp_path / "broker.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path / 'b.db'}", "auto_migrate": True},
        "organizations": {
            "management_account": management, "endpoint_url": moto_sts,
            "assume_role": "arn:aws:iam::{account}:role/BrokerOrgReader",
            "registration": {"ous": [prod], "default_region": "eu-west-1", "environment_tag": "env",
                             "federation": {"path": "saml", "saml_provider": "broker"},
                             "roles": [{"name": "ReadOnly", "max_session_duration": 3600}]},
        },
        "mapping": {"accounts": [{"id": "111122223333", "alias": "legacy"}]},
    }))
    services = build_services(load_config(config, env={}), env={})  # a deployed broker: migrated, synced
    services.engine.dispose()
    return {"config": config, "shop": shop, "lab": lab, "prod": prod, "management": management,
            "store": lambda: SqlMappingStore(make_engine(DatabaseConfig(url=f"sqlite:///{tmp_path / 'b.db'}")))}


def _discover(world: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(cli, ["org", "discover", "--config", str(world["config"]), "--actor", "tester", *args])


def test_a_dry_run_lists_what_would_be_registered_and_changes_nothing(org_world: dict[str, Any]) -> None:
    result = _discover(org_world)
    assert result.exit_code == 0, result.output
    shop, lab = org_world["shop"], org_world["lab"]
    assert f"+ {shop} Shop Prod as shop-prod: would register (--apply), via OU {org_world['prod']}, roles ReadOnly" \
        in result.output
    assert f"- {lab} lab: under none of organizations.registration.ous" in result.output
    assert "? 111122223333: in the mapping, not listed by the organization" in result.output
    store = org_world["store"]()
    with pytest.raises(NotFound):
        store.get_account(shop)
    assert store.audit_events(AuditFilter(action="organizations."), limit=10, before_id=None) == []


def test_apply_registers_the_new_accounts_audited_and_a_rerun_leaves_them_as_people_left_them(
        org_world: dict[str, Any]) -> None:
    shop = org_world["shop"]
    result = _discover(org_world, "--apply")
    assert result.exit_code == 0, result.output
    assert f"+ {shop} Shop Prod as shop-prod: registered, via OU {org_world['prod']}" in result.output
    store = org_world["store"]()
    account = store.get_account(shop)
    assert (account["alias"], account["environment"], account["default_region"]) == ("shop-prod", "production",
                                                                                      "eu-west-1")
    assert [r["name"] for r in store.list_roles(shop)] == ["ReadOnly"]
    (run,) = store.audit_events(AuditFilter(action="organizations.discover"), limit=10, before_id=None)
    assert run["actor"] == "discovery:tester" and run["details"]["registered"] == [shop]
    assert run["details"]["via"] == {shop: f"OU {org_world['prod']}"}
    created = store.audit_events(AuditFilter(actor="discovery:tester", target_id=shop), limit=10, before_id=None)
    assert created, "the account's creation is audited like an admin API create"

    store.patch_account(shop, {"description": "owned by the shop team"}, AuditContext(actor="admin"))
    again = _discover(org_world, "--apply")
    assert again.exit_code == 0 and "registered," not in again.output
    assert "1 account(s) of the organization are in the mapping" in again.output  # shop; lab is out of scope
    assert store.get_account(shop)["description"] == "owned by the shop team"


def test_without_the_section_or_the_registration_it_says_what_is_missing(tmp_path: Path) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path / 'b.db'}"}}))
    result = CliRunner().invoke(cli, ["org", "discover", "--config", str(bare)])
    assert result.exit_code == 2 and "no organizations: section" in result.output


def test_a_registration_template_naming_a_customer_policy_is_refused_when_the_config_loads(tmp_path: Path) -> None:
    """A customer managed policy belongs to one account: no template can give it to every account."""
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump({"organizations": {"management_account": MANAGEMENT, "registration": {
        "roles": [{"name": "Ops", "managed_policy_arns": ["arn:aws:iam::123456789012:policy/ops"]}]}}}))
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    (problem,) = caught.value.problems
    assert "registration.roles.0.managed_policy_arns.0: a customer managed policy belongs to one account" in problem
