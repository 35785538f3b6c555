"""An immutable view of (part of) the mapping data, indexed for resolution.

A store builds a snapshot either of everything (export, benchmarks) or of just what a
set of groups can reach (one issuance); ``broker.mapping.rules.resolve`` reads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from broker.aws.partitions import PartitionName
from broker.domain import Access, FederationPath, SamlEncryption, Source
from broker.mapping.model import AWS_DEFAULT_MAX_SESSION
from broker.mapping.patterns import RuleMatcher, rule_matcher


@dataclass(frozen=True, slots=True)
class AccountRecord:
    id: str
    alias: str | None
    partition: PartitionName
    region: str
    environment: str | None
    federation_path: FederationPath
    saml_provider: str | None
    audience: str | None
    assertion_encryption: SamlEncryption | None = None


@dataclass(frozen=True, slots=True)
class RoleRecord:
    account_id: str
    name: str
    path: str
    max_session_duration: int
    managed_policy_arns: tuple[str, ...] = ()
    """What aws-setup's templates attach; empty for a role only a naming rule names (undeclared)."""


@dataclass(frozen=True, slots=True)
class MappingRecord:
    id: str
    group: str
    group_key: str
    account_id: str
    role_name: str
    session_duration: int | None
    console: bool
    cli: bool
    source: Source
    access: Access = "standing"
    policy: str | None = None
    require_mfa: bool = False
    mfa_max_age: int | None = None


@dataclass(frozen=True, slots=True)
class OrgMappingRecord:
    """A mapping with ``accounts:``: the role in every account its target holds."""

    id: str
    group: str
    group_key: str
    target: str
    """``broker.mapping.org_targets.Target.key``."""
    role_name: str
    session_duration: int | None
    console: bool
    cli: bool
    source: Source
    access: Access = "standing"
    policy: str | None = None
    require_mfa: bool = False
    mfa_max_age: int | None = None


@dataclass(frozen=True, slots=True)
class RuleRecord:
    name: str
    pattern: str
    session_duration: int | None
    console: bool
    cli: bool
    source: Source
    target: str | None = None
    """The rule's ``accounts:`` target key; none: any registered account its pattern names."""
    access: Access = "standing"
    policy: str | None = None
    require_mfa: bool = False
    mfa_max_age: int | None = None


def rules_matcher(rules: Iterable[RuleRecord]) -> RuleMatcher:
    """All rule patterns in one RE2 set (built once while the patterns stay the same)."""
    return rule_matcher(tuple(r.pattern for r in rules))


@dataclass(frozen=True)
class MappingSnapshot:
    accounts: dict[str, AccountRecord]
    roles: dict[tuple[str, str], RoleRecord]
    """(account id, lower-cased role name) → role; IAM role names are case-insensitive."""
    mappings_by_group: dict[str, tuple[MappingRecord, ...]]
    rules: tuple[RuleRecord, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    matcher: RuleMatcher | None = None
    """The rules' patterns in RE2 (``broker.mapping.patterns``), in the order of ``rules``."""
    org_mappings_by_group: dict[str, tuple[OrgMappingRecord, ...]] = field(default_factory=dict)
    targeted: dict[str, frozenset[str]] = field(default_factory=dict)
    """Target key → the registered accounts discovery placed under it (of the targets this
    snapshot's org mappings and rules name; a full snapshot: every target)."""

    @classmethod
    def build(
        cls,
        accounts: Iterable[AccountRecord],
        roles: Iterable[RoleRecord],
        mappings: Iterable[MappingRecord],
        rules: Iterable[RuleRecord] = (),
        org_mappings: Iterable[OrgMappingRecord] = (),
        placement_targets: Iterable[tuple[str, str]] = (),
    ) -> MappingSnapshot:
        """``placement_targets``: (account id, target key) for each target an account is under."""
        accs = {a.id: a for a in accounts}
        rules = tuple(rules)
        by_group: dict[str, list[MappingRecord]] = {}
        for m in mappings:
            by_group.setdefault(m.group_key, []).append(m)
        org_by_group: dict[str, list[OrgMappingRecord]] = {}
        for om in org_mappings:
            org_by_group.setdefault(om.group_key, []).append(om)
        targeted: dict[str, set[str]] = {}
        for account_id, target in placement_targets:
            targeted.setdefault(target, set()).add(account_id)
        return cls(
            accounts=accs,
            roles={(r.account_id, r.name.lower()): r for r in roles},
            mappings_by_group={k: tuple(v) for k, v in by_group.items()},
            rules=rules,
            aliases={a.alias.lower(): a.id for a in accs.values() if a.alias},
            matcher=rules_matcher(rules),
            org_mappings_by_group={k: tuple(v) for k, v in org_by_group.items()},
            targeted={k: frozenset(v) for k, v in targeted.items()},
        )

    def account(self, ref: str) -> AccountRecord | None:
        """An account by its 12-digit id or its alias (case-insensitive)."""
        acc = self.accounts.get(ref)
        if acc is None:
            acc_id = self.aliases.get(ref.lower())
            acc = self.accounts.get(acc_id) if acc_id else None
        return acc

    def selected(self, target: str) -> list[AccountRecord]:
        """The registered accounts discovery placed under ``target``, by id."""
        return [self.accounts[a] for a in sorted(self.targeted.get(target, ())) if a in self.accounts]

    def account_roles(self, account_id: str) -> list[RoleRecord]:
        """Every mapped role of an account, by name: those it declares, and those an org mapping
        (``accounts:``) grants there without the account declaring them (AWS's default maximum
        session, as resolution gives them). What aws-setup, doctor and revoke enumerate."""
        roles = {k: r for (a, k), r in self.roles.items() if a == account_id}
        for _, role_name in self._org_roles(account_id):
            roles.setdefault(role_name.lower(), RoleRecord(account_id, role_name, "/", AWS_DEFAULT_MAX_SESSION))
        return sorted(roles.values(), key=lambda r: r.name.lower())

    def mapped_groups(self, account_id: str) -> dict[str, list[str]]:
        """Role name (lower case) → the groups whose mappings name it in this account, named or
        through an OU or a tag."""
        mapped: dict[str, list[str]] = {}
        for mappings in self.mappings_by_group.values():
            for m in mappings:
                if m.account_id == account_id:
                    mapped.setdefault(m.role_name.lower(), []).append(m.group)
        for group, role_name in self._org_roles(account_id):
            mapped.setdefault(role_name.lower(), []).append(group)
        return mapped

    def _org_roles(self, account_id: str) -> list[tuple[str, str]]:
        """(group, role name) of the org mappings whose target holds the account."""
        return [(om.group, om.role_name) for oms in self.org_mappings_by_group.values() for om in oms
                if account_id in self.targeted.get(om.target, ())]

    def role(self, account_id: str, name: str) -> RoleRecord | None:
        return self.roles.get((account_id, name.lower()))
