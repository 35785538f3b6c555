"""An immutable view of (part of) the mapping data, indexed for resolution.

A store builds a snapshot either of everything (export, benchmarks) or of just what a
set of groups can reach (one issuance); ``broker.mapping.rules.resolve`` reads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from broker.aws.partitions import PartitionName
from broker.domain import FederationPath, SamlEncryption, Source
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

    def role(self, account_id: str, name: str) -> RoleRecord | None:
        return self.roles.get((account_id, name.lower()))
