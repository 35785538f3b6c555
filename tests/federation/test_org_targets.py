"""Mappings and naming rules that target an OU or an account tag, end to end against moto's
Organizations: `broker org discover --apply` records where each account is, and the next
resolution covers it, without editing the mapping."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from broker.app import build_services
from broker.audit import AuditFilter
from broker.aws.config import OrganizationsConfig
from broker.aws.iam_access import IamAccess
from broker.cli.server import app as cli
from broker.config import DatabaseConfig, load_config
from broker.db.session import make_engine
from broker.db.store import SqlMappingStore
from broker.mapping.grants import Explanation, grants_for
from broker.mapping.model import AWS_DEFAULT_MAX_SESSION

_MANAGEMENT_IDS = itertools.count(762000000001)


def _account(org: Any, name: str, parent: str, root: str, tags: dict[str, str] | None = None) -> str:
    created = org.create_account(
        AccountName=name,
        Email=f"{name}@example.com",
        Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
    )
    account_id: str = created["CreateAccountStatus"]["AccountId"]
    if parent != root:
        org.move_account(AccountId=account_id, SourceParentId=root, DestinationParentId=parent)
    return account_id


@pytest.fixture
def world(tmp_path: Path, moto_sts: str, credentials: None) -> dict[str, Any]:
    """An organization (root > prod > prod-eu), a broker whose config maps groups to the prod OU
    and to the tag env=prod, and a naming rule limited to the prod OU."""
    management = f"{next(_MANAGEMENT_IDS):012d}"
    config = OrganizationsConfig(
        management_account=management,
        endpoint_url=moto_sts,
        assume_role="arn:aws:iam::{account}:role/BrokerOrgReader",
    )
    org = IamAccess(config, session_name="setup").client(management, "aws", "organizations")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    prod = org.create_organizational_unit(ParentId=root, Name="prod")["OrganizationalUnit"]["Id"]
    prod_eu = org.create_organizational_unit(ParentId=prod, Name="prod-eu")["OrganizationalUnit"]["Id"]
    shop = _account(org, "shop", prod, root)
    path = tmp_path / "broker.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{tmp_path / 'b.db'}", "auto_migrate": True},
                "organizations": {
                    "management_account": management,
                    "endpoint_url": moto_sts,
                    "assume_role": "arn:aws:iam::{account}:role/BrokerOrgReader",
                    "registration": {
                        "federation": {"path": "saml", "saml_provider": "broker"},
                        "roles": [{"name": "ReadOnly", "max_session_duration": 7200}],
                    },
                },
                "mapping": {
                    "mappings": [
                        {"group": "platform-admins", "accounts": {"ou": prod}, "role": "Admin"},
                        {
                            "group": "auditors",
                            "accounts": {"tag": {"env": "prod"}},
                            "role": "ReadOnly",
                            "console": False,
                        },
                    ],
                    "rules": [
                        {
                            "name": "prod-roles",
                            "pattern": r"^prod-(?P<role>[\w+=,.@-]+)$",
                            "accounts": {"ou": prod},
                        }
                    ],
                },
            }
        )
    )
    services = build_services(load_config(path, env={}), env={})  # a deployed broker: migrated, synced
    services.engine.dispose()
    return {
        "config": path,
        "org": org,
        "root": root,
        "prod": prod,
        "prod_eu": prod_eu,
        "shop": shop,
        "store": lambda: SqlMappingStore(make_engine(DatabaseConfig(url=f"sqlite:///{tmp_path / 'b.db'}"))),
    }


def _discover(world: dict[str, Any]) -> Any:
    result = CliRunner().invoke(
        cli, ["org", "discover", "--config", str(world["config"]), "--actor", "t", "--apply"]
    )
    assert result.exit_code == 0, result.output
    return result


def _roles(store: SqlMappingStore, group: str) -> dict[tuple[str, str], list[str | None]]:
    """(account, role) → each reason's ``via``, for a member of ``group``."""
    return {
        (g.account_id, g.role_name): [r.via for r in g.reasons] for g in grants_for(store, [group]).grants
    }


