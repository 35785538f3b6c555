"""The mapping data model: AWS accounts, their roles, group mappings and naming rules.

These pydantic models are the one description of the mapping, shared by the YAML
configuration (read-only, GitOps-declared objects), the admin API bodies and the
export/import document. Every validation error carries a stable code (the pydantic
error ``type``), e.g. ``invalid_account_id``, ``invalid_role_name``, ``invalid_regex``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from broker.aws.partitions import PARTITIONS, PartitionName, partition_of_region
from broker.domain import Access
from broker.errors import (
    BrokerError,
    ForeignPolicy,
    InvalidAccountId,
    InvalidInput,
    InvalidPolicyArn,
    InvalidRegex,
    InvalidRoleName,
    ReservedRole,
    WrongPartition,
)
from broker.mapping.org_targets import Target

ACCOUNT_ID = re.compile(r"^\d{12}$")
# IAM: role names are 1-64 of [\w+=,.@-]; ASCII only.
ROLE_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")
# IAM: a path is "/" or "/segment/.../" of printable ASCII, at most 512 characters.
ROLE_PATH = re.compile(r"^/(?:[\x21-\x7E]*/)?$")
ALIAS = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d$")
SAML_PROVIDER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# IAM GetSAMLProvider SAMLProviderUUID (botocore's iam model, privateKeyIdType): 22-64 of [A-Z0-9].
SAML_PROVIDER_UUID = re.compile(r"^[A-Z0-9]{22,64}$")
# AWS Organizations: an OU id, and the root's id (an OU target may name the root: every account).
OU_ID = re.compile(r"^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$")
ROOT_ID = re.compile(r"^r-[0-9a-z]{4,32}$")
RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# IAM: a managed policy ARN is arn:<partition>:iam::<12-digit account | aws>:policy<path><name>, the
# path "/" or "/a/b/" (printable ASCII, at most 512), the name 1-128 of [\w+=,.@-]; 20-2048 characters.
POLICY_ARN = re.compile(
    r"^arn:(?P<partition>aws(?:-[a-z]+)*):iam::(?:aws|\d{12}):policy(?P<path>/(?:[\x21-\x7E]*/)?)[A-Za-z0-9+=,.@_-]{1,128}$"
)
MAX_MANAGED_POLICIES = 20
"""IAM's managed policies per role: 10 by default, 20 at most (the quota's hard maximum)."""

MIN_SESSION, MAX_SESSION, AWS_DEFAULT_MAX_SESSION = 900, 43200, 3600
MIN_MFA_AGE = 60
"""The shortest ``mfa_max_age``: a step-up must survive the redirect back to the issuance."""


def _fail(error: type[BrokerError] | str, message: str, **ctx: object) -> PydanticCustomError:
    """A validation failure with its stable code: its class's in the error tree, or a field code
    of its own (``invalid_region`` ...; listed in the README's error-code table)."""
    return PydanticCustomError(error if isinstance(error, str) else error.code, message, ctx or None)


def check_account_id(value: str) -> str:
    if not ACCOUNT_ID.match(value):
        raise _fail(InvalidAccountId, "an AWS account id is exactly 12 digits, got '{value}'", value=value)
    return value


def check_role_name(value: str) -> str:
    if not ROLE_NAME.match(value):
        raise _fail(
            InvalidRoleName,
            "an IAM role name is 1-64 characters of A-Z a-z 0-9 + = , . @ _ -, got '{value}'",
            value=value,
        )
    if value.lower().startswith("awsreservedsso_"):
        raise _fail(
            ReservedRole,
            "'{value}' is an IAM Identity Center role (AWSReservedSSO_*); AWS does not let "
            "an external identity provider assume it",
            value=value,
        )
    return value


def check_role_path(value: str) -> str:
    if len(value) > 512 or not ROLE_PATH.match(value):
        raise _fail("invalid_role_path", "an IAM path is '/' or '/a/b/' (printable ASCII, at most 512)")
    return value


def check_policy_arn(value: str) -> str:
    m = POLICY_ARN.match(value)
    if not m or not 20 <= len(value) <= 2048 or len(m["path"]) > 512:
        raise _fail(
            InvalidPolicyArn,
            "not a managed policy ARN: '{value}' (arn:<partition>:iam::<account id or aws>:policy/[path/]name)",
            value=value[:2048],
        )
    return value


def check_policy_arns(value: list[str]) -> list[str]:
    if len(value) > MAX_MANAGED_POLICIES:
        raise _fail(
            "policy_limit",
            "a role can have at most {limit} managed policies attached (IAM's quota); {count} are listed",
            limit=MAX_MANAGED_POLICIES, count=len(value),
        )
    seen: set[str] = set()
    for arn in value:
        if arn in seen:
            raise _fail("duplicate", "managed policy '{arn}' is listed twice", arn=arn)
        seen.add(arn)
    return value


def foreign_policies(
    account_id: str, partition: str, roles: list[RoleSpec]
) -> list[tuple[int, int, type[InvalidInput], str]]:
    """The managed policy ARNs of ``roles`` IAM would not attach to a role of this account: one of
    another partition, or a customer managed policy of another account (IAM attaches AWS managed
    policies and the account's own only); as (role index, ARN index, error, message)."""
    found: list[tuple[int, int, type[InvalidInput], str]] = []
    for i, role in enumerate(roles):
        for j, arn in enumerate(role.managed_policy_arns):
            _, arn_partition, _, _, owner, _ = arn.split(":", 5)
            what = f"role '{role.name}': managed policy '{arn}'"
            if arn_partition != partition:
                problem = f"{what} is in partition '{arn_partition}' but the account is in '{partition}'"
                found.append((i, j, WrongPartition, problem))
            elif owner not in ("aws", account_id):
                problem = (f"{what} belongs to account {owner}; IAM attaches AWS managed policies and the "
                           f"account's own ({account_id}) only")
                found.append((i, j, ForeignPolicy, problem))
    return found


def check_alias(value: str) -> str:
    if not ALIAS.match(value):
        raise _fail(
            "invalid_alias", "an account alias is 3-63 lowercase letters, digits and inner hyphens"
        )
    if ACCOUNT_ID.match(value):
        raise _fail("invalid_alias", "an account alias cannot be a 12-digit number")
    return value


def check_region(value: str) -> str:
    if not REGION.match(value):
        raise _fail("invalid_region", "not an AWS region name: '{value}'", value=value)
    return value


def check_rule_pattern(value: str) -> str:
    """A naming rule is RE2 syntax (linear-time matching, ``broker.mapping.patterns``); the named
    groups it needs (``role``, and ``account`` unless the rule has an ``accounts:`` target) are
    checked by ``RuleSpec``, which sees both."""
    from broker.mapping.patterns import PatternError, compile_pattern

    try:
        compile_pattern(value)
    except PatternError as exc:
        raise _fail(
            InvalidRegex,
            "the pattern does not compile as RE2 syntax (naming rules are matched in linear time: no "
            "look-around, no back-references): {reason}",
            reason=str(exc),
        ) from None
    return value


def missing_rule_groups(pattern: str, *, targeted: bool) -> set[str]:
    """The named groups a rule's pattern lacks: ``role`` always, ``account`` unless the rule
    targets accounts (``accounts:``; then an ``account`` group, if any, must also be selected)."""
    from broker.mapping.patterns import compile_pattern

    needed = {"role"} if targeted else {"account", "role"}
    return needed - set(compile_pattern(pattern).groupindex)


def check_certificate(value: str) -> str:
    from broker.mapping.certificate import CertificateProblem, check_encryption_certificate

    try:
        return check_encryption_certificate(value)
    except CertificateProblem as exc:
        raise _fail("invalid_certificate", "{reason}", reason=str(exc)) from None


def check_provider_uuid(value: str) -> str:
    if not SAML_PROVIDER_UUID.match(value):
        raise _fail(
            "invalid_provider_id",
            "the SAML provider's id is its SAMLProviderUUID (22-64 capital letters and digits, from "
            "`aws iam get-saml-provider`), got '{value}'",
            value=value[:80],
        )
    return value


def check_group(value: str) -> str:
    from broker.groups import display_name

    name = display_name(value)
    if not name:
        raise _fail("invalid_group", "a group name cannot be empty")
    return name


AccountId = Annotated[str, AfterValidator(check_account_id)]
RoleName = Annotated[str, AfterValidator(check_role_name)]
RolePath = Annotated[str, AfterValidator(check_role_path)]
Alias = Annotated[str, AfterValidator(check_alias)]
Region = Annotated[str, AfterValidator(check_region)]
PolicyArn = Annotated[str, AfterValidator(check_policy_arn)]
RulePattern = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(check_rule_pattern)]
GroupName = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(check_group)]
SessionSeconds = Annotated[int, Field(ge=MIN_SESSION, le=MAX_SESSION)]
Text = Annotated[str, Field(max_length=1024)]
# An account given by its 12-digit id or its alias.
AccountRef = Annotated[str, Field(min_length=1, max_length=63)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True, strict=True)


