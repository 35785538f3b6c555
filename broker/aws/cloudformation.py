"""One account's trust (``broker.aws.trust.AccountTrust``) as a CloudFormation template (JSON).

The template holds the IAM SAML or OIDC provider and one ``AWS::IAM::Role`` per declared role
(RoleName, Path, MaxSessionDuration, AssumeRolePolicyDocument, and ManagedPolicyArns when the
mapping names any). No account id or partition is written into it: each role trusts the provider
through ``Ref`` (its ARN in the account the stack runs in; ``Fn::Sub`` of the stack's partition
and account for an existing one), so the same template deploys as a stack in the account or as a
StackSet instance in every account that declares the same roles, audience and region.

An account may already hold the provider (made by hand, as the README's manual steps do, or by
another stack; IAM keeps one OIDC provider per URL, so a second create fails): the parameter
``ProviderExists=true`` leaves the provider out of the stack and has the roles trust the
existing one by the ARN the broker itself names in STS calls (``saml_provider`` /
the issuer host), built from the stack's own partition and account.

Permissions stay the administrator's: a role without managed policy ARNs in the mapping gets no
ManagedPolicyArns property, so CloudFormation never touches the policies attached to it. Every
resource has ``DeletionPolicy`` and ``UpdateReplacePolicy`` ``Retain``: deleting the stack (or a
replacement) never deletes a role people use or the provider the roles trust, and an existing role
can be imported into the stack (CloudFormation requires a DeletionPolicy on imported resources).
An import change set may only add the resources it imports (no new provider, no Outputs), so the
import has its own template, ``import_template``, and its resources-to-import list,
``import_resources`` (CloudFormation User Guide: resource-import-new-stack; API ResourceToImport).
"""

from __future__ import annotations

import json
import re
from typing import Any

from broker.aws.trust import ROLE_DESCRIPTION, AccountTrust, OidcProvider, RoleTrust, SamlProvider

PROVIDER_ID = "BrokerProvider"
PROVIDER_EXISTS = "ProviderExists"
"""The parameter: ``true`` when the account's provider exists already (the stack leaves it alone)."""
CREATE_PROVIDER = "CreateProvider"
FORMAT_VERSION = "2010-09-09"


def _logical_id(name: str, taken: set[str]) -> str:
    """A resource logical id (alphanumeric) for a role name, unique within the template."""
    base = "Role" + (re.sub(r"[^A-Za-z0-9]", "", name) or "X")
    candidate, n = base, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{base}{n}"
    taken.add(candidate.lower())
    return candidate


def _provider_resource(trust: AccountTrust) -> dict[str, Any]:
    p = trust.provider
    if isinstance(p, SamlProvider):
        # AddPrivateKey is left out: the broker never holds that key, and the property is
        # create-only (a change replaces the provider, and its ACS id with it)
        mode = {"AssertionEncryptionMode": p.assertion_encryption_mode} if p.assertion_encryption_mode else {}
        return {"Type": "AWS::IAM::SAMLProvider", "Condition": CREATE_PROVIDER,
                "Properties": {"Name": p.name, "SamlMetadataDocument": p.metadata, **mode}}
    assert isinstance(p, OidcProvider)
    return {"Type": "AWS::IAM::OIDCProvider", "Condition": CREATE_PROVIDER,
            "Properties": {"Url": p.url, "ClientIdList": list(p.client_ids)}}


def _existing_provider_arn(trust: AccountTrust) -> str:
    """The ARN the provider has in the stack's account (``Fn::Sub``): the one trust.py names."""
    p = trust.provider
    kind = f"saml-provider/{p.name}" if isinstance(p, SamlProvider) else f"oidc-provider/{p.condition_prefix}"
    return "arn:${AWS::Partition}:iam::${AWS::AccountId}:" + kind


def _provider_arn(trust: AccountTrust) -> dict[str, Any]:
    return {"Fn::If": [CREATE_PROVIDER, {"Ref": PROVIDER_ID}, {"Fn::Sub": _existing_provider_arn(trust)}]}


def _parameters(trust: AccountTrust) -> dict[str, Any]:
    kind = "SAML" if isinstance(trust.provider, SamlProvider) else "OIDC"
    return {PROVIDER_EXISTS: {
        "Type": "String", "AllowedValues": ["false", "true"], "Default": "false",
        "Description": f"true: the account's IAM {kind} provider exists already; the roles trust it and "
                       "the stack leaves it (and its metadata) alone",
    }}


