"""The CloudFormation `broker aws-setup` writes, deployed to moto's CloudFormation and read back
through moto's IAM: what a stack creates is what its template says, and the template is what
``broker.aws.trust`` derives from the mapping (the CLI tests' two accounts: SAML and web identity).

moto's CloudFormation has no model for ``AWS::IAM::SAMLProvider`` / ``AWS::IAM::OIDCProvider``:
it creates neither, a ``Ref`` to one resolves to nothing, and the role is then created with an
empty ``Principal`` while the stack still reports CREATE_COMPLETE. So each test creates the
provider through moto's IAM API from the template's own provider resource properties and deploys
the template unchanged with ``ProviderExists=true`` (the path of an account whose provider exists
already): the roles trust the provider by the ARN the template builds for the stack's account. The
default path (the stack creates the provider) is checked by cfn-lint only (test_aws_setup.py).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from broker.aws.cloudformation import PROVIDER_EXISTS, PROVIDER_ID
from broker.aws.trust import AccountTrust, SamlProvider
from broker.cli.aws_setup import aws_setup, write
from broker.minting.keys import KeyRing
from tests.conftest import make_config
from tests.federation.conftest import PUBLIC_URL, TWO_ACCOUNTS_MAPPING, KeyFilesOnDisk, MotoAccounts

pytestmark = pytest.mark.sts

DEV, PROD = "111111111111", "222222222222"
WAIT = {"Delay": 1, "MaxAttempts": 30}
"""moto completes a stack operation within the call; the waiter only reads the status (bounded)."""

# CloudFormation property -> IAM API parameter. A property the template gains and this table lacks
# fails the test (KeyError) instead of being left out of the provider silently.
PROVIDER_API: dict[str, tuple[str, str, dict[str, str]]] = {
    "AWS::IAM::SAMLProvider": ("create_saml_provider", "SAMLProviderArn",
                               {"Name": "Name", "SamlMetadataDocument": "SAMLMetadataDocument", "Tags": "Tags"}),
    "AWS::IAM::OIDCProvider": ("create_open_id_connect_provider", "OpenIDConnectProviderArn",
                               {"Url": "Url", "ClientIdList": "ClientIDList", "ThumbprintList": "ThumbprintList",
                                "Tags": "Tags"}),
}


@dataclass
class Stack:
    trust: AccountTrust
    template: dict[str, Any]
    provider_arn: str
    """What IAM answered when the provider was created from the template's resource."""
    name: str
    iam: Any
    cfn: Any

    def roles(self) -> dict[str, dict[str, Any]]:
        return template_roles(self.template)

    def provider_properties(self) -> dict[str, Any]:
        props: dict[str, Any] = self.template["Resources"][PROVIDER_ID]["Properties"]
        return props


