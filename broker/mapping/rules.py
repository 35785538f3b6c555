"""Mapping resolution: a pure function from a user's groups and the mapping data to role grants.

Each grant lists every reason it exists (the mapping row or naming rule, and the group that
matched). Groups match case-insensitively after DN reduction (``broker.groups``).

Naming rules are regular expressions over group names with the named groups ``account``
(a 12-digit id or an alias of a registered account) and ``role``, e.g. the ADFS convention
``^AWS-(?P<account>\\d{12})-(?P<role>[\\w+=,.@-]+)$``. The pattern must match the whole
group name (``fullmatch``). Patterns are RE2 syntax, matched in linear time
(``broker.mapping.patterns``); a group name longer than ``MAX_GROUP_LENGTH`` is not tried. A rule never creates an account: the account must be registered.
A role the rule names but that is not registered gets AWS's default maximum session (1 h),
the shortest any IAM role allows, so the broker never asks for more than the role permits.

Mappings and rules with ``accounts:`` (an OU or a tag, ``broker.mapping.org_targets``) reach the
registered accounts the snapshot's ``targeted`` lists for their target (what discovery recorded):
a mapping grants its role in each; a rule whose pattern has no ``account`` group grants the
matched role in each, and one with an ``account`` group only if that account is among them. A
role such a target names that an account does not declare is treated like a rule's (1 h).
Their reasons say how the account was reached (``via``: ``OU ou-...``, ``tag env=prod``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from broker.domain import GrantReason, RoleGrant
from broker.groups import normalize
from broker.mapping.model import AWS_DEFAULT_MAX_SESSION, ROLE_NAME
from broker.mapping.org_targets import Target
from broker.mapping.patterns import MAX_GROUP_LENGTH, RuleMatcher
from broker.mapping.snapshot import AccountRecord, MappingSnapshot, RoleRecord, RuleRecord, rules_matcher


class NormalizedGroup(NamedTuple):
    given: str
    name: str
    key: str


@dataclass(frozen=True)
class Resolution:
    grants: tuple[RoleGrant, ...]
    groups: tuple[NormalizedGroup, ...]
    unmatched: tuple[str, ...]
    """Groups (display names) that produced no grant."""
    notes: tuple[str, ...] = field(default=())
    """Why a rule match produced nothing (unknown account, invalid role name)."""


def normalize_groups(groups: Iterable[str]) -> tuple[NormalizedGroup, ...]:
    seen: dict[str, NormalizedGroup] = {}
    for g in groups:
        name, key = normalize(g)
        if key and key not in seen:
            seen[key] = NormalizedGroup(g, name, key)
    return tuple(seen.values())


def rule_candidates(
    groups: Iterable[NormalizedGroup], rules: Iterable[RuleRecord], matcher: RuleMatcher | None = None
) -> list[tuple[NormalizedGroup, RuleRecord, str, str]]:
    """(group, rule, account ref, role name) for every rule that matches a group."""
    out: list[tuple[NormalizedGroup, RuleRecord, str, str]] = []
    rules = tuple(rules)
    if not rules:
        return out
    if matcher is None:
        matcher = rules_matcher(rules)
    for g in groups:
        for i, account, role in matcher.matches(g.name):
            out.append((g, rules[i], account, role))
    return out


def rule_notes(groups: Iterable[NormalizedGroup], rules: tuple[RuleRecord, ...], matcher: RuleMatcher) -> list[str]:
    """Why a rule or a group took no part in rule matching."""
    notes = [
        f"rule {rules[i].name!r} is never matched: its pattern is not RE2 syntax ({why}); replace it"
        for i, why in sorted(matcher.problems.items())
    ]
    notes += [
        f"group {g.name[:40]!r}... is longer than {MAX_GROUP_LENGTH} characters: not tried against naming rules"
        for g in groups
        if len(g.name) > MAX_GROUP_LENGTH
    ]
    return notes


def org_mapping_ref(mapping_id: str | int) -> str:
    """A mapping with ``accounts:`` in a grant's reasons (its own id space: /org-mappings/<id>)."""
    return f"org-{mapping_id}"


