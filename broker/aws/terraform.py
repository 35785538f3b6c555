"""One account's trust (``broker.aws.trust.AccountTrust``) as a Terraform module (HCL): the
same resources as ``broker.aws.cloudformation``.

One module per account, with no variables: what differs between accounts (provider kind,
metadata or audience, the declared roles, every role's ``SAML:aud`` list) is the mapping's, so
it is generated, not typed in by whoever applies it; a variable for it would only be a second
place for the same fact to go wrong. Like the CloudFormation template the module names no
account id or partition: each role trusts the provider through its ``arn`` attribute, and the
root configuration chooses the account by the ``aws`` provider it passes (``providers = { aws =
aws.dev }``, an ``assume_role`` per account); so one module directory serves, like a StackSet,
every account that declares the same roles, audience and region.

Files: ``main.tf`` (the provider, the roles and their policy attachments), ``outputs.tf``
(``provider_arn``, ``role_arns`` by role name), ``versions.tf`` (the ``hashicorp/aws``
constraint). Permissions stay the administrator's: a role gets an
``aws_iam_role_policy_attachment`` per managed policy ARN the mapping names (``for_each``; the
partition and the account's own id from ``aws_partition`` / ``aws_caller_identity``), and
none otherwise — ``aws_iam_role``'s deprecated ``managed_policy_arns`` is never set, so an
existing role taken over with ``terraform import`` keeps every policy it has, and Terraform
manages its trust, path, description and MaxSessionDuration only.

Sources: the Terraform AWS provider's resource docs (aws_iam_saml_provider,
aws_iam_openid_connect_provider, aws_iam_role, aws_iam_role_policy_attachment). The OIDC
provider gets no ``thumbprint_list``: IAM no longer needs one for a CA-signed issuer (see
``broker.aws.trust``), and the provider made the argument optional in v5.81.0
(hashicorp/terraform-provider-aws#37255), hence the ``>= 5.81`` constraint.
"""

from __future__ import annotations

import re

from broker.aws.hcl import Attribute, Block, Call, Expr, File, Value
from broker.aws.trust import ROLE_DESCRIPTION, AccountTrust, OidcProvider, RoleTrust, SamlProvider

AWS_PROVIDER_VERSION = ">= 5.81"
TERRAFORM_VERSION = ">= 1.3"
PROVIDER_NAME = "broker"


def _resource_name(role: str, taken: set[str]) -> str:
    """A Terraform resource name (letters, digits, ``_``) for a role name, unique in the module."""
    base = "role_" + (re.sub(r"[^a-z0-9]+", "_", role.lower()).strip("_") or "x")
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate


def _provider_type(trust: AccountTrust) -> str:
    return "aws_iam_saml_provider" if isinstance(trust.provider, SamlProvider) else "aws_iam_openid_connect_provider"


def _provider_block(trust: AccountTrust) -> Block:
    p = trust.provider
    body: list[Attribute | Block]
    if isinstance(p, SamlProvider):
        body = [Attribute("name", p.name), Attribute("saml_metadata_document", p.metadata)]
    else:
        assert isinstance(p, OidcProvider)
        body = [Attribute("url", p.url), Attribute("client_id_list", list(p.client_ids))]
    return Block("resource", (_provider_type(trust), PROVIDER_NAME), body)


def _policy(role: RoleTrust, provider_arn: Expr) -> Value:
    """The role's trust policy with the provider's ARN taken from the provider resource."""
    statements: list[Value] = [{**s, "Principal": {"Federated": provider_arn}} for s in role.policy["Statement"]]
    return {**role.policy, "Statement": statements}


PARTITION = Expr("data.aws_partition.current.partition")
ACCOUNT = Expr("data.aws_caller_identity.current.account_id")
_ACCOUNT_DATA = [Block("data", ("aws_partition", "current"), []), Block("data", ("aws_caller_identity", "current"), [])]


def _policy_arn(arn: str, account_id: str) -> Value:
    """A managed policy ARN with the partition, and the account (the one the provider acts in:
    the mapping allows no other but ``aws``), from data sources: the module stays account-neutral,
    like the CloudFormation template's ``${AWS::Partition}`` / ``${AWS::AccountId}``."""
    _, _, _, _, owner, resource = arn.split(":", 5)
    args: list[Value] = [PARTITION] if owner != account_id else [PARTITION, ACCOUNT]
    pattern = "arn:%s:iam::" + ("%s" if owner == account_id else owner.replace("%", "%%"))
    return Call("format", (pattern + ":" + resource.replace("%", "%%"), *args))


def _role_blocks(role: RoleTrust, name: str, provider_arn: Expr, account_id: str) -> list[Block]:
    mapped = ", ".join(role.mapped_by) or "no mapping (declared; reachable through naming rules only)"
    blocks = [Block("resource", ("aws_iam_role", name), [
        Attribute("name", role.name),
        Attribute("path", role.path),
        Attribute("description", ROLE_DESCRIPTION),
        Attribute("max_session_duration", role.max_session_duration),
        Attribute("assume_role_policy", Call("jsonencode", (_policy(role, provider_arn),))),
    ], comment=f"mapped by: {mapped}")]
    if role.managed_policy_arns:
        arns: list[Value] = [_policy_arn(arn, account_id) for arn in role.managed_policy_arns]
        blocks.append(Block("resource", ("aws_iam_role_policy_attachment", name), [
            Attribute("for_each", Call("toset", (arns,))),
            Attribute("role", Expr(f"aws_iam_role.{name}.name")),
            Attribute("policy_arn", Expr("each.value")),
        ]))
    return blocks


def module(trust: AccountTrust) -> dict[str, File]:
    """The module's files by name."""
    provider_arn = Expr(f"{_provider_type(trust)}.{PROVIDER_NAME}.arn")
    notes = "".join(f"\nnote: {n}" for n in trust.notes)
    main = File([_provider_block(trust)],
                comment=f"Federation broker trust for account {trust.label}, generated by `broker aws-setup`.{notes}")
    role_arns: dict[str, Value] = {}
    taken: set[str] = set()
    for role in trust.roles:
        name = _resource_name(role.name, taken)
        main.blocks.extend(_role_blocks(role, name, provider_arn, trust.account_id))
        role_arns[role.name] = Expr(f"aws_iam_role.{name}.arn")
    if any(role.managed_policy_arns for role in trust.roles):
        main.blocks.extend(_ACCOUNT_DATA)
    outputs = File([
        Block("output", ("provider_arn",), [Attribute("value", provider_arn)]),
        Block("output", ("role_arns",), [Attribute("description", "role ARN by role name"),
                                         Attribute("value", role_arns)]),
    ])
    versions = File([Block("terraform", (), [
        Attribute("required_version", TERRAFORM_VERSION),
        Block("required_providers", (), [
            Attribute("aws", {"source": "hashicorp/aws", "version": AWS_PROVIDER_VERSION}),
        ]),
    ])])
    return {"main.tf": main, "outputs.tf": outputs, "versions.tf": versions}


def files(trust: AccountTrust) -> dict[str, str]:
    """The module's files, rendered, by name."""
    return {name: f.render() for name, f in module(trust).items()}


def render(trust: AccountTrust) -> str:
    """The whole module as one file (what stdout shows for one account): its files in order,
    each under a comment naming it; valid as a single ``main.tf`` too."""
    return "\n".join(f"# ---- {name} ----\n{text}" for name, text in files(trust).items())