class AssertionEncryption(Strict):
    """Encrypted SAML assertions (IAM User Guide, id_roles_providers_create_saml_assertions): every
    Assertion for the account is encrypted to ``certificate`` and sent to the provider's own ACS,
    ``https://signin.aws.amazon.com/saml/acs/<provider_id>``."""

    mode: Literal["allowed", "required"] = "required"
    """The provider's AssertionEncryptionMode that aws-setup writes: required (IAM refuses
    unencrypted assertions) or allowed (it takes both; a step while switching)."""
    provider_id: Annotated[str, AfterValidator(check_provider_uuid)]
    """The provider's SAMLProviderUUID (`aws iam get-saml-provider ... --query SAMLProviderUUID`)."""
    certificate: Annotated[str, Field(min_length=1, max_length=16384), AfterValidator(check_certificate)]
    """PEM certificate (RSA, at least 2048 bits, not expired) of the key pair whose private key
    is uploaded to the provider (`aws iam update-saml-provider --add-private-key`). In the
    configuration file ``certificate_file: PATH`` may stand in for it."""


class SamlFederation(Strict):
    """AWS trusts the broker through an IAM SAML provider (AssumeRoleWithSAML)."""

    path: Literal["saml"] = "saml"
    saml_provider: Annotated[str, Field(pattern=SAML_PROVIDER_NAME.pattern)] = "broker"
    assertion_encryption: AssertionEncryption | None = None
    """Opt-in: encrypt the account's assertions to its provider's key (none: signed only, as before)."""


