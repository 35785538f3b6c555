"""`broker aws-setup`: each account's IAM provider and role trust, derived from the mapping, as
../shared/AWS.md and the README's "Registering the broker in AWS" say; the CloudFormation passes
cfn-lint with no errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from lxml import etree
from typer.testing import CliRunner

from broker.app import build_services
from broker.audit import AuditContext
from broker.aws.cloudformation import PROVIDER_ID, import_resources, import_template, render, template
from broker.aws.trust import BrokerSide, OidcProvider, SamlProvider, account_trust, plan, resolve_accounts
from broker.cli.server import app as cli
from broker.cli.server import ensure_demo_keys
from broker.config import load_config
from broker.db.store import SqlMappingStore
from broker.errors import NotFound
from broker.mapping.model import RoleSpec
from broker.mapping.snapshot import AccountRecord, MappingRecord, MappingSnapshot, RoleRecord, RuleRecord
from broker.minting.keys import KeyRing
from tests.conftest import require_module
from tests.federation.conftest import make_idp

ROOT = Path(__file__).resolve().parents[2]
METADATA = "<md:EntityDescriptor/>"
DEV_POLICIES = ("arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::111111111111:policy/team/Deploy")


def _snapshot(*, rules: tuple[RuleRecord, ...] = ()) -> MappingSnapshot:
    accounts = [
        AccountRecord("111111111111", "dev", "aws", "eu-west-1", None, "saml", "broker", None),
        AccountRecord("222222222222", "prod", "aws", "us-east-1", None, "web_identity", None, "prod-client"),
        AccountRecord("333333333333", "gov", "aws-us-gov", "us-gov-west-1", None, "saml", "corp-idp", None),
        AccountRecord("444444444444", "china", "aws-cn", "cn-north-1", None, "web_identity", None, None),
    ]
    roles = [
        RoleRecord("111111111111", "Admin", "/", 43200, DEV_POLICIES),
        RoleRecord("111111111111", "ReadOnly", "/audit/", 3600),
        RoleRecord("222222222222", "Deployer", "/", 7200),
        RoleRecord("333333333333", "Admin", "/", 14400, ("arn:aws-us-gov:iam::aws:policy/AdministratorAccess",)),
        RoleRecord("444444444444", "Admin", "/", 3600),
    ]
    mappings = [
        MappingRecord("1", "aws-admins", "aws-admins", "111111111111", "Admin", None, True, True, "config"),
        MappingRecord("2", "deployers", "deployers", "222222222222", "Deployer", 3600, False, True, "config"),
        MappingRecord("3", "gov-admins", "gov-admins", "333333333333", "Admin", None, True, True, "config"),
        MappingRecord("4", "cn-admins", "cn-admins", "444444444444", "Admin", None, True, True, "config"),
    ]
    return MappingSnapshot.build(accounts, roles, mappings, rules)


BROKER = BrokerSide(issuer="https://broker.example.com", saml_metadata=METADATA)


def _role(snapshot: MappingSnapshot, account: str, name: str, broker: BrokerSide = BROKER) -> Any:
    trust = account_trust(snapshot, account, broker)
    return next(r for r in trust.roles if r.name == name)


def test_saml_role_trusts_the_provider_for_the_three_actions_on_the_recipient() -> None:
    role = _role(_snapshot(), "111111111111", "Admin")
    assert role.policy == {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::111111111111:saml-provider/broker"},
            "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession", "sts:SetSourceIdentity"],
            # the recipient in use first, then the account region's other form (switching
            # saml_idp.recipient must not break the trust)
            "Condition": {"StringEquals": {"SAML:aud": [
                "https://signin.aws.amazon.com/saml", "https://eu-west-1.signin.aws.amazon.com/saml"]}},
        }],
    }
    assert role.max_session_duration == 43200
    assert role.arn == "arn:aws:iam::111111111111:role/Admin"
    assert role.mapped_by == ("aws-admins",)


def test_saml_aud_is_the_recipient_the_idp_sends_regional_included(keyring: KeyRing) -> None:
    regional = make_idp(keyring, regional_recipient=True)
    broker = BrokerSide(issuer=BROKER.issuer, saml_metadata=METADATA, saml_recipient=regional.recipient)
    dev = _role(_snapshot(), "111111111111", "Admin", broker)
    assert dev.policy["Statement"][0]["Condition"] == {
        "StringEquals": {"SAML:aud": [
            "https://eu-west-1.signin.aws.amazon.com/saml", "https://signin.aws.amazon.com/saml"]}
    }
    gov = _role(_snapshot(), "333333333333", "Admin", broker)  # GovCloud has no regional sign-in
    statement = gov.policy["Statement"][0]
    assert statement["Principal"] == {"Federated": "arn:aws-us-gov:iam::333333333333:saml-provider/corp-idp"}
    assert statement["Condition"] == {"StringEquals": {"SAML:aud": "https://signin.amazonaws-us-gov.com/saml"}}
    assert gov.arn == "arn:aws-us-gov:iam::333333333333:role/Admin"


def test_web_identity_role_trusts_the_oidc_provider_on_the_account_audience() -> None:
    trust = account_trust(_snapshot(), "222222222222", BROKER)
    assert trust.provider == OidcProvider(
        url="https://broker.example.com",
        arn="arn:aws:iam::222222222222:oidc-provider/broker.example.com",
        client_ids=("prod-client",),
        condition_prefix="broker.example.com",
    )
    (role,) = trust.roles
    assert role.policy == {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::222222222222:oidc-provider/broker.example.com"},
            "Action": ["sts:AssumeRoleWithWebIdentity", "sts:TagSession", "sts:SetSourceIdentity"],
            "Condition": {"StringEquals": {"broker.example.com:aud": "prod-client"}},
        }],
    }
    assert role.max_session_duration == 7200  # the role's maximum, not the mapping's 3600 cap
    assert trust.notes == ()


def test_web_identity_default_audience_is_the_partitions() -> None:
    trust = account_trust(_snapshot(), "444444444444", BROKER)
    assert isinstance(trust.provider, OidcProvider)
    assert trust.provider.client_ids == ("sts.amazonaws.com.cn",)
    assert trust.provider.arn == "arn:aws-cn:iam::444444444444:oidc-provider/broker.example.com"
    assert trust.roles[0].policy["Statement"][0]["Condition"] == {
        "StringEquals": {"broker.example.com:aud": "sts.amazonaws.com.cn"}
    }


def test_an_issuer_iam_refuses_is_a_note() -> None:
    trust = account_trust(_snapshot(), "222222222222", BrokerSide(issuer="http://127.0.0.1:8000", saml_metadata=""))
    assert any("not https" in n for n in trust.notes) and any("port" in n for n in trust.notes)


def test_naming_rules_are_a_note_never_a_guessed_role() -> None:
    rule = RuleRecord("adfs", r"^AWS-(?P<account>\d{12})-(?P<role>\w+)$", None, True, True, "config")
    trust = account_trust(_snapshot(rules=(rule,)), "111111111111", BROKER)
    assert [r.name for r in trust.roles] == ["Admin", "ReadOnly"]  # the declared roles, nothing invented
    assert any("adfs" in n and rule.pattern in n for n in trust.notes)
    assert any("ReadOnly is declared but no mapping names it" in n for n in trust.notes)
    read_only = next(r for r in trust.roles if r.name == "ReadOnly")
    assert read_only.arn == "arn:aws:iam::111111111111:role/audit/ReadOnly" and read_only.mapped_by == ()


def test_accounts_by_id_or_alias_and_an_unknown_one_is_named() -> None:
    snapshot = _snapshot()
    assert resolve_accounts(snapshot, ["prod", "111111111111", "PROD"]) == ["222222222222", "111111111111"]
    assert resolve_accounts(snapshot, []) == sorted(snapshot.accounts)
    with pytest.raises(NotFound, match="'staging'"):
        plan(snapshot, BROKER, ["staging"])


def _lint_errors(text: str) -> list[str]:
    """cfn-lint's errors (E rules) for a template; warnings and informational findings are not errors."""
    require_module("cfnlint")  # the `test` extra; skipped locally without it, a failure in CI
    from cfnlint.api import lint

    return [f"{m.rule.id} {m.message}" for m in lint(text) if m.rule.id.startswith("E")]