def _rule_accounts(
    g: NormalizedGroup, rule: RuleRecord, account_ref: str, data: MappingSnapshot, notes: list[str]
) -> list[tuple[AccountRecord, str | None]]:
    """The accounts a rule's match grants in, each with how it was reached (``via``): the account
    its pattern names (which its ``accounts:`` target, if any, must hold), or, for a targeted
    pattern without an ``account`` group, every account of the target."""
    via = Target.from_key(rule.target).via if rule.target is not None else None
    selected = data.selected(rule.target) if rule.target is not None else []
    if not account_ref:
        if rule.target is None:  # stored before patterns were checked: never matches
            return []
        if not selected:
            notes.append(f"rule {rule.name!r} matched {g.name!r} but no registered account is under {via}")
        return [(acc, via) for acc in selected]
    acc = data.account(account_ref)
    if acc is None:
        notes.append(f"rule {rule.name!r} matched {g.name!r} but account {account_ref!r} is not registered")
        return []
    if rule.target is not None and acc.id not in {a.id for a in selected}:
        notes.append(f"rule {rule.name!r} matched {g.name!r} but account {acc.id} is not under {via}")
        return []
    return [(acc, via)]


def role_grant(acc: AccountRecord, role: RoleRecord, reasons: tuple[GrantReason, ...]) -> RoleGrant:
    """The grant of ``role`` in ``acc`` for ``reasons`` (also a break-glass account's listed roles)."""
    return RoleGrant(
        account_id=acc.id,
        account_alias=acc.alias,
        partition=acc.partition,
        region=acc.region,
        environment=acc.environment,
        federation_path=acc.federation_path,
        saml_provider=acc.saml_provider,
        audience=acc.audience,
        role_name=role.name,
        role_path=role.path,
        role_max_session=role.max_session_duration,
        reasons=reasons,
        assertion_encryption=acc.assertion_encryption,
    )


def resolve(groups: Iterable[str], data: MappingSnapshot) -> Resolution:
    normalized = normalize_groups(groups)
    reasons: dict[tuple[str, str], list[GrantReason]] = {}
    targets: dict[tuple[str, str], tuple[AccountRecord, RoleRecord]] = {}
    matched: set[str] = set()
    notes: list[str] = []

    def add(acc: AccountRecord, role: RoleRecord, reason: GrantReason, group_key: str) -> None:
        key = (acc.id, role.name.lower())
        targets.setdefault(key, (acc, role))
        reasons.setdefault(key, []).append(reason)
        matched.add(group_key)

    for g in normalized:
        for m in data.mappings_by_group.get(g.key, ()):
            acc = data.accounts.get(m.account_id)
            role = data.role(m.account_id, m.role_name)
            if acc is None or role is None:  # a partial snapshot that misses it: not reachable
                continue
            add(acc, role, GrantReason("mapping", m.id, g.given, m.console, m.cli, m.session_duration, m.source,
                                       None, m.access, m.policy, m.require_mfa, m.mfa_max_age), g.key)

    for g in normalized:
        for om in data.org_mappings_by_group.get(g.key, ()):
            via = Target.from_key(om.target).via
            selected = data.selected(om.target)
            if not selected:
                notes.append(f"mapping {org_mapping_ref(om.id)} for {g.name!r}: no registered account is under {via} "
                             "(as the last `broker org discover --apply` recorded)")
            for acc in selected:
                role = data.role(acc.id, om.role_name) or RoleRecord(acc.id, om.role_name, "/", AWS_DEFAULT_MAX_SESSION)
                reason = GrantReason("mapping", org_mapping_ref(om.id), g.given, om.console, om.cli,
                                     om.session_duration, om.source, via, om.access, om.policy, om.require_mfa,
                                     om.mfa_max_age)
                add(acc, role, reason, g.key)

    matcher = data.matcher or rules_matcher(data.rules)
    if data.rules:
        notes.extend(rule_notes(normalized, data.rules, matcher))
    for g, rule, account_ref, role_name in rule_candidates(normalized, data.rules, matcher):
        for acc, rule_via in _rule_accounts(g, rule, account_ref, data, notes):
            if not ROLE_NAME.match(role_name) or role_name.lower().startswith("awsreservedsso_"):
                notes.append(f"rule {rule.name!r} matched {g.name!r} but {role_name!r} is not an assumable role name")
                break
            role = data.role(acc.id, role_name) or RoleRecord(acc.id, role_name, "/", AWS_DEFAULT_MAX_SESSION)
            reason = GrantReason("rule", rule.name, g.given, rule.console, rule.cli, rule.session_duration, rule.source,
                                 rule_via, rule.access, rule.policy, rule.require_mfa, rule.mfa_max_age)
            add(acc, role, reason, g.key)

    grants = [role_grant(*targets[key], tuple(reasons[key]))
              for key in sorted(targets, key=lambda k: ((targets[k][0].alias or "").lower(), k[0], k[1]))]
    unmatched = tuple(g.name for g in normalized if g.key not in matched)
    return Resolution(tuple(grants), normalized, unmatched, tuple(notes))