class WebIdentityFederation(Strict):
    """AWS trusts the broker as an IAM OIDC provider (AssumeRoleWithWebIdentity)."""

    path: Literal["web_identity"]
    audience: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    """A client id registered on the account's IAM OIDC provider; default the partition's STS
    audience (sts.amazonaws.com, or sts.amazonaws.com.cn in aws-cn)."""


Federation = Annotated[SamlFederation | WebIdentityFederation, Field(discriminator="path")]


class RoleFields(Strict):
    path: RolePath = "/"
    max_session_duration: SessionSeconds = Field(default=AWS_DEFAULT_MAX_SESSION, description="seconds")
    description: Text = ""
    managed_policy_arns: Annotated[list[PolicyArn], AfterValidator(check_policy_arns)] = Field(
        default_factory=list,
        description="managed policies aws-setup's templates attach to the role (at most 20, in the account's "
        "partition); empty: the templates leave the role's permissions as they are",
    )


class RoleSpec(RoleFields):
    name: RoleName


class AccountFields(Strict):
    alias: Alias | None = None
    partition: PartitionName = "aws"
    default_region: Region | None = None
    environment: Annotated[str, Field(max_length=64)] | None = None
    owner: Annotated[str, Field(max_length=256)] | None = None
    description: Text = ""
    federation: Federation = Field(default_factory=SamlFederation)

    @model_validator(mode="after")
    def _region_in_partition(self) -> AccountFields:
        region = self.default_region
        if region is None:
            return self
        if partition_of_region(region) != self.partition:
            raise _fail(
                "invalid_region",
                "region '{region}' is not in partition '{partition}'",
                region=region,
                partition=self.partition,
            )
        return self

    @property
    def region(self) -> str:
        return self.default_region or PARTITIONS[self.partition].default_region


