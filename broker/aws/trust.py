"""What each AWS account must hold to trust the broker, derived from the mapping: its IAM
provider and every role's trust policy (the input of ``broker aws-setup``).

Pure: it reads a ``MappingSnapshot`` and the broker's own settings (its SAML metadata, OIDC
issuer and SAML recipient choice) and returns data; nothing here calls AWS. The trust policies
follow ../shared/AWS.md and the README's "Registering the broker in AWS": SAML roles trust the
account's SAML provider for ``sts:AssumeRoleWithSAML`` + ``sts:TagSession`` +
``sts:SetSourceIdentity`` with ``SAML:aud`` = every Recipient the broker may send to that account
(``saml_audiences``: global and regional);
web identity roles trust the account's OIDC provider for ``sts:AssumeRoleWithWebIdentity`` + the
same two, with ``<issuer host>:aud`` = the account's audience. The mapping has no per-subject
constraint, so no ``:sub`` condition is written.

Sources: IAM User Guide id_session-tags (every role trusting an IdP that passes tags needs
sts:TagSession), id_roles_providers_create_saml_assertions (Recipient = SAML:aud; an encrypted assertion's
Recipient is the provider's own ``.../saml/acs/<SAMLProviderUUID>``),
id_roles_providers_oidc (condition keys ``<provider url without https://>:aud``); the
CloudFormation reference aws-resource-iam-oidcprovider (ThumbprintList is left out: the code
computes none, IAM no longer uses it for well-known CAs, and cfn-lint's current schema accepts
the provider without it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from broker.aws.partitions import partition
from broker.domain import RoleGrant
from broker.errors import NotFound
from broker.mapping.snapshot import AccountRecord, MappingSnapshot, RoleRecord

if TYPE_CHECKING:
    from broker.minting.factory import Minting

SAML_ACTIONS = ("sts:AssumeRoleWithSAML", "sts:TagSession", "sts:SetSourceIdentity")
"""TagSession: the broker sends session tags; SetSourceIdentity: it always sends SourceIdentity."""
WEB_IDENTITY_ACTIONS = ("sts:AssumeRoleWithWebIdentity", "sts:TagSession", "sts:SetSourceIdentity")
POLICY_VERSION = "2012-10-17"
ROLE_DESCRIPTION = "Assumed through the federation broker"
"""The Description every generated role gets (CloudFormation, StackSet and Terraform alike)."""


def _provider_id(grant: RoleGrant) -> str | None:
    return grant.assertion_encryption.provider_id if grant.assertion_encryption else None


def _global_recipient(grant: RoleGrant) -> str:
    return partition(grant.partition).saml_recipient(None, _provider_id(grant))


def saml_audiences(grant: RoleGrant, chosen: Callable[[RoleGrant], str] = _global_recipient) -> tuple[str, ...]:
    """Every Recipient the broker may put in an assertion for this grant, the one it uses now first.

    ``chosen`` is the running broker's choice (``SamlIdp.recipient``: global or regional, by
    ``saml_idp.recipient``); the other form for the account's region is added, so that switching
    ``saml_idp.recipient`` needs no trust-policy change (AWS.md: ``SAML:aud`` is the Recipient, the
    global ``https://signin.aws.amazon.com/saml`` or the regional ``https://<region>.signin...``).
    An account with encrypted assertions gets its provider's ACS forms (``.../saml/acs/<id>``) first.
    """
    part = partition(grant.partition)
    found: list[str] = []
    pid = _provider_id(grant)  # None: the provider-specific forms are the plain ones
    for recipient in (chosen(grant), part.saml_recipient(None, pid), part.saml_recipient(grant.region, pid),
                      part.saml_acs, part.saml_recipient(grant.region)):
        if recipient not in found:
            found.append(recipient)
    return tuple(found)


@dataclass(frozen=True)
class BrokerSide:
    """What the broker itself publishes, as the running broker would (``broker.minting``)."""

    issuer: str
    """The OIDC issuer (``server.public_url`` without a trailing slash): the IAM OIDC provider URL."""
    saml_metadata: str
    """The IdP metadata served at /saml/metadata (current and, while rotating, next certificate)."""
    saml_recipient: Callable[[RoleGrant], str] = _global_recipient
    """The Recipient the broker puts in an assertion for a grant (``SamlIdp.recipient``)."""
    ephemeral_key: bool = False
    """The metadata carries a key that lives only as long as the process that made it."""
    current_certificate: bytes | None = None
    """DER of the certificate the broker signs with (``keys.current``), for ``broker doctor``."""
    next_certificate: bytes | None = None
    """DER of the rotation certificate (``keys.next``) while one is configured."""

    @classmethod
    def of(cls, minting: Minting) -> BrokerSide:
        """What this minting publishes (the CLI's from a configuration, the running app's own)."""
        keys = minting.keys
        return cls(issuer=minting.oidc.issuer, saml_metadata=minting.saml.metadata().decode("utf-8"),
                   saml_recipient=minting.saml.recipient, ephemeral_key=keys.ephemeral,
                   current_certificate=keys.current.cert_der,
                   next_certificate=keys.next.cert_der if keys.next else None)


@dataclass(frozen=True)
class SamlProvider:
    name: str
    arn: str
    metadata: str
    assertion_encryption_mode: str | None = None
    """IAM's AssertionEncryptionMode (Allowed | Required) when the account opted in; None: not set."""
    provider_id: str | None = None
    """The SAMLProviderUUID the broker's ACS URL names (encrypted assertions only)."""


@dataclass(frozen=True)
class OidcProvider:
    url: str
    arn: str
    client_ids: tuple[str, ...]
    condition_prefix: str
    """The IAM condition-key prefix: the provider URL without ``https://`` (``broker.example.com``)."""


@dataclass(frozen=True)
class RoleTrust:
    name: str
    path: str
    arn: str
    max_session_duration: int
    policy: dict[str, Any]
    """The AssumeRolePolicyDocument, with the provider's concrete ARN."""
    audience: str
    """The aud the running broker sends for this role: the SAML Recipient in use
    (``BrokerSide.saml_recipient``), or the OIDC client id."""
    mapped_by: tuple[str, ...]
    """Which mappings name the role (group names); empty: declared, reachable through naming rules only."""
    managed_policy_arns: tuple[str, ...] = ()
    """Managed policies the mapping names for the role (attached by the templates); empty: the
    template leaves the role's permissions as they are."""


@dataclass(frozen=True)
class AccountTrust:
    account_id: str
    alias: str | None
    partition: str
    provider: SamlProvider | OidcProvider
    roles: tuple[RoleTrust, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return f"{self.alias} ({self.account_id})" if self.alias else self.account_id


def role_grant(acc: AccountRecord, role: RoleRecord) -> RoleGrant:
    """A declared role as a grant (its ARN, provider and limits), whoever may reach it."""
    return RoleGrant(
        account_id=acc.id, account_alias=acc.alias, partition=acc.partition, region=acc.region,
        environment=acc.environment, federation_path=acc.federation_path, saml_provider=acc.saml_provider,
        audience=acc.audience, role_name=role.name, role_path=role.path, role_max_session=role.max_session_duration,
        assertion_encryption=acc.assertion_encryption,
    )


def saml_policy(provider_arn: str, recipients: Sequence[str]) -> dict[str, Any]:
    aud: str | list[str] = recipients[0] if len(recipients) == 1 else list(recipients)
    return {
        "Version": POLICY_VERSION,
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": list(SAML_ACTIONS),
            "Condition": {"StringEquals": {"SAML:aud": aud}},
        }],
    }