def template_roles(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A template's roles: logical id -> properties."""
    return {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"}


def generate(tmp_path: Path, key_files: KeyFilesOnDisk, mapping: dict[str, Any]) -> dict[str, tuple[AccountTrust, Any]]:
    """What `broker aws-setup --out DIR` writes for a config with this mapping: account id -> (trust, template)."""
    config = make_config(tmp_path, server={"public_url": PUBLIC_URL}, keys=key_files.section(with_next=True),
                         sts={"mode": "aws"}, mapping=mapping)
    setup = aws_setup(config, [])
    written = {p.name: p for p in write(setup, tmp_path / "out", "cloudformation")}
    return {t.account_id: (t, json.loads(written[f"broker-trust-{t.alias or t.account_id}.cfn.json"].read_text(
        encoding="utf-8"))) for t in setup.accounts}


def _create_provider(iam: Any, resource: dict[str, Any]) -> str:
    operation, arn_key, names = PROVIDER_API[resource["Type"]]
    answer = getattr(iam, operation)(**{names[k]: v for k, v in resource["Properties"].items()})
    arn: str = answer[arn_key]
    return arn


def _provider_exists() -> list[dict[str, str]]:
    return [{"ParameterKey": PROVIDER_EXISTS, "ParameterValue": "true"}]


@pytest.fixture
def deploy(moto_accounts: MotoAccounts, key_files: KeyFilesOnDisk,
           tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], dict[str, Stack]]]:
    """Generate the templates for a mapping and deploy each as a stack in its account; removed after."""
    made: list[Stack] = []

    def run(mapping: dict[str, Any]) -> dict[str, Stack]:
        stacks = {}
        for account, (trust, body) in generate(tmp_path, key_files, mapping).items():
            iam, cfn = moto_accounts.client("iam", account), moto_accounts.client("cloudformation", account)
            provider_arn = _create_provider(iam, body["Resources"][PROVIDER_ID])
            stack = Stack(trust, body, provider_arn, f"broker-trust-{trust.alias}", iam, cfn)
            made.append(stack)
            cfn.create_stack(StackName=stack.name, TemplateBody=json.dumps(body), Parameters=_provider_exists())
            cfn.get_waiter("stack_create_complete").wait(StackName=stack.name, WaiterConfig=WAIT)
            stacks[account] = stack
        return stacks

    yield run
    for stack in made:
        stack.cfn.delete_stack(StackName=stack.name)
        stack.cfn.get_waiter("stack_delete_complete").wait(StackName=stack.name, WaiterConfig=WAIT)
        for role in stack.trust.roles:  # DeletionPolicy Retain: the stack leaves them behind
            with contextlib.suppress(stack.iam.exceptions.NoSuchEntityException):
                stack.iam.delete_role(RoleName=role.name)
        if isinstance(stack.trust.provider, SamlProvider):
            stack.iam.delete_saml_provider(SAMLProviderArn=stack.provider_arn)
        else:
            stack.iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=stack.provider_arn)


def _expected_policy(stack: Stack, policy: dict[str, Any]) -> dict[str, Any]:
    """trust.py's policy, its Federated principal being the provider IAM created."""
    statements = [{**s, "Principal": {"Federated": stack.provider_arn}} for s in policy["Statement"]]
    return {**policy, "Statement": statements}


def test_every_role_the_template_declares_is_in_iam_as_it_says(deploy: Callable[..., dict[str, Stack]]) -> None:
    stacks = deploy(TWO_ACCOUNTS_MAPPING)
    assert sorted(stacks) == [DEV, PROD]
    for stack in stacks.values():
        # the ARN the broker names (SAML: the PrincipalArn of AssumeRoleWithSAML) is the one IAM made
        assert stack.provider_arn == stack.trust.provider.arn
        declared = {props["RoleName"]: props for props in stack.roles().values()}
        assert sorted(declared) == sorted(r.name for r in stack.trust.roles) != []
        for role in stack.trust.roles:
            got = stack.iam.get_role(RoleName=role.name)["Role"]
            props = declared[role.name]
            assert (got["Path"], got["MaxSessionDuration"]) == (props["Path"], props["MaxSessionDuration"])
            assert (got["Path"], got["MaxSessionDuration"]) == (role.path, role.max_session_duration)
            assert got["AssumeRolePolicyDocument"] == _expected_policy(stack, role.policy)
            assert got["Arn"] == role.arn  # the RoleArn the broker sends to STS
            # permissions stay the administrator's: the template attaches nothing
            assert stack.iam.list_attached_role_policies(RoleName=role.name)["AttachedPolicies"] == []
            assert stack.iam.list_role_policies(RoleName=role.name)["PolicyNames"] == []
    # the SAML role keeps its 12-hour maximum (3600 would also be IAM's default)
    assert stacks[DEV].iam.get_role(RoleName="Admin")["Role"]["MaxSessionDuration"] == 43200