class AccountSpec(AccountFields):
    id: AccountId = Field(description="the 12-digit AWS account id")
    roles: list[RoleSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_roles(self) -> AccountSpec:
        seen: set[str] = set()
        for role in self.roles:
            key = role.name.lower()
            if key in seen:
                raise _fail("duplicate", "role '{name}' is listed twice in account {id}", name=role.name, id=self.id)
            seen.add(key)
        return self

    @model_validator(mode="after")
    def _attachable_policies(self) -> AccountSpec:
        errors = [
            InitErrorDetails(type=_fail(error, "{problem}", problem=message),
                             loc=("roles", i, "managed_policy_arns", j), input=self.roles[i].managed_policy_arns[j])
            for i, j, error, message in foreign_policies(self.id, self.partition, self.roles)
        ]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


POLICY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class GrantOptions(Strict):
    session_duration: SessionSeconds | None = Field(
        default=None, description="cap on the session length this grant allows (seconds)"
    )
    console: bool = True
    cli: bool = True
    access: Access = Field(
        default="standing",
        description="standing (always on) or eligible (requested with a reason, approved, time-bound)",
    )
    policy: Annotated[str, Field(pattern=POLICY_NAME.pattern)] | None = Field(
        default=None, description="eligible only: the name of the access policy (config jit.policies) that "
        "says who approves, for how long at most, and what a request must give",
    )
    require_mfa: bool = Field(
        default=False, description="issuance needs a second factor proved in this sign-in (TOTP, WebAuthn, or an "
        "upstream IdP's MFA the config counts), no older than mfa.default_max_age",
    )
    mfa_max_age: Annotated[int, Field(ge=MIN_MFA_AGE, le=MAX_SESSION)] | None = Field(
        default=None, description="issuance needs a second factor proved at most this many seconds ago "
        "(implies require_mfa)",
    )

    @model_validator(mode="after")
    def _some_channel(self) -> GrantOptions:
        if not (self.console or self.cli):
            raise _fail("invalid_input", "a grant must allow the console, the command line, or both")
        return self

    @model_validator(mode="after")
    def _policy_with_eligible(self) -> GrantOptions:
        if self.access == "eligible" and self.policy is None:
            raise _fail("invalid_policy", "access: eligible needs policy: (the name of an access policy)")
        if self.access == "standing" and self.policy is not None:
            raise _fail("invalid_policy", "policy: is for access: eligible only")
        return self

    @model_serializer(mode="wrap")
    def _standing_unsaid(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, object]:
        """A standing grant's dump is what it was before eligibility existed (documents, hashes);
        the admin API's views, dumped with the context ``{"every_field": True}``, keep both."""
        out: dict[str, object] = handler(self)
        every = isinstance(info.context, dict) and info.context.get("every_field")
        if not every and out.get("access") == "standing" and out.get("policy") is None:
            out.pop("access", None)
            out.pop("policy", None)
        if not every and not out.get("require_mfa") and out.get("mfa_max_age") is None:
            out.pop("require_mfa", None)  # likewise a grant without MFA: as before step-up MFA existed
            out.pop("mfa_max_age", None)
        return out


class AccountSelector(Strict):
    """Accounts by their place in AWS Organizations, as the last ``broker org discover --apply``
    recorded it: ``{ou: ou-...}`` (the accounts of that OU and of its child OUs; the root id
    ``r-...``: every account) or ``{tag: {KEY: VALUE}}`` (one tag, key and value equal, the key
    case-sensitive as in AWS)."""

    ou: Annotated[str, Field(max_length=68)] | None = None
    tag: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> AccountSelector:
        if (self.ou is None) == (self.tag is None):
            raise _fail("invalid_target", "accounts: names exactly one of ou: or tag:")
        if self.ou is not None and not (OU_ID.match(self.ou) or ROOT_ID.match(self.ou)):
            raise _fail(
                "invalid_ou_id",
                "not an AWS Organizations OU id (ou-<4-32 of a-z 0-9>-<8-32 of a-z 0-9>) or root id (r-...): "
                "'{value}'",
                value=self.ou[:80],
            )
        if self.tag is not None:
            if len(self.tag) != 1:
                raise _fail("invalid_tag", "tag: names exactly one KEY: VALUE pair, got {count}", count=len(self.tag))
            ((key, value),) = self.tag.items()
            if not key.strip() or len(key) > 128 or len(value) > 256 or key.lower().startswith("aws:"):
                raise _fail(
                    "invalid_tag",
                    "an account tag's key is 1-128 characters (not aws:...) and its value at most 256; got '{key}'",
                    key=key[:130],
                )
        return self

    def target(self) -> Target:
        if self.ou is not None:
            return Target(ou=self.ou)
        assert self.tag is not None
        ((key, value),) = self.tag.items()
        return Target(tag=(key, value))

    @classmethod
    def of(cls, target: Target) -> AccountSelector:
        """The selector of a stored target key (not re-validated: it was when it was stored)."""
        if target.ou is not None:
            return cls.model_construct(ou=target.ou, tag=None)
        assert target.tag is not None
        return cls.model_construct(ou=None, tag={target.tag[0]: target.tag[1]})

    @classmethod
    def of_dump(cls, data: dict[str, object]) -> AccountSelector:
        """The selector of its own JSON dump (a plan's or an audit event's; not re-validated)."""
        ou, tag = data.get("ou"), data.get("tag")
        return cls.model_construct(ou=ou if isinstance(ou, str) else None,
                                   tag={str(k): str(v) for k, v in tag.items()} if isinstance(tag, dict) else None)

    @model_serializer(mode="wrap")
    def _only_set(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, object]:
        return {k: v for k, v in handler(self).items() if v is not None}


class MappingSpec(GrantOptions):
    """A group's role in one account (``account:``), or in every account of an OU or with a tag
    (``accounts:``, resolved against the placements discovery recorded)."""

    group: GroupName
    account: AccountRef | None = None
    accounts: AccountSelector | None = None
    role: RoleName
    description: Text = ""

    @model_validator(mode="after")
    def _one_account_target(self) -> MappingSpec:
        if (self.account is None) == (self.accounts is None):
            raise _fail(
                "invalid_target",
                "a mapping names exactly one of account: (an id or alias) or accounts: (ou: OU id, or tag: KEY: VALUE)",
            )
        return self


class RuleSpec(GrantOptions):
    name: Annotated[str, Field(pattern=RULE_NAME.pattern)]
    pattern: RulePattern
    accounts: AccountSelector | None = None
    """Optional: the rule grants only in these accounts; a pattern without an ``account`` group
    grants its ``role`` in every one of them."""
    description: Text = ""

    @model_validator(mode="after")
    def _named_groups(self) -> RuleSpec:
        missing = missing_rule_groups(self.pattern, targeted=self.accounts is not None)
        if missing:
            needed = "(?P<role>...)" if self.accounts is not None else "(?P<account>...) and (?P<role>...)"
            hint = "" if self.accounts is not None or "role" in missing else (
                " (or give the rule accounts: to grant the role in every account of an OU or with a tag)")
            error = _fail(
                InvalidRegex,
                "the pattern needs the named groups {needed}; missing: {missing}{hint}",
                needed=needed, missing=", ".join(sorted(missing)), hint=hint,
            )
            raise ValidationError.from_exception_data(
                type(self).__name__, [InitErrorDetails(type=error, loc=("pattern",), input=self.pattern)]
            )
        return self


class MappingDocument(Strict):
    """The whole mapping, as exported, imported and declared in the config file."""

    version: Literal[1] = 1
    accounts: list[AccountSpec] = Field(default_factory=list)
    mappings: list[MappingSpec] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)