def test_cloudformation_passes_cfn_lint_and_says_what_the_trust_says(keyring: KeyRing) -> None:
    metadata = make_idp(keyring).metadata().decode()
    broker = BrokerSide(issuer=BROKER.issuer, saml_metadata=metadata)
    snapshot = _snapshot()
    for account in snapshot.accounts:
        trust = account_trust(snapshot, account, broker)
        text = render(trust)
        assert _lint_errors(text) == [], account
        body = json.loads(text)
        provider = body["Resources"][PROVIDER_ID]
        # the provider the stack creates, or (ProviderExists=true) the one the broker names, in the stack's account
        existing = trust.provider.arn.replace(f"arn:{trust.partition}:iam::{account}:",
                                              "arn:${AWS::Partition}:iam::${AWS::AccountId}:")
        provider_arn = {"Fn::If": ["CreateProvider", {"Ref": PROVIDER_ID}, {"Fn::Sub": existing}]}
        assert body["Outputs"]["ProviderArn"] == {"Value": provider_arn}
        roles = {k: v for k, v in body["Resources"].items() if v["Type"] == "AWS::IAM::Role"}
        assert len(roles) == len(trust.roles)
        for role in trust.roles:
            resource = next(r for r in roles.values() if r["Properties"]["RoleName"] == role.name)
            props = resource["Properties"]
            assert props["MaxSessionDuration"] == role.max_session_duration and props["Path"] == role.path
            # deleting the stack (or replacing a role) never deletes a role people use
            assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain")
            if role.managed_policy_arns:  # the partition and the stack's own account as pseudo parameters
                arns = [a.replace(trust.partition, "${AWS::Partition}", 1).replace(account, "${AWS::AccountId}")
                        for a in role.managed_policy_arns]
                assert props["ManagedPolicyArns"] == [{"Fn::Sub": a} for a in arns]
            else:  # no property at all: CloudFormation leaves the role's attached policies alone
                assert "ManagedPolicyArns" not in props
            (statement,) = props["AssumeRolePolicyDocument"]["Statement"]
            (expected,) = role.policy["Statement"]
            assert statement == {**expected, "Principal": {"Federated": provider_arn}}
        assert account not in json.dumps(body["Resources"])  # account-neutral resources: a StackSet works
        assert (provider.pop("DeletionPolicy"), provider.pop("UpdateReplacePolicy")) == ("Retain", "Retain")
        if isinstance(trust.provider, SamlProvider):
            assert provider == {"Type": "AWS::IAM::SAMLProvider", "Condition": "CreateProvider",
                                "Properties": {"Name": trust.provider.name, "SamlMetadataDocument": metadata}}
        else:
            assert (provider["Type"], provider["Condition"]) == ("AWS::IAM::OIDCProvider", "CreateProvider")
            assert provider["Properties"] == {"Url": "https://broker.example.com",
                                              "ClientIdList": list(trust.provider.client_ids)}


