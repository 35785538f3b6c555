"""One CloudFormation template for many accounts (``broker.aws.stackset``): it passes cfn-lint,
and deployed to moto's CloudFormation in two accounts — as a StackSet's instances would be — each
account gets the trust its own template would give it, read back through IAM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError
from typer.testing import CliRunner

from broker.aws import stackset
from broker.aws.cloudformation import PROVIDER_EXISTS, PROVIDER_ID
from broker.aws.trust import AccountTrust, BrokerSide, account_trust
from broker.cli.server import app as cli
from broker.errors import InvalidInput
from broker.mapping.snapshot import AccountRecord, MappingRecord, MappingSnapshot, RoleRecord
from broker.minting.keys import KeyRing
from tests.federation.conftest import MotoAccounts, make_idp
from tests.federation.test_aws_setup import _lint_errors

A, B, OUTSIDE = "731000000001", "731000000002", "731000000003"
POLICY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
WAIT = {"Delay": 1, "MaxAttempts": 30}


def _trusts(keyring: KeyRing) -> list[AccountTrust]:
    """Two SAML accounts in different regions that declare different roles, and an OIDC account."""
    snapshot = MappingSnapshot.build(
        [AccountRecord(A, "ss-a", "aws", "eu-west-1", None, "saml", "broker", None),
         AccountRecord(B, "ss-b", "aws", "us-east-2", None, "saml", "broker", None),
         AccountRecord("731000000009", "ss-oidc", "aws", "us-east-1", None, "web_identity", None, "client")],
        [RoleRecord(A, "SsAdmin", "/", 43200, (POLICY,)), RoleRecord(A, "SsRead", "/audit/", 3600),
         RoleRecord(B, "SsAdmin", "/ops/", 7200), RoleRecord("731000000009", "SsDeploy", "/", 3600)],
        [MappingRecord("1", "admins", "admins", A, "SsAdmin", None, True, True, "config"),
         MappingRecord("2", "admins", "admins", B, "SsAdmin", None, True, True, "config")],
    )
    broker = BrokerSide(issuer="https://broker.example.com", saml_metadata=make_idp(keyring).metadata().decode())
    return [account_trust(snapshot, account, broker) for account in sorted(snapshot.accounts)]


def test_accounts_with_the_same_provider_share_a_template_that_passes_cfn_lint(keyring: KeyRing) -> None:
    grouped = stackset.groups(_trusts(keyring))
    assert {name: [t.account_id for t in trusts] for name, trusts in grouped.items()} == {
        "saml-broker": [A, B], "oidc": ["731000000009"]}
    for trusts in grouped.values():
        assert _lint_errors(json.dumps(stackset.template(trusts))) == []
    with pytest.raises(ValueError, match="same provider"):
        stackset.template([t for group in grouped.values() for t in group])


@pytest.fixture
def deployed(moto_accounts: MotoAccounts, keyring: KeyRing) -> Iterator[tuple[dict[str, AccountTrust], Any]]:
    """The SAML group's one template deployed as a stack in A and in B (their providers created
    first, from the template's own provider resource: moto's CloudFormation makes none)."""
    trusts = {t.account_id: t for t in stackset.groups(_trusts(keyring))["saml-broker"]}
    body = stackset.template(list(trusts.values()))
    made = []
    for account in (A, B):
        iam, cfn = moto_accounts.client("iam", account), moto_accounts.client("cloudformation", account)
        props = body["Resources"][PROVIDER_ID]["Properties"]
        arn = iam.create_saml_provider(Name=props["Name"], SAMLMetadataDocument=props["SamlMetadataDocument"])[
            "SAMLProviderArn"]
        cfn.create_stack(StackName="broker-trust", TemplateBody=json.dumps(body),
                         Parameters=[{"ParameterKey": PROVIDER_EXISTS, "ParameterValue": "true"}])
        cfn.get_waiter("stack_create_complete").wait(StackName="broker-trust", WaiterConfig=WAIT)
        made.append((iam, cfn, arn))
    yield trusts, body
    for iam, cfn, arn in made:
        cfn.delete_stack(StackName="broker-trust")
        for name in ("SsAdmin", "SsRead"):  # DeletionPolicy Retain
            for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] if _has(iam, name) else []:
                iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
            if _has(iam, name):
                iam.delete_role(RoleName=name)
        iam.delete_saml_provider(SAMLProviderArn=arn)


def _has(iam: Any, name: str) -> bool:
    try:
        iam.get_role(RoleName=name)
    except iam.exceptions.NoSuchEntityException:
        return False
    return True


def test_each_account_gets_the_trust_its_own_template_would_give(
        deployed: tuple[dict[str, AccountTrust], Any], moto_accounts: MotoAccounts) -> None:
    trusts, _ = deployed
    for account, trust in trusts.items():
        iam = moto_accounts.client("iam", account)
        provider_arn = f"arn:aws:iam::{account}:saml-provider/broker"
        for role in trust.roles:
            got = iam.get_role(RoleName=role.name)["Role"]
            assert (got["Path"], got["MaxSessionDuration"], got["Arn"]) == (role.path, role.max_session_duration,
                                                                            role.arn)
            # the account's own SAML:aud (its region's regional Recipient), with the provider's real ARN
            assert got["AssumeRolePolicyDocument"] == role.policy
            assert role.policy["Statement"][0]["Principal"] == {"Federated": provider_arn}
        assert sorted(r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("Ss")) == \
            sorted(r.name for r in trust.roles)  # B declares no SsRead: it has none
    # moto's CloudFormation ignores ManagedPolicyArns on roles: the per-account value is checked in the template
    _, body = deployed
    admin = next(k for k, r in body["Resources"].items() if r.get("Properties", {}).get("RoleName") == "SsAdmin")
    mapping = body["Mappings"][stackset.MAPPING]
    assert (mapping[A][f"{admin}HasPolicies"], mapping[A][f"{admin}Policies"]) == ("true", [POLICY])
    assert mapping[B][f"{admin}HasPolicies"] == "false"  # B's SsAdmin names none: the property is left out there
    audiences = {a: t.roles[0].policy["Statement"][0]["Condition"]["StringEquals"]["SAML:aud"]
                 for a, t in trusts.items()}
    assert audiences[A] != audiences[B] and "https://us-east-2.signin.aws.amazon.com/saml" in audiences[B]


def test_an_account_the_mapping_does_not_cover_gets_no_trust(
        deployed: tuple[dict[str, AccountTrust], Any], moto_accounts: MotoAccounts) -> None:
    _, body = deployed
    cfn = moto_accounts.client("cloudformation", OUTSIDE)
    assert sorted(body["Mappings"][stackset.MAPPING]) == [A, B]
    # AWS fails the stack instance (FindInMap finds no key); moto answers it with a server error
    with pytest.raises((ClientError, ResponseParserError)):
        cfn.create_stack(StackName="broker-trust", TemplateBody=json.dumps(body),
                         Parameters=[{"ParameterKey": PROVIDER_EXISTS, "ParameterValue": "true"}])
        cfn.get_waiter("stack_create_complete").wait(StackName="broker-trust", WaiterConfig=WAIT)
    assert [r for r in moto_accounts.client("iam", OUTSIDE).list_roles()["Roles"] if r["RoleName"].startswith("Ss")] == []


def test_the_command_writes_one_template_per_provider(tmp_path: Any, config_file: Any) -> None:
    """TWO_ACCOUNTS_MAPPING: a SAML account and a web-identity one: two StackSet templates."""
    config = config_file
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["aws-setup", "--config", str(config), "--stackset", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["broker-trust-stackset-oidc.cfn.json",
                                                     "broker-trust-stackset-saml-broker.cfn.json"]
    saml = json.loads((out / "broker-trust-stackset-saml-broker.cfn.json").read_text())
    assert sorted(saml["Mappings"][stackset.MAPPING]) == ["111111111111"]
    assert _lint_errors(json.dumps(saml)) == []
    several = CliRunner().invoke(cli, ["aws-setup", "--config", str(config), "--stackset"])
    assert several.exit_code == 2 and "2 StackSet templates" in several.output
    one = CliRunner().invoke(cli, ["aws-setup", "--config", str(config), "--stackset", "-a", "sandbox-dev"])
    assert one.exit_code == 0 and json.loads(one.stdout)["Mappings"] == saml["Mappings"]
    terraform = CliRunner().invoke(cli, ["aws-setup", "--config", str(config), "--stackset", "--format", "terraform"])
    assert terraform.exit_code == 2 and "--format cloudformation" in terraform.output


def _many(keyring: KeyRing, accounts: int, roles: int) -> list[AccountTrust]:
    ids = [f"{732000000000 + n:012d}" for n in range(accounts)]
    snapshot = MappingSnapshot.build(
        [AccountRecord(i, None, "aws", "us-east-1", None, "saml", "broker", None) for i in ids],
        [RoleRecord(i, f"Role{r}", "/", 3600) for i in ids for r in range(roles)], [])
    broker = BrokerSide(issuer="https://broker.example.com", saml_metadata=make_idp(keyring).metadata().decode())
    return [account_trust(snapshot, i, broker) for i in ids]


def test_more_accounts_than_one_mapping_holds_are_split_into_numbered_templates(keyring: KeyRing) -> None:
    """CloudFormation takes at most 200 keys in a mapping level."""
    grouped = stackset.groups(_many(keyring, stackset.MAX_ACCOUNTS + 1, 1))
    assert {name: len(trusts) for name, trusts in grouped.items()} == {"saml-broker-1": 200, "saml-broker-2": 1}
    assert len(stackset.template(grouped["saml-broker-1"])["Mappings"][stackset.MAPPING]) == 200


def test_more_role_names_than_an_account_key_can_hold_is_a_clear_error(keyring: KeyRing) -> None:
    trusts = _many(keyring, 1, stackset.MAX_ROLES + 1)
    with pytest.raises(InvalidInput, match=f"at most {stackset.MAX_ROLES} role names"):
        stackset.template(trusts)
    assert len(stackset.template(_many(keyring, 1, stackset.MAX_ROLES))["Mappings"][stackset.MAPPING]["732000000000"]) \
        == 1 + 5 * stackset.MAX_ROLES <= 200
