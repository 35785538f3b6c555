"""Several accounts' trust (``broker.aws.trust.AccountTrust``) as ONE CloudFormation template,
for a StackSet: every stack instance reads its own account's values from the template's
``Mappings`` (``Fn::FindInMap [Accounts, !Ref AWS::AccountId, ...]``).

What differs between accounts goes into the mapping: the audiences (``SAML:aud`` holds the
account region's regional Recipient; the OIDC client id), and per role whether the account
declares it, its path, MaxSessionDuration and managed policy ARNs. A role some accounts do not
declare has a condition of its own, so the same resources serve accounts that declare different
roles. The provider, the ``ProviderExists`` parameter and the ``Retain`` policies are those of
``broker.aws.cloudformation``. An account missing from the mapping fails its stack instance
(FindInMap finds no key): a StackSet deployed to an account the mapping does not cover stops
there instead of creating a trust for it.

Accounts share one template only when their provider is the same (partition, SAML provider
name and encryption mode, or the OIDC issuer): ``groups`` sorts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from broker.aws.cloudformation import (
    CREATE_PROVIDER,
    FORMAT_VERSION,
    PROVIDER_EXISTS,
    PROVIDER_ID,
    _logical_id,
    _parameters,
    _provider_arn,
    _provider_resource,
    _retained,
)
from broker.aws.trust import ROLE_DESCRIPTION, AccountTrust, OidcProvider, SamlProvider
from broker.errors import InvalidInput

MAPPING = "Accounts"
MAX_ACCOUNTS = 200
"""CloudFormation quotas: at most 200 keys in a mapping level, and 200 attributes per key."""
MAX_ROLES = (200 - 1) // 5
"""An account's attributes: its Audience, and five per role name of the group."""
TEMPLATE_BODY_LIMIT = 51_200
"""Bytes ``--template-body`` takes; a larger template goes through S3 (``--template-url``, 1 MB)."""
_NONE = "none"
"""A mapping value cannot be an empty list: a role without managed policies holds this (unused)."""


def group_name(trust: AccountTrust) -> str:
    """Which StackSet template an account belongs in: accounts with the same provider share one."""
    p = trust.provider
    parts = [trust.partition] if trust.partition != "aws" else []
    if isinstance(p, SamlProvider):
        parts += ["saml", p.name] + ([f"encrypted-{p.assertion_encryption_mode.lower()}"]
                                     if p.assertion_encryption_mode else [])
    else:
        parts.append("oidc")
    return "-".join(parts)


def groups(trusts: Iterable[AccountTrust]) -> dict[str, list[AccountTrust]]:
    """The accounts by template: one per provider, numbered parts of at most ``MAX_ACCOUNTS``
    accounts when more share it (CloudFormation's limit of keys in one mapping level)."""
    found: dict[str, list[AccountTrust]] = {}
    for trust in trusts:
        found.setdefault(group_name(trust), []).append(trust)
    parts: dict[str, list[AccountTrust]] = {}
    for name, group in found.items():
        chunks = [group[i:i + MAX_ACCOUNTS] for i in range(0, len(group), MAX_ACCOUNTS)]
        for n, chunk in enumerate(chunks, 1):
            parts[name if len(chunks) == 1 else f"{name}-{n}"] = chunk
    return parts


def _in_map(attribute: str) -> dict[str, Any]:
    return {"Fn::FindInMap": [MAPPING, {"Ref": "AWS::AccountId"}, attribute]}


def _is(attribute: str) -> dict[str, Any]:
    return {"Fn::Equals": [_in_map(attribute), "true"]}


def _audience(trust: AccountTrust) -> list[str] | str:
    """The account's audience, as its own template's trust conditions hold it: the SAML:aud list,
    or the OIDC client id (which the provider lists too)."""
    if trust.roles:
        ((_, value),) = trust.roles[0].policy["Statement"][0]["Condition"]["StringEquals"].items()
        return list(value) if isinstance(value, list) else value
    p = trust.provider
    return p.client_ids[0] if isinstance(p, OidcProvider) else [_NONE]  # SAML without roles: not read