def test_the_providers_are_what_the_templates_say(deploy: Callable[..., dict[str, Stack]], keyring: KeyRing) -> None:
    stacks = deploy(TWO_ACCOUNTS_MAPPING)
    saml = stacks[DEV]
    got = saml.iam.get_saml_provider(SAMLProviderArn=saml.provider_arn)
    metadata = saml.provider_properties()["SamlMetadataDocument"]
    assert got["SAMLMetadataDocument"] == metadata
    certs = etree.fromstring(metadata.encode()).findall(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate")
    assert [base64.b64decode(c.text or "") for c in certs] == [k.cert_der for k in keyring.published]  # current + next

    web = stacks[PROD]
    got = web.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=web.provider_arn)
    props = web.provider_properties()
    assert "https://" + got["Url"] == props["Url"] == PUBLIC_URL  # IAM answers the URL without its scheme
    assert got["ClientIDList"] == props["ClientIdList"] == ["prod-client"]  # the account's audience


def test_deleting_the_stack_keeps_the_roles_people_use(deploy: Callable[..., dict[str, Stack]]) -> None:
    """DeletionPolicy Retain: a deleted stack (or a replaced resource) never deletes a role."""
    stack = deploy(TWO_ACCOUNTS_MAPPING)[DEV]
    stack.cfn.delete_stack(StackName=stack.name)
    stack.cfn.get_waiter("stack_delete_complete").wait(StackName=stack.name, WaiterConfig=WAIT)
    for role in stack.trust.roles:
        assert stack.iam.get_role(RoleName=role.name)["Role"]["Arn"] == role.arn


def test_stack_outputs_are_the_arns_iam_reports(deploy: Callable[..., dict[str, Stack]]) -> None:
    for stack in deploy(TWO_ACCOUNTS_MAPPING).values():
        (described,) = stack.cfn.describe_stacks(StackName=stack.name)["Stacks"]
        assert described["StackStatus"] == "CREATE_COMPLETE"
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
        expected = {f"{logical}Arn": stack.iam.get_role(RoleName=props["RoleName"])["Role"]["Arn"]
                    for logical, props in stack.roles().items()}
        assert outputs == {"ProviderArn": stack.provider_arn, **expected}


MOTO_ROLE_UPDATE = (
    "moto 5.2.1's CloudFormation updates an AWS::IAM::Role with MaxSessionDuration taken from the "
    "'RoleDescription' property (absent: 3600) and leaves AssumeRolePolicyDocument as it was "
    "(moto/iam/models.py Role.update_from_cloudformation_json)"
)


def test_a_mapping_change_reaches_iam_through_update_stack(deploy: Callable[..., dict[str, Stack]],
                                                          key_files: KeyFilesOnDisk, tmp_path: Path) -> None:
    stack = deploy(TWO_ACCOUNTS_MAPPING)[DEV]
    changed = copy.deepcopy(TWO_ACCOUNTS_MAPPING)
    roles = changed["accounts"][0]["roles"]
    assert roles[0]["name"] == "Admin"
    roles[0]["max_session_duration"] = 28800  # 43200 -> 8 h (still above the mapping's 4 h session)
    roles.append({"name": "Auditor", "path": "/audit/", "max_session_duration": 7200})
    trust, body = generate(tmp_path / "v2", key_files, changed)[DEV]
    assert {p["RoleName"]: p["MaxSessionDuration"] for p in template_roles(body).values()} == {
        "Admin": 28800, "Auditor": 7200}

    stack.cfn.update_stack(StackName=stack.name, TemplateBody=json.dumps(body), Parameters=_provider_exists())
    stack.cfn.get_waiter("stack_update_complete").wait(StackName=stack.name, WaiterConfig=WAIT)

    auditor = stack.iam.get_role(RoleName="Auditor")["Role"]  # a role added to the mapping is created
    expected = next(r for r in trust.roles if r.name == "Auditor")
    assert (auditor["Arn"], auditor["MaxSessionDuration"]) == (expected.arn, 7200)
    assert auditor["AssumeRolePolicyDocument"] == _expected_policy(stack, expected.policy)
    admin = stack.iam.get_role(RoleName="Admin")["Role"]
    if admin["MaxSessionDuration"] == 3600:
        pytest.xfail(MOTO_ROLE_UPDATE)
    assert admin["MaxSessionDuration"] == 28800