def _role_ids(trust: AccountTrust) -> list[tuple[str, RoleTrust]]:
    """Each role with its logical id (the same in the template, the import template and the list)."""
    taken = {PROVIDER_ID.lower()}
    return [(_logical_id(role.name, taken), role) for role in trust.roles]


def _retained(resource: dict[str, Any]) -> dict[str, Any]:
    return {**resource, "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}


def _policy_arn(arn: str, account_id: str) -> dict[str, Any]:
    """A managed policy ARN with the partition, and the account (the stack's own: the mapping
    allows no other but ``aws``), as pseudo parameters: the template stays account-neutral (a
    StackSet). ``${`` in the rest is escaped as Fn::Sub wants (``${!``)."""
    _, _, _, _, owner, resource = arn.split(":", 5)
    owner = "${AWS::AccountId}" if owner == account_id else owner
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::{owner}:{resource.replace('${', '${!')}"}


def _template_policy(role: RoleTrust, provider_arn: dict[str, Any]) -> dict[str, Any]:
    """The role's trust policy with the provider's ARN taken from the stack."""
    statements = [{**s, "Principal": {"Federated": provider_arn}} for s in role.policy["Statement"]]
    return {**role.policy, "Statement": statements}


def template(trust: AccountTrust) -> dict[str, Any]:
    """The CloudFormation template (a JSON-ready dict) for one account."""
    provider_arn = _provider_arn(trust)
    resources: dict[str, Any] = {PROVIDER_ID: _retained(_provider_resource(trust))}
    outputs: dict[str, Any] = {"ProviderArn": {"Value": provider_arn}}
    for logical, role in _role_ids(trust):
        arns = [_policy_arn(arn, trust.account_id) for arn in role.managed_policy_arns]
        policies = {"ManagedPolicyArns": arns} if arns else {}
        resources[logical] = _retained({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": role.name,
                "Path": role.path,
                "MaxSessionDuration": role.max_session_duration,
                "AssumeRolePolicyDocument": _template_policy(role, provider_arn),
                "Description": ROLE_DESCRIPTION,
                **policies,
            },
            "Metadata": {"Broker": {"MappedBy": list(role.mapped_by)}},
        })
        outputs[f"{logical}Arn"] = {"Value": {"Fn::GetAtt": [logical, "Arn"]}}
    return {
        "AWSTemplateFormatVersion": FORMAT_VERSION,
        "Description": f"Federation broker trust for account {trust.label}"[:1024],
        "Metadata": {"Broker": {"Account": trust.account_id, **({"Alias": trust.alias} if trust.alias else {}),
                                "Notes": list(trust.notes)}},
        "Parameters": _parameters(trust),
        "Conditions": {CREATE_PROVIDER: {"Fn::Equals": [{"Ref": PROVIDER_EXISTS}, "false"]}},
        "Resources": resources,
        "Outputs": outputs,
    }


def import_resources(trust: AccountTrust) -> list[dict[str, Any]]:
    """The ``--resources-to-import`` list of an IMPORT change set: every declared role, by name."""
    return [{"ResourceType": "AWS::IAM::Role", "LogicalResourceId": logical, "ResourceIdentifier": {"RoleName": role.name}}
            for logical, role in _role_ids(trust)]


def import_template(trust: AccountTrust) -> dict[str, Any]:
    """The template of the IMPORT change set that brings existing roles into a stack: the roles
    only (an import may not add the provider or Outputs), each as it will be named, retained, with
    the trust policy naming the provider's ARN. CloudFormation changes nothing on an import; the
    update with ``template`` that follows adds the provider and writes MaxSessionDuration,
    Description and ManagedPolicyArns (the README, "Registering the broker in AWS": trust-only
    takeover)."""
    resources = {
        logical: _retained({"Type": "AWS::IAM::Role",
                            "Properties": {"RoleName": role.name, "Path": role.path,
                                           "AssumeRolePolicyDocument": role.policy}})
        for logical, role in _role_ids(trust)
    }
    return {"AWSTemplateFormatVersion": FORMAT_VERSION,
            "Description": f"Federation broker trust for account {trust.label}: existing roles to import"[:1024],
            "Resources": resources}


def _json(body: Any) -> str:
    return json.dumps(body, indent=2) + "\n"


def render(trust: AccountTrust) -> str:
    return _json(template(trust))


def render_import(trust: AccountTrust) -> tuple[str, str]:
    """The import change set's template and its resources-to-import file."""
    return _json(import_template(trust)), _json(import_resources(trust))
