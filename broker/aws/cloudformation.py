"""One account's trust (``broker.aws.trust.AccountTrust``) as a CloudFormation template (JSON).

The template holds the IAM SAML or OIDC provider and one ``AWS::IAM::Role`` per declared role
(RoleName, Path, MaxSessionDuration, AssumeRolePolicyDocument). No account id or partition is
written into it: each role trusts the provider through ``Ref`` (its ARN in the account the
stack runs in), so the same template deploys as a stack in the account or as a StackSet
instance in every account that declares the same roles, audience and region. CloudFormation creates the roles: a role that already exists
must be imported into the stack (or its trust edited by hand) — the template does not take over
an existing role. Permissions stay the administrator's: the roles get no policies here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from broker.aws.trust import AccountTrust, OidcProvider, RoleTrust, SamlProvider

PROVIDER_ID = "BrokerProvider"
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
        return {"Type": "AWS::IAM::SAMLProvider",
                "Properties": {"Name": p.name, "SamlMetadataDocument": p.metadata, **mode}}
    assert isinstance(p, OidcProvider)
    return {"Type": "AWS::IAM::OIDCProvider",
            "Properties": {"Url": p.url, "ClientIdList": list(p.client_ids)}}


def _template_policy(role: RoleTrust) -> dict[str, Any]:
    """The role's trust policy with the provider's ARN taken from the provider resource."""
    statements = [{**s, "Principal": {"Federated": {"Ref": PROVIDER_ID}}} for s in role.policy["Statement"]]
    return {**role.policy, "Statement": statements}


def template(trust: AccountTrust) -> dict[str, Any]:
    """The CloudFormation template (a JSON-ready dict) for one account."""
    resources: dict[str, Any] = {PROVIDER_ID: _provider_resource(trust)}
    outputs: dict[str, Any] = {"ProviderArn": {"Value": {"Ref": PROVIDER_ID}}}
    taken = {PROVIDER_ID.lower()}
    for role in trust.roles:
        logical = _logical_id(role.name, taken)
        resources[logical] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": role.name,
                "Path": role.path,
                "MaxSessionDuration": role.max_session_duration,
                "AssumeRolePolicyDocument": _template_policy(role),
                "Description": "Assumed through the federation broker",
            },
            "Metadata": {"Broker": {"MappedBy": list(role.mapped_by)}},
        }
        outputs[f"{logical}Arn"] = {"Value": {"Fn::GetAtt": [logical, "Arn"]}}
    return {
        "AWSTemplateFormatVersion": FORMAT_VERSION,
        "Description": f"Federation broker trust for account {trust.label}"[:1024],
        "Metadata": {"Broker": {"Account": trust.account_id, **({"Alias": trust.alias} if trust.alias else {}),
                                "Notes": list(trust.notes)}},
        "Resources": resources,
        "Outputs": outputs,
    }


def render(trust: AccountTrust) -> str:
    return json.dumps(template(trust), indent=2) + "\n"
