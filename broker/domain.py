"""Frozen value types shared across the broker's packages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

Channel = Literal["console", "cli"]
FederationPath = Literal["saml", "web_identity"]
"""How a role is assumed: AssumeRoleWithSAML or AssumeRoleWithWebIdentity."""
ReasonKind = Literal["mapping", "rule", "break_glass"]
"""``break_glass``: a role listed for a break-glass account (``broker.break_glass``)."""
Access = Literal["standing", "eligible"]
"""``standing``: always on; ``eligible``: requested, approved, time-bound (``broker.access``)."""
Source = Literal["config", "api"]
"""Who manages a mapping object: the configuration file (read-only over the API) or the admin API."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a person is, as a connector established it."""

    id: str
    """Immutable id (AD objectGUID, LDAP entryUUID, upstream subject): SourceIdentity, ID token sub."""
    username: str
    display_name: str = ""
    email: str = ""
    groups: tuple[str, ...] = ()
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Directory attributes kept for session tags, as (name, values) pairs."""
    source: str = ""
    """The connector that established this identity."""
    valid_until: float | None = None
    """When the sign-in itself ends, as its source said (a SAML IdP's ``SessionNotOnOrAfter``),
    in epoch seconds: portal sessions and CLI logins built on it end then, and ``Flow`` issues
    nothing for it afterwards. None: the broker's own session limits alone apply."""
    mfa_at: float | None = None
    """When this person last proved a second factor in this sign-in (epoch seconds): a TOTP code
    or a WebAuthn assertion at the broker (step-up, ``broker.mfa``), or an upstream IdP whose
    answer the config counts as MFA (SAML AuthnContextClassRef, OIDC ``amr``/``acr``). Mappings
    with ``require_mfa`` / ``mfa_max_age`` compare it with the clock. None: no second factor."""
    mfa_methods: tuple[str, ...] = ()
    """How it was proved (RFC 8176 ``amr`` values: ``otp``, ``hwk``/``swk`` for WebAuthn, or the
    upstream's own), for the audit trail."""


@dataclass(frozen=True, slots=True)
class SamlEncryption:
    """An account's opt-in to encrypted SAML assertions (IAM ``AssertionEncryptionMode``): the
    broker encrypts every Assertion for it to ``certificate`` and sends the Response to the
    provider's own ACS, ``https://signin.aws.amazon.com/saml/acs/<provider_id>``."""

    mode: Literal["allowed", "required"]
    """The provider's AssertionEncryptionMode: required refuses unencrypted assertions, allowed takes both."""
    provider_id: str
    """The IAM SAML provider's SAMLProviderUUID (GetSAMLProvider), the last segment of its ACS URL."""
    certificate: str = field(repr=False)
    """PEM certificate of the key pair whose private key is uploaded to the provider (AddPrivateKey)."""


class GrantReason(NamedTuple):
    """Why a grant exists: one mapping row (``ref`` ``org-<id>`` for a mapping with ``accounts:``)
    or one naming rule, and the group that matched.
    (A NamedTuple: built hundreds of times per resolution, and a tuple is cheap to build.)"""

    kind: ReasonKind
    ref: str
    """The mapping id or the rule name."""
    group: str
    """The user's group (as given) that matched."""
    console: bool
    cli: bool
    session_duration: int | None
    """This reason's own cap (seconds), if any."""
    source: Source = "api"
    via: str | None = None
    """How the account was reached when not named: ``OU ou-...``, ``root r-...`` or ``tag env=prod``
    (a mapping or rule with ``accounts:``, against the placements discovery recorded)."""
    access: Access = "standing"
    """``eligible``: this reason lets the person *request* the role (``broker.access``), not use it."""
    policy: str | None = None
    """The access policy of an eligible reason (config ``jit.policies``)."""
    require_mfa: bool = False
    """Issuance through this reason needs a second factor of this sign-in (``broker.mfa``)."""
    mfa_max_age: int | None = None
    """... proved at most this many seconds ago (implies ``require_mfa``)."""

    def mfa_age(self, default_max_age: int) -> int | None:
        """The oldest second factor this reason accepts (seconds); None: it needs none."""
        if self.mfa_max_age is not None:
            return self.mfa_max_age
        return default_max_age if self.require_mfa else None

    def describe(self) -> str:
        """One line a person reads: ``mapping 12 via ops``, ``mapping org-3 via platform-admins via OU ou-...``."""
        return f"{self.kind} {self.ref} via {self.group}" + (f" via {self.via}" if self.via else "")

    def to_dict(self) -> dict[str, Any]:
        """The reason as JSON: ``via`` only when the account was reached through a target (the
        reasons of named accounts keep the shape they always had)."""
        out = self._asdict()
        if self.via is None:
            del out["via"]
        if self.access == "standing":
            del out["access"], out["policy"]
        if not self.require_mfa and self.mfa_max_age is None:
            del out["require_mfa"], out["mfa_max_age"]
        return out


class RoleGrant(NamedTuple):
    """A role a user may assume, with every reason they may. (A NamedTuple for the same
    reason as GrantReason: a user in hundreds of groups gets hundreds of them.)"""

    account_id: str
    account_alias: str | None
    partition: str
    region: str
    environment: str | None
    federation_path: FederationPath
    saml_provider: str | None
    audience: str | None
    role_name: str
    role_path: str
    role_max_session: int
    reasons: tuple[GrantReason, ...] = ()
    assertion_encryption: SamlEncryption | None = None
    """Set when the account takes encrypted SAML assertions only at its provider's own ACS."""

    @property
    def role_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:role{self.role_path}{self.role_name}"

    @property
    def saml_provider_arn(self) -> str | None:
        if self.saml_provider is None:
            return None
        return f"arn:{self.partition}:iam::{self.account_id}:saml-provider/{self.saml_provider}"

    @property
    def eligible(self) -> bool:
        """Every reason is ``access: eligible``: issued only while an approved grant is active
        (a standing reason beside an eligible one makes the role standing)."""
        return bool(self.reasons) and all(r.access == "eligible" for r in self.reasons)

    @property
    def policies(self) -> tuple[str, ...]:
        """The access policies of the eligible reasons, first reason first, each once."""
        return tuple(dict.fromkeys(r.policy for r in self.reasons if r.access == "eligible" and r.policy))

    @property
    def in_force(self) -> tuple[GrantReason, ...]:
        """The reasons that decide how the role is issued: all of them for an eligible role (under
        its grant), else the standing ones only — an eligible reason beside a standing one is not in
        force (nobody requested it), so it never widens the standing reasons' channels, session or
        second-factor demand."""
        eligible = [r.access == "eligible" for r in self.reasons]
        if all(eligible) or not any(eligible):  # the common cases: no new tuple
            return self.reasons
        return tuple(r for r, e in zip(self.reasons, eligible, strict=True) if not e)

    def allows(self, channel: Channel) -> bool:
        return any(getattr(r, channel) for r in self.in_force)

    def max_duration(self, channel: Channel) -> int:
        """The longest session this grant allows on a channel: min(role max, cap), best reason wins."""
        best = 0
        for r in self.in_force:
            if getattr(r, channel):
                cap = self.role_max_session if r.session_duration is None else r.session_duration
                best = max(best, min(cap, self.role_max_session))
        return best

    def mfa_max_age(self, channel: Channel, default_max_age: int) -> int | None:
        """The oldest second factor issuance on ``channel`` accepts (seconds), None: none is needed.
        The least demanding reason of the channel wins (as a standing reason beats an eligible
        one): a reason without MFA beside one with it makes the role need none."""
        ages = [r.mfa_age(default_max_age) for r in self.in_force if getattr(r, channel)]
        if not ages or None in ages:
            return None
        return max(a for a in ages if a is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "account_alias": self.account_alias,
            "environment": self.environment,
            "partition": self.partition,
            "region": self.region,
            "role_name": self.role_name,
            "role_arn": self.role_arn,
            "federation_path": self.federation_path,
            "provider": self.saml_provider_arn if self.federation_path == "saml" else self.audience,
            "console": self.allows("console"),
            "cli": self.allows("cli"),
            "max_session_duration": {"console": self.max_duration("console"), "cli": self.max_duration("cli")},
            "reasons": [r.to_dict() for r in self.reasons],
            "access": "eligible" if self.eligible else "standing",
        }


@dataclass(frozen=True, slots=True)
class TemporaryCredentials:
    """AWS STS credentials for one role session. The secret and the token never appear in a repr."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime
    """Timezone-aware UTC."""
    role_arn: str = ""
    assumed_role_arn: str = ""
    """arn:...:sts::<account>:assumed-role/<role>/<session name>, as STS answered."""
    source_identity: str | None = None


@dataclass(frozen=True, slots=True)
class ConsoleLink:
    """A console sign-in URL (valid 15 minutes). A bearer credential: delivered by 302, never logged."""

    url: str = field(repr=False)
    destination: str
    """The console page the person lands on."""
    expires_at: datetime
    sandbox: bool = False