def web_identity_policy(provider_arn: str, condition_prefix: str, audience: str) -> dict[str, Any]:
    return {
        "Version": POLICY_VERSION,
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": list(WEB_IDENTITY_ACTIONS),
            "Condition": {"StringEquals": {f"{condition_prefix}:aud": audience}},
        }],
    }


def _issuer_notes(issuer: str) -> list[str]:
    parts = urlsplit(issuer)
    notes = []
    if parts.scheme != "https":
        notes.append(f"the OIDC issuer {issuer} is not https: IAM accepts only an https provider URL")
    if parts.port is not None:
        notes.append(f"the OIDC issuer {issuer} has a port: IAM refuses provider URLs with a port")
    return notes


def _rule_notes(snapshot: MappingSnapshot) -> list[str]:
    return [
        f"naming rule {r.name!r} ({r.pattern}) can name roles by group name; only roles declared in "
        "the account are in this template: declare every role the rule reaches (mapping.accounts[].roles)"
        for r in snapshot.rules
    ]


def account_trust(snapshot: MappingSnapshot, account_id: str, broker: BrokerSide) -> AccountTrust:
    """The provider and the trust of every declared role of one account."""
    acc = snapshot.accounts[account_id]
    part = acc.partition
    mapped = snapshot.mapped_groups(acc.id)
    roles = snapshot.account_roles(acc.id)
    notes = _rule_notes(snapshot)
    provider: SamlProvider | OidcProvider
    if acc.federation_path == "saml":
        name = acc.saml_provider or "broker"
        encryption = acc.assertion_encryption
        provider = SamlProvider(name=name, arn=f"arn:{part}:iam::{acc.id}:saml-provider/{name}",
                                metadata=broker.saml_metadata,
                                assertion_encryption_mode=encryption.mode.capitalize() if encryption else None,
                                provider_id=encryption.provider_id if encryption else None)
        if encryption:
            notes.append(f"assertions are encrypted: upload the private key of its certificate once, "
                         f"`aws iam update-saml-provider --saml-provider-arn {provider.arn} --add-private-key "
                         "file://saml-encryption.key.pem` (never into a template)")
        if broker.ephemeral_key:
            notes.append("no keys: section: the metadata carries an ephemeral key that dies with this command; "
                         "configure key files before deploying")
    else:
        prefix = broker.issuer.split("://", 1)[-1]
        audience = acc.audience or partition(part).oidc_audience
        provider = OidcProvider(url=broker.issuer, arn=f"arn:{part}:iam::{acc.id}:oidc-provider/{prefix}",
                                client_ids=(audience,), condition_prefix=prefix)
        notes.extend(_issuer_notes(broker.issuer))
    trusts = []
    for role in roles:
        grant = role_grant(acc, role)
        if isinstance(provider, SamlProvider):
            audiences = saml_audiences(grant, broker.saml_recipient)
            policy = saml_policy(provider.arn, audiences)
        else:
            audiences = provider.client_ids
            policy = web_identity_policy(provider.arn, provider.condition_prefix, audiences[0])
        groups = tuple(sorted(set(mapped.get(role.name.lower(), ())), key=str.lower))
        if not groups:
            notes.append(f"role {role.name} is declared but no mapping names it: only a naming rule can reach it")
        trusts.append(RoleTrust(name=role.name, path=role.path, arn=grant.role_arn,
                                max_session_duration=role.max_session_duration, policy=policy,
                                audience=audiences[0], mapped_by=groups,
                                managed_policy_arns=role.managed_policy_arns))
    if not roles:
        notes.append("the account declares no roles: the template holds the provider only")
    return AccountTrust(account_id=acc.id, alias=acc.alias, partition=part, provider=provider,
                        roles=tuple(trusts), notes=tuple(notes))


def resolve_accounts(snapshot: MappingSnapshot, refs: Iterable[str]) -> list[str]:
    """Account ids for ``--account`` values (ids or aliases); none given: every account, sorted."""
    refs = list(refs)
    if not refs:
        return sorted(snapshot.accounts)
    out: list[str] = []
    for ref in refs:
        acc = snapshot.account(ref)
        if acc is None:
            known = ", ".join(sorted(a.alias or a.id for a in snapshot.accounts.values())) or "none"
            raise NotFound(f"no account {ref!r} is registered in the mapping (known: {known})")
        if acc.id not in out:
            out.append(acc.id)
    return out


def plan(snapshot: MappingSnapshot, broker: BrokerSide, accounts: Iterable[str] = ()) -> list[AccountTrust]:
    return [account_trust(snapshot, a, broker) for a in resolve_accounts(snapshot, accounts)]
