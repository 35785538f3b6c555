"""Account discovery from AWS Organizations (``broker.aws.organizations``) against moto's
Organizations server, reached like production: a read-only role assumed in the management account."""

from __future__ import annotations

from typing import Any

import pytest

from broker.aws.config import OrganizationsConfig
from broker.aws.iam_access import AccessProblem, IamAccess
from broker.aws.organizations import discover

MANAGEMENT = "999999999999"


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