def reference_issues(doc: MappingDocument) -> list[tuple[str, str]]:
    """Cross-object problems of a whole document, as (path in the document, message): duplicates
    and dangling references. A list item that is None (it failed validation) is skipped."""
    from difflib import get_close_matches

    from broker.groups import match_key

    def hint(word: str, candidates: list[str]) -> str:
        close = get_close_matches(word, candidates, n=1, cutoff=0.6) or get_close_matches(
            word.lower(), [c.lower() for c in candidates], n=1, cutoff=0.6
        )
        return f" (did you mean {close[0]!r}?)" if close else ""

    problems: list[tuple[str, str]] = []
    ids: dict[str, AccountSpec] = {}
    first: dict[str, int] = {}
    aliases: dict[str, str] = {}
    for i, acc in enumerate(doc.accounts):
        if acc is None:
            continue
        if acc.id in ids:
            problems.append((f"accounts[{i}].id", f"account {acc.id} is listed twice (also accounts[{first[acc.id]}])"))
        ids.setdefault(acc.id, acc)
        first.setdefault(acc.id, i)
        if acc.alias:
            if acc.alias in aliases and aliases[acc.alias] != acc.id:
                problems.append((f"accounts[{i}].alias", f"alias {acc.alias!r} is used by {aliases[acc.alias]} and {acc.id}"))
            aliases[acc.alias] = acc.id
    seen: set[tuple[str, str, str]] = set()
    for i, m in enumerate(doc.mappings):
        if m is None:
            continue
        if m.accounts is not None:  # accounts of an OU or a tag: whichever discovery placed there
            target_key = (match_key(m.group), m.accounts.target().key, m.role.lower())
            if target_key in seen:
                problems.append((f"mappings[{i}]", f"mapping {m.group!r} -> {m.accounts.target().via}/{m.role} is listed twice"))
            seen.add(target_key)
            continue
        assert m.account is not None
        account_id = m.account if m.account in ids else aliases.get(m.account.lower())
        if account_id is None:
            declared = sorted(aliases) + sorted(ids)
            problems.append(
                (f"mappings[{i}].account",
                 f"mapping for group {m.group!r}: no account {m.account!r} is declared{hint(m.account, declared)}")
            )
            continue
        roles = [r.name for r in ids[account_id].roles]
        if m.role.lower() not in {r.lower() for r in roles}:
            problems.append(
                (f"mappings[{i}].role",
                 f"mapping for group {m.group!r}: account {account_id} has no role {m.role!r}{hint(m.role, roles)}")
            )
            continue
        key = (match_key(m.group), account_id, m.role.lower())
        if key in seen:
            problems.append((f"mappings[{i}]", f"mapping {m.group!r} -> {account_id}/{m.role} is listed twice"))
        seen.add(key)
    rule_names: set[str] = set()
    for i, r in enumerate(doc.rules):
        if r is None:
            continue
        if r.name in rule_names:
            problems.append((f"rules[{i}].name", f"rule {r.name!r} is listed twice"))
        rule_names.add(r.name)
    return problems