def template(trusts: Sequence[AccountTrust]) -> dict[str, Any]:
    """The StackSet template (a JSON-ready dict) for accounts of one group (``groups``)."""
    if not trusts or len({group_name(t) for t in trusts}) != 1:
        raise ValueError("a StackSet template is for accounts with the same provider: use groups()")
    first = trusts[0]
    taken = {PROVIDER_ID.lower()}
    logical: dict[str, str] = {}  # role name (lower case) -> logical id, the first spelling met
    names: dict[str, str] = {}
    for trust in trusts:
        for each in trust.roles:
            if each.name.lower() not in logical:
                logical[each.name.lower()] = _logical_id(each.name, taken)
                names[each.name.lower()] = each.name
    if len(logical) > MAX_ROLES or len(trusts) > MAX_ACCOUNTS:
        raise InvalidInput(
            f"a StackSet template holds at most {MAX_ROLES} role names and {MAX_ACCOUNTS} accounts (CloudFormation's "
            f"mapping quotas); these {len(trusts)} accounts declare {len(logical)}: give --account to split them, "
            "or use the per-account templates (without --stackset)")
    mappings: dict[str, dict[str, Any]] = {}
    for trust in trusts:
        values: dict[str, Any] = {"Audience": _audience(trust)}
        declared = {r.name.lower(): r for r in trust.roles}
        for lower, lid in logical.items():
            role = declared.get(lower)
            arns = list(role.managed_policy_arns) if role is not None else []
            values[lid] = "true" if role is not None else "false"
            values[f"{lid}Path"] = role.path if role is not None else "/"
            values[f"{lid}MaxSession"] = role.max_session_duration if role is not None else 3600
            values[f"{lid}HasPolicies"] = "true" if arns else "false"
            values[f"{lid}Policies"] = arns or [_NONE]
        mappings[trust.account_id] = values
    provider_arn = _provider_arn(first)
    conditions: dict[str, Any] = {CREATE_PROVIDER: {"Fn::Equals": [{"Ref": PROVIDER_EXISTS}, "false"]}}
    resources: dict[str, Any] = {PROVIDER_ID: _retained(_provider_resource(first))}
    if isinstance(first.provider, OidcProvider):
        resources[PROVIDER_ID]["Properties"]["ClientIdList"] = [_in_map("Audience")]
    outputs: dict[str, Any] = {"ProviderArn": {"Value": provider_arn}}
    sample = next((t.roles[0] for t in trusts if t.roles), None)
    policy: dict[str, Any] = {}
    if sample is not None:  # every role's trust: the sample's, its audience read from the mapping
        ((key, _),) = sample.policy["Statement"][0]["Condition"]["StringEquals"].items()
        statement = {**sample.policy["Statement"][0], "Principal": {"Federated": provider_arn},
                     "Condition": {"StringEquals": {key: _in_map("Audience")}}}
        policy = {**sample.policy, "Statement": [statement]}
    for lower, lid in logical.items():
        conditions[f"Has{lid}"] = _is(lid)
        conditions[f"{lid}WithPolicies"] = {"Fn::And": [{"Condition": f"Has{lid}"}, _is(f"{lid}HasPolicies")]}
        resources[lid] = _retained({
            "Type": "AWS::IAM::Role",
            "Condition": f"Has{lid}",
            "Properties": {
                "RoleName": names[lower],
                "Path": _in_map(f"{lid}Path"),
                "MaxSessionDuration": _in_map(f"{lid}MaxSession"),
                "AssumeRolePolicyDocument": policy,
                "Description": ROLE_DESCRIPTION,
                "ManagedPolicyArns": {"Fn::If": [f"{lid}WithPolicies", _in_map(f"{lid}Policies"),
                                                 {"Ref": "AWS::NoValue"}]},
            },
        })
        outputs[f"{lid}Arn"] = {"Condition": f"Has{lid}", "Value": {"Fn::GetAtt": [lid, "Arn"]}}
    accounts = [{"Account": t.account_id, **({"Alias": t.alias} if t.alias else {}), "Notes": list(t.notes)}
                for t in trusts]
    return {
        "AWSTemplateFormatVersion": FORMAT_VERSION,
        "Description": f"Federation broker trust for {len(trusts)} account(s), as a StackSet ({group_name(first)})",
        "Metadata": {"Broker": {"Accounts": accounts}},
        "Parameters": _parameters(first),
        "Mappings": {MAPPING: mappings},
        "Conditions": conditions,
        "Resources": resources,
        "Outputs": outputs,
    }
