"""Reads of the mapping tables: look-ups, the admin lists, the snapshots issuance resolves
against, and the export. Keyword-light functions that take the session (or connection)
explicitly; nothing here writes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from sqlalchemy import JSON, Connection, Row, Select, String, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from broker.aws.partitions import partition
from broker.db.models import Account, Mapping, NamingRule, OrgMapping, OrgPlacement, OrgPlacementTarget, Role
from broker.db.rows import account_spec, mapping_spec, org_mapping_spec, role_spec, rule_spec
from broker.domain import SamlEncryption
from broker.errors import NotFound
from broker.groups import match_key
from broker.mapping.model import MappingDocument
from broker.mapping.rules import normalize_groups, rule_candidates
from broker.mapping.snapshot import (
    AccountRecord,
    MappingRecord,
    MappingSnapshot,
    OrgMappingRecord,
    RoleRecord,
    RuleRecord,
)

# ---- look-ups ----


def find_account(s: Session, ref: str) -> Account | None:
    """By 12-digit id or alias (case-insensitive)."""
    acc = s.get(Account, ref)
    if acc is None:
        acc = s.scalar(select(Account).where(Account.alias == ref.lower()))
    return acc


def find_role(s: Session, account_id: str, name: str) -> Role | None:
    return s.scalar(select(Role).where(Role.account_id == account_id, Role.name_key == name.lower()))


def find_mapping(s: Session, group: str, role: Role) -> Mapping | None:
    return s.scalar(select(Mapping).where(Mapping.group_key == match_key(group), Mapping.role_id == role.id))


def find_org_mapping(s: Session, group: str, target: str, role_name: str) -> OrgMapping | None:
    return s.scalar(select(OrgMapping).where(OrgMapping.group_key == match_key(group), OrgMapping.target == target,
                                             OrgMapping.role_key == role_name.lower()))


def count_roles(s: Session, account_id: str) -> int:
    return s.scalar(select(func.count()).select_from(Role).where(Role.account_id == account_id)) or 0


def count_mappings(s: Session, role_id: int) -> int:
    return s.scalar(select(func.count()).select_from(Mapping).where(Mapping.role_id == role_id)) or 0


# ---- the objects an admin route names (NotFound otherwise) ----


def get_account(s: Session, *, ref: str) -> Account:
    acc = find_account(s, ref)
    if acc is None:
        raise NotFound(f"no account {ref!r} is registered")
    return acc


def get_role(s: Session, *, account: str, name: str) -> Role:
    acc = get_account(s, ref=account)
    role = find_role(s, acc.id, name)
    if role is None:
        raise NotFound(f"account {acc.id} has no role {name!r}")
    return role


def get_mapping(s: Session, *, mapping_id: int) -> Mapping:
    m = s.get(Mapping, mapping_id)
    if m is None:
        raise NotFound(f"no mapping {mapping_id}")
    return m


def get_org_mapping(s: Session, *, mapping_id: int) -> OrgMapping:
    m = s.get(OrgMapping, mapping_id)
    if m is None:
        raise NotFound(f"no org mapping {mapping_id}")
    return m


def get_rule(s: Session, *, name: str) -> NamingRule:
    r = s.get(NamingRule, name)
    if r is None:
        raise NotFound(f"no naming rule {name!r}")
    return r


# ---- the admin lists ----


def accounts(s: Session) -> list[Account]:
    return list(s.scalars(select(Account).order_by(Account.id)))


def rules(s: Session) -> list[NamingRule]:
    return list(s.scalars(select(NamingRule).order_by(NamingRule.name)))


def mappings(
    s: Session, *, group: str | None, account: str | None, role: str | None, limit: int, after_id: int | None
) -> list[Mapping]:
    """A page of mappings in id order, filtered (an unknown account: none)."""
    q = select(Mapping).join(Role).order_by(Mapping.id).limit(limit)
    if after_id is not None:
        q = q.where(Mapping.id > after_id)
    if group:
        q = q.where(Mapping.group_key == match_key(group))
    if account:
        acc = find_account(s, account)
        if acc is None:
            return []
        q = q.where(Role.account_id == acc.id)
    if role:
        q = q.where(Role.name_key == role.lower())
    return list(s.scalars(q))


def org_mappings(s: Session, *, group: str | None = None) -> list[OrgMapping]:
    q = select(OrgMapping).order_by(OrgMapping.id)
    if group:
        q = q.where(OrgMapping.group_key == match_key(group))
    return list(s.scalars(q))


def placements(s: Session) -> list[OrgPlacement]:
    return list(s.scalars(select(OrgPlacement).order_by(OrgPlacement.account_id)))


def role_descriptions(s: Session, account_ids: list[str]) -> dict[str, str]:
    """``<account id>/<role name, lower case>`` → description, for the roles that have one."""
    q = select(Role.account_id, Role.name_key, Role.description).where(Role.account_id.in_(account_ids))
    return {f"{a}/{k}": d for a, k, d in s.execute(q) if d}


# ---- snapshots for resolution: each record's columns named after its fields ----


def _record_columns(record: type[Any], table: type[Any], **elsewhere: Any) -> tuple[Any, ...]:
    """The columns a record is built from, in the order of its fields (so ``Record(*row)``
    holds): the table's column of the field's name, or the one given for it."""
    return tuple(
        (elsewhere[f.name] if f.name in elsewhere else getattr(table, f.name)).label(f.name) for f in fields(record)
    )


_ACCOUNT_FIELDS = (
    Account.alias,
    Account.partition,
    Account.default_region,
    Account.environment,
    Account.federation_path,
    Account.saml_provider,
    Account.audience,
    Account.saml_encryption_mode,
    Account.saml_provider_uuid,
    Account.saml_encryption_cert,
)
_ACCOUNT_COLS = (Account.id.label("account_id"), *_ACCOUNT_FIELDS)


def _account_record(r: Row[*tuple[Any, ...]]) -> AccountRecord:
    return AccountRecord(
        id=r.account_id,
        alias=r.alias,
        partition=r.partition,
        region=r.default_region or partition(r.partition).default_region,
        environment=r.environment,
        federation_path=r.federation_path,
        saml_provider=r.saml_provider if r.federation_path == "saml" else None,
        audience=r.audience if r.federation_path == "web_identity" else None,
        assertion_encryption=(
            SamlEncryption(r.saml_encryption_mode, r.saml_provider_uuid, r.saml_encryption_cert)
            if r.federation_path == "saml" and r.saml_encryption_mode else None
        ),
    )


_RULE_COLS = _record_columns(RuleRecord, NamingRule)
_ROLE_COLS = _record_columns(RoleRecord, Role)
_MAPPING_COLS = _record_columns(
    MappingRecord, Mapping, group=Mapping.group_name, account_id=Role.account_id, role_name=Role.name
)

# The issuance-path statements are built once; the IN lists are expanding bind parameters,
# so SQLAlchemy neither rebuilds nor recompiles them per call.
_RULES_Q = select(*_RULE_COLS).order_by(NamingRule.name)
_MAPPINGS_FROM = (
    # account_id: the role's
    select(*_MAPPING_COLS, Role.path, Role.max_session_duration, Role.managed_policy_arns, *_ACCOUNT_FIELDS)
    .join(Role, Mapping.role_id == Role.id)
    .join(Account, Role.account_id == Account.id)
)
# One array parameter instead of hundreds of placeholders: PostgreSQL `= ANY(:keys)`,
# SQLite `IN (SELECT value FROM json_each(:keys))`.
_MAPPINGS_Q: dict[str, Select[Any]] = {
    "postgresql": _MAPPINGS_FROM.where(Mapping.group_key == any_(bindparam("keys", type_=postgresql.ARRAY(String)))),
    "sqlite": _MAPPINGS_FROM.where(
        Mapping.group_key.in_(select(func.json_each(bindparam("keys", type_=JSON)).table_valued("value").c.value))
    ),
}
_MAPPINGS_Q_GENERIC = _MAPPINGS_FROM.where(Mapping.group_key.in_(bindparam("keys", expanding=True)))
_ACCOUNTS_BY_REF_Q = select(*_ACCOUNT_COLS).where(
    Account.id.in_(bindparam("ids", expanding=True)) | Account.alias.in_(bindparam("aliases", expanding=True))
)
_ROLES_Q = select(*_ROLE_COLS).where(
    Role.account_id.in_(bindparam("accounts", expanding=True)), Role.name_key.in_(bindparam("names", expanding=True))
)


def _role_record(r: Row[*tuple[Any, ...]]) -> RoleRecord:
    return RoleRecord(r.account_id, r.name, r.path, r.max_session_duration, tuple(r.managed_policy_arns))


def _mapping_record(r: Row[*tuple[Any, ...]]) -> MappingRecord:
    return MappingRecord(
        str(r.id), r.group, r.group_key, r.account_id, r.role_name, r.session_duration, r.console, r.cli, r.source,
        r.access, r.policy, r.require_mfa, r.mfa_max_age,
    )


_ORG_MAPPING_COLS = _record_columns(OrgMappingRecord, OrgMapping, id=OrgMapping.id, group=OrgMapping.group_name)
_ORG_MAPPINGS_Q = select(*_ORG_MAPPING_COLS).where(OrgMapping.group_key.in_(bindparam("keys", expanding=True)))
_TARGETED_Q = select(OrgPlacementTarget.account_id, OrgPlacementTarget.target).where(
    OrgPlacementTarget.target.in_(bindparam("targets", expanding=True))
)
_ACCOUNTS_BY_ID_Q = select(*_ACCOUNT_COLS).where(Account.id.in_(bindparam("ids", expanding=True)))


def _org_mapping_record(r: Row[*tuple[Any, ...]]) -> OrgMappingRecord:
    return OrgMappingRecord(str(r.id), *tuple(r)[1:])


def load_rules(s: Session | Connection) -> list[RuleRecord]:
    return [RuleRecord(*r) for r in s.execute(_RULES_Q)]


def snapshot_for_groups(s: Session | Connection, groups: Iterable[str]) -> MappingSnapshot:
    """Just the mapping data ``groups`` can reach: one indexed query for the mapping rows,
    plus the rules and the accounts/roles the rules point at."""
    normalized = normalize_groups(groups)
    keys = [g.key for g in normalized]
    accounts: dict[str, AccountRecord] = {}
    roles: dict[tuple[str, str], RoleRecord] = {}
    mappings: list[MappingRecord] = []
    if keys:
        dialect = s.dialect if isinstance(s, Connection) else s.get_bind().dialect
        query = _MAPPINGS_Q.get(dialect.name, _MAPPINGS_Q_GENERIC)
        for row in s.execute(query, {"keys": keys}):
            acc_id, role_key = row.account_id, row.role_name.lower()
            if acc_id not in accounts:
                accounts[acc_id] = _account_record(row)
            if (acc_id, role_key) not in roles:
                roles[(acc_id, role_key)] = RoleRecord(
                    acc_id, row.role_name, row.path, row.max_session_duration, tuple(row.managed_policy_arns)
                )
            mappings.append(_mapping_record(row))
    rules = load_rules(s)
    candidates = rule_candidates(normalized, rules) if rules else []
    org_mappings = [_org_mapping_record(r) for r in s.execute(_ORG_MAPPINGS_Q, {"keys": keys})] if keys else []
    # (target, role name) of the org mappings and targeted rules that matched: their accounts come
    # from the placements discovery recorded, their roles from those accounts'
    target_roles = {(om.target, om.role_name.lower()) for om in org_mappings}
    target_roles |= {(rule.target, name.lower()) for _, rule, _, name in candidates if rule.target is not None}
    placement_targets: list[tuple[str, str]] = []
    if target_roles:
        placement_targets = [(r.account_id, r.target) for r in
                             s.execute(_TARGETED_Q, {"targets": sorted({t for t, _ in target_roles})})]
    role_names: dict[str, set[str]] = {}
    for account_id, target in placement_targets:
        role_names.setdefault(account_id, set()).update(n for t, n in target_roles if t == target)
    missing = sorted(set(role_names) - set(accounts))
    if missing:
        for acc in map(_account_record, s.execute(_ACCOUNTS_BY_ID_Q, {"ids": missing})):
            accounts[acc.id] = acc
    wanted = {(a, n) for a, names in role_names.items() for n in names}
    if candidates:
        refs = {ref for _, _, ref, _ in candidates if ref}
        if refs:
            params = {"ids": sorted(refs), "aliases": sorted({r.lower() for r in refs})}
            for acc in map(_account_record, s.execute(_ACCOUNTS_BY_REF_Q, params)):
                accounts[acc.id] = acc
        by_ref = {a.id: a.id for a in accounts.values()} | {a.alias: a.id for a in accounts.values() if a.alias}
        wanted |= {(by_ref[ref.lower()], name.lower()) for _, _, ref, name in candidates if ref and ref.lower() in by_ref}
    wanted -= set(roles)
    if wanted:
        params = {"accounts": sorted({a for a, _ in wanted}), "names": sorted({n for _, n in wanted})}
        for r in s.execute(_ROLES_Q, params):
            roles.setdefault((r.account_id, r.name.lower()), _role_record(r))
    return MappingSnapshot.build(accounts.values(), roles.values(), mappings, rules, org_mappings, placement_targets)


def full_snapshot(s: Session) -> MappingSnapshot:
    accounts = [_account_record(r) for r in s.execute(select(*_ACCOUNT_COLS))]
    roles = [_role_record(r) for r in s.execute(select(*_ROLE_COLS))]
    mappings = [_mapping_record(r) for r in s.execute(select(*_MAPPING_COLS).join(Role, Mapping.role_id == Role.id))]
    org_mappings = [_org_mapping_record(r) for r in s.execute(select(*_ORG_MAPPING_COLS))]
    placement_targets = [(a, t) for a, t in s.execute(select(OrgPlacementTarget.account_id, OrgPlacementTarget.target))]
    return MappingSnapshot.build(accounts, roles, mappings, load_rules(s), org_mappings, placement_targets)


# ---- the whole document ----


def export_document(s: Session, *, source: str | None = None) -> MappingDocument:
    """Everything (or only ``source`` = config | api objects) as one mapping document."""
    map_q = select(Mapping).join(Role).order_by(Role.account_id, Role.name_key, Mapping.group_key)
    exported = []
    for acc in accounts(s):
        spec = account_spec(acc)
        roles = [role_spec(r) for r in acc.roles if source is None or r.source == source]
        if source is None or acc.source == source or roles:
            exported.append(spec.model_copy(update={"roles": roles}))
    return MappingDocument.model_construct(
        version=1,
        accounts=exported,
        mappings=[mapping_spec(m) for m in s.scalars(map_q) if source is None or m.source == source]
        + [org_mapping_spec(m) for m in org_mappings(s) if source is None or m.source == source],
        rules=[rule_spec(r) for r in rules(s) if source is None or r.source == source],
    )