def test_an_account_created_under_the_ou_is_covered_at_the_next_discovery(world: dict[str, Any]) -> None:
    org, root, prod, prod_eu, shop = (
        world["org"],
        world["root"],
        world["prod"],
        world["prod_eu"],
        world["shop"],
    )
    store = world["store"]()
    assert _roles(store, "platform-admins") == {}  # nothing discovered yet: no account is placed
    _discover(world)
    assert _roles(store, "platform-admins") == {(shop, "Admin"): [f"OU {prod}"]}

    # a new account under a child OU of the mapped one: only discovery runs, the mapping is not edited
    eu = _account(org, "shop-eu", prod_eu, root)
    assert (eu, "Admin") not in _roles(store, "platform-admins")
    out = _discover(world).output
    assert f"@ {eu}: placed" in out
    assert _roles(store, "platform-admins") == {
        (shop, "Admin"): [f"OU {prod}"],
        (eu, "Admin"): [f"OU {prod}"],
    }

    explained = Explanation("alice", grants_for(store, ["platform-admins"])).to_dict()
    by_account = {g["account_id"]: g for g in explained["grants"]}
    (reason,) = by_account[eu]["reasons"]
    assert reason["via"] == f"OU {prod}" and reason["ref"].startswith("org-") and reason["source"] == "config"
    # the registration template does not declare Admin: like a naming rule's undeclared role, 1 h
    assert by_account[eu]["max_session_duration"] == {
        "console": AWS_DEFAULT_MAX_SESSION,
        "cli": AWS_DEFAULT_MAX_SESSION,
    }
    grant = next(g for g in grants_for(store, ["platform-admins"]).grants if g.account_id == eu)
    assert grant.reasons[0].describe() == f"mapping {reason['ref']} via platform-admins via OU {prod}"

    # moved out of the OU: the next discovery removes the grant, and the audit event says it moved
    org.move_account(AccountId=shop, SourceParentId=prod, DestinationParentId=root)
    out = _discover(world).output
    assert f"@ {shop}: moved from {prod} to {root}" in out
    assert _roles(store, "platform-admins") == {(eu, "Admin"): [f"OU {prod}"]}
    last = store.audit_events(AuditFilter(action="organizations.discover"), limit=1, before_id=None)[0]
    assert last["details"]["placements"]["moved"] == {shop: {"from": prod, "to": root}}
    assert store.get_account(shop)["id"] == shop  # discovery never removes a registered account


def test_a_tag_mapping_follows_the_tag(world: dict[str, Any]) -> None:
    org, root = world["org"], world["root"]
    tagged = _account(org, "billing", root, root, {"env": "prod"})
    other = _account(org, "sandbox", root, root, {"env": "Prod"})  # values compare exactly
    _account(org, "keys", root, root, {"Env": "prod"})  # keys are case-sensitive, as in AWS
    store = world["store"]()
    _discover(world)
    roles = _roles(store, "auditors")
    assert roles == {(tagged, "ReadOnly"): ["tag env=prod"]}
    (grant,) = grants_for(store, ["auditors"]).grants
    assert grant.allows("cli") and not grant.allows("console")
    assert grant.role_max_session == 7200  # the role the account declares (registration template)

    org.untag_resource(ResourceId=tagged, TagKeys=["env"])
    org.tag_resource(ResourceId=other, Tags=[{"Key": "env", "Value": "prod"}])
    out = _discover(world).output
    assert f"@ {tagged}: tags env=prod -> none" in out
    assert _roles(store, "auditors") == {(other, "ReadOnly"): ["tag env=prod"]}

    # an account that leaves the organization is in none of its OUs or tags any more
    org.remove_account_from_organization(AccountId=other)
    out = _discover(world).output
    assert f"@ {other}: no longer in the organization" in out
    assert _roles(store, "auditors") == {}
    assert store.get_account(other)["id"] == other  # still registered, as people left it


def test_a_naming_rule_without_an_account_group_grants_in_every_account_of_its_ou(
    world: dict[str, Any],
) -> None:
    prod, shop, root = world["prod"], world["shop"], world["root"]
    outside = _account(world["org"], "outside", root, root)
    store = world["store"]()
    _discover(world)
    assert _roles(store, "prod-Deployer") == {(shop, "Deployer"): [f"OU {prod}"]}
    resolution = grants_for(store, ["prod-Deployer"])
    assert all(g.account_id != outside for g in resolution.grants)