def test_the_mappings_policy_arns_reach_the_role_trust() -> None:
    assert _role(_snapshot(), "111111111111", "Admin").managed_policy_arns == DEV_POLICIES
    assert _role(_snapshot(), "111111111111", "ReadOnly").managed_policy_arns == ()


def test_the_import_change_set_files_name_every_role_and_lint(keyring: KeyRing) -> None:
    broker = BrokerSide(issuer=BROKER.issuer, saml_metadata=make_idp(keyring).metadata().decode())
    trust = account_trust(_snapshot(), "111111111111", broker)
    full = template(trust)
    resources = import_resources(trust)
    # the shape of CreateChangeSet's ResourcesToImport (CloudFormation API reference: ResourceToImport)
    assert resources == [
        {"ResourceType": "AWS::IAM::Role", "LogicalResourceId": "RoleAdmin", "ResourceIdentifier": {"RoleName": "Admin"}},
        {"ResourceType": "AWS::IAM::Role", "LogicalResourceId": "RoleReadOnly",
         "ResourceIdentifier": {"RoleName": "ReadOnly"}},
    ]
    body = import_template(trust)
    assert _lint_errors(json.dumps(body)) == []
    # an import may only add the resources it imports: no provider, no Outputs; each one retained
    assert set(body) == {"AWSTemplateFormatVersion", "Description", "Resources"}
    assert sorted(body["Resources"]) == sorted(r["LogicalResourceId"] for r in resources)
    for logical, resource in body["Resources"].items():
        assert full["Resources"][logical]["Type"] == resource["Type"] == "AWS::IAM::Role"
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain")
        props = resource["Properties"]
        assert props["RoleName"] == full["Resources"][logical]["Properties"]["RoleName"]
        principal = props["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        assert principal == {"Federated": "arn:aws:iam::111111111111:saml-provider/broker"}
        assert "ManagedPolicyArns" not in props  # the import records no permissions


def test_role_logical_ids_stay_unique(keyring: KeyRing) -> None:
    accounts = [AccountRecord("111111111111", None, "aws", "us-east-1", None, "saml", "broker", None)]
    roles = [RoleRecord("111111111111", n, "/", 3600) for n in ("a.b", "a-b", "ab")]
    broker = BrokerSide(issuer=BROKER.issuer, saml_metadata=make_idp(keyring).metadata().decode())
    body = template(account_trust(MappingSnapshot.build(accounts, roles, []), "111111111111", broker))
    assert len([r for r in body["Resources"].values() if r["Type"] == "AWS::IAM::Role"]) == 3
    assert _lint_errors(json.dumps(body)) == []


# ---- the command ----


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["aws-setup", *args], env=env)


