"""Queries over the mapping tables. Keyword-light functions that take the session explicitly."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import JSON, Connection, String, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from broker.db.models import Account, Mapping, NamingRule, Role
from broker.groups import match_key
from broker.mapping.model import (
    DEFAULT_REGION,
    AccountSpec,
    MappingDocument,
    MappingSpec,
    RoleSpec,
    RuleSpec,
    SamlFederation,
    WebIdentityFederation,
)
from broker.mapping.rules import normalize_groups, rule_candidates
from broker.mapping.snapshot import AccountRecord, MappingRecord, MappingSnapshot, RoleRecord, RuleRecord

# ---- rows → specs (what the API returns and exports) ----


def account_spec(acc: Account, *, with_roles: bool = False) -> AccountSpec:
    fed = (
        SamlFederation(saml_provider=acc.saml_provider or "broker")
        if acc.federation_path == "saml"
        else WebIdentityFederation(path="web_identity", audience=acc.audience)
    )
    return AccountSpec(
        id=acc.id,
        alias=acc.alias,
        partition=acc.partition,  # type: ignore[arg-type]
        default_region=acc.default_region,
        environment=acc.environment,
        owner=acc.owner,
        description=acc.description,
        federation=fed,
        roles=[role_spec(r) for r in acc.roles] if with_roles else [],
    )


def role_spec(role: Role) -> RoleSpec:
    return RoleSpec(
        name=role.name, path=role.path, max_session_duration=role.max_session_duration, description=role.description
    )


def mapping_spec(m: Mapping) -> MappingSpec:
    return MappingSpec(
        group=m.group_name,
        account=m.role.account_id,
        role=m.role.name,
        session_duration=m.session_duration,
        console=m.console,
        cli=m.cli,
        description=m.description,
    )


def rule_spec(r: NamingRule) -> RuleSpec:
    # not re-validated: a rule stored before patterns had to be RE2 is still listed, exported and deletable
    return RuleSpec.model_construct(
        name=r.name,
        pattern=r.pattern,
        session_duration=r.session_duration,
        console=r.console,
        cli=r.cli,
        description=r.description,
    )


# ---- specs → rows ----


def apply_account_fields(acc: Account, spec: AccountSpec) -> None:
    acc.alias = spec.alias
    acc.partition = spec.partition
    acc.default_region = spec.default_region
    acc.environment = spec.environment
    acc.owner = spec.owner
    acc.description = spec.description
    acc.federation_path = spec.federation.path
    acc.saml_provider = spec.federation.saml_provider if isinstance(spec.federation, SamlFederation) else None
    acc.audience = spec.federation.audience if isinstance(spec.federation, WebIdentityFederation) else None


def apply_role_fields(role: Role, spec: RoleSpec) -> None:
    role.name = spec.name
    role.name_key = spec.name.lower()
    role.path = spec.path
    role.max_session_duration = spec.max_session_duration
    role.description = spec.description


def apply_mapping_fields(m: Mapping, spec: MappingSpec, role: Role) -> None:
    m.group_name = spec.group
    m.group_key = match_key(spec.group)
    m.role_id = role.id
    m.role = role
    m.session_duration = spec.session_duration
    m.console = spec.console
    m.cli = spec.cli
    m.description = spec.description


def apply_rule_fields(r: NamingRule, spec: RuleSpec) -> None:
    r.name = spec.name
    r.pattern = spec.pattern
    r.session_duration = spec.session_duration
    r.console = spec.console
    r.cli = spec.cli
    r.description = spec.description


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


def count_roles(s: Session, account_id: str) -> int:
    return s.scalar(select(func.count()).select_from(Role).where(Role.account_id == account_id)) or 0


def count_mappings(s: Session, role_id: int) -> int:
    return s.scalar(select(func.count()).select_from(Mapping).where(Mapping.role_id == role_id)) or 0


# ---- snapshots for resolution ----


_ACCOUNT_COLS = (
    Account.id,
    Account.alias,
    Account.partition,
    Account.default_region,
    Account.environment,
    Account.federation_path,
    Account.saml_provider,
    Account.audience,
)


def _account_records(rows: Iterable[Sequence]) -> list[AccountRecord]:
    return [
        AccountRecord(
            id=r[0],
            alias=r[1],
            partition=r[2],
            region=r[3] or DEFAULT_REGION[r[2]],
            environment=r[4],
            federation_path=r[5],
            saml_provider=r[6] if r[5] == "saml" else None,
            audience=r[7] if r[5] == "web_identity" else None,
        )
        for r in rows
    ]


# The issuance-path statements are built once; the IN lists are expanding bind parameters,
# so SQLAlchemy neither rebuilds nor recompiles them per call.
_RULES_Q = select(
    NamingRule.name, NamingRule.pattern, NamingRule.session_duration, NamingRule.console, NamingRule.cli, NamingRule.source
).order_by(NamingRule.name)
_MAPPING_COLS = (
    Mapping.id,
    Mapping.group_name,
    Mapping.group_key,
    Mapping.session_duration,
    Mapping.console,
    Mapping.cli,
    Mapping.source,
    Role.name,
    Role.path,
    Role.max_session_duration,
    *_ACCOUNT_COLS,
)
_MAPPINGS_FROM = select(*_MAPPING_COLS).join(Role, Mapping.role_id == Role.id).join(Account, Role.account_id == Account.id)
# One array parameter instead of hundreds of placeholders: PostgreSQL `= ANY(:keys)`,
# SQLite `IN (SELECT value FROM json_each(:keys))`.
_MAPPINGS_Q = {
    "postgresql": _MAPPINGS_FROM.where(Mapping.group_key == any_(bindparam("keys", type_=postgresql.ARRAY(String)))),
    "sqlite": _MAPPINGS_FROM.where(
        Mapping.group_key.in_(select(func.json_each(bindparam("keys", type_=JSON)).table_valued("value").c.value))
    ),
}
_MAPPINGS_Q_GENERIC = _MAPPINGS_FROM.where(Mapping.group_key.in_(bindparam("keys", expanding=True)))
_ACCOUNTS_BY_REF_Q = select(*_ACCOUNT_COLS).where(
    Account.id.in_(bindparam("ids", expanding=True)) | Account.alias.in_(bindparam("aliases", expanding=True))
)
_ROLES_Q = select(Role.account_id, Role.name, Role.path, Role.max_session_duration).where(
    Role.account_id.in_(bindparam("accounts", expanding=True)), Role.name_key.in_(bindparam("names", expanding=True))
)


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
            acc_id, role_key = row[10], row[7].lower()
            if acc_id not in accounts:
                (accounts[acc_id],) = _account_records([row[10:]])
            if (acc_id, role_key) not in roles:
                roles[(acc_id, role_key)] = RoleRecord(acc_id, row[7], row[8], row[9])
            mappings.append(MappingRecord(str(row[0]), row[1], row[2], acc_id, row[7], row[3], row[4], row[5], row[6]))
    rules = load_rules(s)
    candidates = rule_candidates(normalized, rules) if rules else []
    if candidates:
        refs = {ref for _, _, ref, _ in candidates}
        params = {"ids": sorted(refs), "aliases": sorted({r.lower() for r in refs})}
        for acc in _account_records(s.execute(_ACCOUNTS_BY_REF_Q, params)):
            accounts[acc.id] = acc
        by_ref = {a.id: a.id for a in accounts.values()} | {a.alias: a.id for a in accounts.values() if a.alias}
        wanted = {(by_ref[ref.lower()], name.lower()) for _, _, ref, name in candidates if ref.lower() in by_ref}
        if wanted:
            params = {"accounts": sorted({a for a, _ in wanted}), "names": sorted({n for _, n in wanted})}
            for r in s.execute(_ROLES_Q, params):
                roles[(r[0], r[1].lower())] = RoleRecord(*r)
    return MappingSnapshot.build(accounts.values(), roles.values(), mappings, rules)


def full_snapshot(s: Session) -> MappingSnapshot:
    accounts = _account_records(s.execute(select(*_ACCOUNT_COLS)))
    roles = [RoleRecord(*r) for r in s.execute(select(Role.account_id, Role.name, Role.path, Role.max_session_duration))]
    mappings = [
        MappingRecord(str(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])
        for r in s.execute(
            select(
                Mapping.id,
                Mapping.group_name,
                Mapping.group_key,
                Role.account_id,
                Role.name,
                Mapping.session_duration,
                Mapping.console,
                Mapping.cli,
                Mapping.source,
            ).join(Role, Mapping.role_id == Role.id)
        )
    ]
    return MappingSnapshot.build(accounts, roles, mappings, load_rules(s))


# ---- the whole document ----


def export_document(s: Session, *, source: str | None = None) -> MappingDocument:
    """Everything (or only ``source`` = config | api objects) as one mapping document."""
    acc_q = select(Account).order_by(Account.id)
    map_q = select(Mapping).join(Role).order_by(Role.account_id, Role.name_key, Mapping.group_key)
    rule_q = select(NamingRule).order_by(NamingRule.name)
    accounts = []
    for acc in s.scalars(acc_q):
        spec = account_spec(acc)
        roles = [role_spec(r) for r in acc.roles if source is None or r.source == source]
        if source is None or acc.source == source or roles:
            accounts.append(spec.model_copy(update={"roles": roles}))
    mappings = [mapping_spec(m) for m in s.scalars(map_q) if source is None or m.source == source]
    rules = [rule_spec(r) for r in s.scalars(rule_q) if source is None or r.source == source]
    return MappingDocument.model_construct(version=1, accounts=accounts, mappings=mappings, rules=rules)