def test_command_writes_one_linted_template_per_account(config_file: Path, tmp_path: Path, keyring: KeyRing) -> None:
    out = tmp_path / "out"
    result = _run("--config", str(config_file), "--format", "cloudformation", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "the mapping comes from the configuration file only" in result.output  # no database yet
    assert not (tmp_path / "b.db").exists()  # aws-setup never creates the database
    files = sorted(p.name for p in out.iterdir() if p.name.endswith(".cfn.json") and ".import." not in p.name)
    assert files == ["broker-trust-sandbox-dev.cfn.json", "broker-trust-sandbox-prod.cfn.json"]
    for name in files:
        assert _lint_errors((out / name).read_text()) == [], name
        # next to each template: the IMPORT change set's template and resources-to-import
        stem = name.removesuffix(".cfn.json")
        assert _lint_errors((out / f"{stem}.import.cfn.json").read_text()) == [], name
        to_import = json.loads((out / f"{stem}.import.json").read_text())
        roles = {k for k, v in json.loads((out / name).read_text())["Resources"].items() if v["Type"] == "AWS::IAM::Role"}
        assert {r["LogicalResourceId"] for r in to_import} == roles
    dev = json.loads((out / files[0]).read_text())
    metadata = dev["Resources"][PROVIDER_ID]["Properties"]["SamlMetadataDocument"]
    certs = etree.fromstring(metadata.encode()).findall(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate")
    assert [base64.b64decode(c.text or "") for c in certs] == [k.cert_der for k in keyring.published]  # current + next
    prod = json.loads((out / files[1]).read_text())
    (role,) = [r for r in prod["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"] == {
        "StringEquals": {"broker.example.com:aud": "prod-client"}
    }


def test_command_reads_the_database_when_it_is_usable(config_file: Path) -> None:
    services = build_services(load_config(config_file, env={}), env={})  # what a deployed broker did: migrate + sync
    SqlMappingStore(services.engine).create_role(  # an API-managed role: only the database knows it
        "sandbox-dev", RoleSpec(name="Auditor", path="/api/", max_session_duration=7200), AuditContext(actor="test")
    )
    services.engine.dispose()
    result = _run("--config", str(config_file), "--account", "sandbox-dev")
    assert result.exit_code == 0, result.output
    assert "configuration file only" not in result.output
    body = json.loads(result.stdout)
    assert body["Resources"]["RoleAdmin"]["Properties"]["MaxSessionDuration"] == 43200
    auditor = body["Resources"]["RoleAuditor"]["Properties"]
    assert (auditor["RoleName"], auditor["Path"], auditor["MaxSessionDuration"]) == ("Auditor", "/api/", 7200)


def test_command_names_an_unknown_account(config_file: Path) -> None:
    result = _run("--config", str(config_file), "--account", "sandbox-dve")
    assert result.exit_code == 1
    assert "no account 'sandbox-dve'" in result.stderr and "sandbox-dev" in result.stderr


def test_command_names_the_line_of_a_policy_arn_of_another_partition(tmp_path: Path, config_file: Path) -> None:
    data = yaml.safe_load(config_file.read_text())
    data["mapping"]["accounts"][0]["roles"][0]["managed_policy_arns"] = ["arn:aws-cn:iam::aws:policy/ReadOnlyAccess"]
    config_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    result = _run("--config", str(config_file), "--out", str(out))
    assert result.exit_code == 2
    assert ("mapping.accounts[0].roles[0].managed_policy_arns[0]: role 'Admin': managed policy "
            "'arn:aws-cn:iam::aws:policy/ReadOnlyAccess' is in partition 'aws-cn' but the account is in 'aws'") in result.stderr
    assert not out.exists()  # nothing written


def test_command_refuses_other_formats_and_several_accounts_on_stdout(config_file: Path) -> None:
    assert _run("--config", str(config_file), "--format", "pulumi").exit_code == 2
    several = _run("--config", str(config_file))
    assert several.exit_code == 2 and "--out" in several.stderr


def test_command_on_the_demo_config(tmp_path: Path) -> None:
    ensure_demo_keys(tmp_path)
    env = {"BROKER_DEMO_DIR": str(tmp_path), "BROKER_DEMO_PORT": "8000"}
    out = tmp_path / "out"
    result = _run("--config", str(ROOT / "config" / "demo.yaml"), "--out", str(out), env=env)
    assert result.exit_code == 0, result.output
    assert "naming rule 'adfs-style'" in result.stderr  # rules cannot be enumerated: said, not guessed
    for path in out.glob("*.cfn.json"):
        assert _lint_errors(path.read_text()) == [], path.name
    dev = json.loads((out / "broker-trust-sandbox-dev.cfn.json").read_text())
    names = {r["Properties"]["RoleName"] for r in dev["Resources"].values() if r["Type"] == "AWS::IAM::Role"}
    assert names == {"Admin", "Developer", "ReadOnly"}
