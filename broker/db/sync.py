"""The import and the config-file sync on the database: read the stored objects as values, let
the pure ``broker.db.reconcile.plan`` decide, write its steps with their audit events in the
caller's one transaction, under the mapping lock (``lock_mapping``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from broker.audit import AuditContext
from broker.db import history, rows
from broker.db.audit import record
from broker.db.models import Account, ConfigSync, Mapping, NamingRule, OrgMapping, Role, utcnow
from broker.db.reconcile import (
    API,
    CONFIG,
    Current,
    MappingKey,
    Op,
    OrgMappingKey,
    Reconciliation,
    RoleKey,
    Stored,
    plan,
)
from broker.domain import Source
from broker.errors import ConfigSyncFailed, InvalidImport, ReadOnly
from broker.mapping.model import MappingDocument
from broker.mapping.store import ImportPlan, Kind

CONFIG_ACTOR = AuditContext(actor="config-file")


@dataclass
class Rows:
    """The mapping's rows, keyed like ``reconcile.Current``."""

    accounts: dict[str, Account]
    roles: dict[RoleKey, Role]
    mappings: dict[MappingKey, Mapping]
    rules: dict[str, NamingRule]
    org_mappings: dict[OrgMappingKey, OrgMapping]

    def current(self) -> Current:
        """The rows as values, for the pure planner."""
        return Current(
            accounts={k: Stored(rows.account_spec(a), _source(a.source)) for k, a in self.accounts.items()},
            roles={k: Stored(rows.role_spec(r), _source(r.source)) for k, r in self.roles.items()},
            mappings={k: Stored(rows.mapping_spec(m), _source(m.source), m.id) for k, m in self.mappings.items()},
            rules={k: Stored(rows.rule_spec(r), _source(r.source)) for k, r in self.rules.items()},
            org_mappings={
                k: Stored(rows.org_mapping_spec(m), _source(m.source), m.id) for k, m in self.org_mappings.items()
            },
        )


def _source(value: str) -> Source:
    return CONFIG if value == CONFIG else API


def load_rows(s: Session) -> Rows:
    roles = {(r.account_id, r.name_key): r for r in s.scalars(select(Role))}  # before the mappings: their m.role
    return Rows(
        accounts={a.id: a for a in s.scalars(select(Account))},
        roles=roles,
        mappings={(m.group_key, m.role.account_id, m.role.name_key): m for m in s.scalars(select(Mapping).join(Role))},
        rules={r.name: r for r in s.scalars(select(NamingRule))},
        org_mappings={(m.group_key, m.target, m.role_key): m for m in s.scalars(select(OrgMapping))},
    )


def lock_mapping(s: Session) -> None:
    """Write the config_sync row first: a concurrent sync or import waits here until this one
    commits (the row's lock on PostgreSQL, the database's write lock on SQLite), then reads what
    it wrote. Syncs and applied imports thus run one at a time over the whole mapping."""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        pg = pg_insert(ConfigSync).values(name="mapping", changes=0)
        s.execute(pg.on_conflict_do_update(index_elements=["name"], set_={"name": pg.excluded.name}))
    elif dialect == "sqlite":
        lite = sqlite_insert(ConfigSync).values(name="mapping", changes=0)
        s.execute(lite.on_conflict_do_update(index_elements=["name"], set_={"name": lite.excluded.name}))
    elif s.get(ConfigSync, "mapping", with_for_update=True) is None:
        s.add(ConfigSync(name="mapping", changes=0))
        s.flush()


def document_hash(doc: MappingDocument) -> str:
    """SHA-256 of a mapping document's canonical JSON: which file's mapping was synced."""
    return hashlib.sha256(json.dumps(doc.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


# ---- the operations (each in the caller's transaction) ----


def _import_plan(s: Session, doc: MappingDocument) -> tuple[Rows, Reconciliation]:
    stored = load_rows(s)
    rec = plan(stored.current(), doc, managed=API)
    if rec.problems:
        raise InvalidImport("the document has dangling or duplicate references", details=rec.problems)
    return stored, rec


def plan_import(s: Session, *, doc: MappingDocument) -> ImportPlan:
    return _import_plan(s, doc)[1].plan


def apply_import(
    s: Session, *, doc: MappingDocument, ctx: AuditContext, check: Callable[[ImportPlan], None] | None = None
) -> ImportPlan:
    """``check`` sees the plan before any write, under the mapping lock, and may refuse it."""
    lock_mapping(s)
    stored, rec = _import_plan(s, doc)
    if rec.plan.conflicts:
        raise ReadOnly(
            "the import would change objects declared in the configuration file; nothing was changed",
            details=rec.plan.conflicts,
        )
    if check is not None:
        check(rec.plan)
    apply(s, stored, rec, managed=API, ctx=ctx)
    return rec.plan


def _sync_plan(s: Session, doc: MappingDocument) -> tuple[Rows, Reconciliation]:
    stored = load_rows(s)
    rec = plan(stored.current(), doc, managed=CONFIG)
    if rec.problems:
        raise ConfigSyncFailed(details=rec.problems)
    return stored, rec


def plan_config_sync(s: Session, *, doc: MappingDocument) -> ImportPlan:
    return _sync_plan(s, doc)[1].plan


def sync_config(s: Session, *, doc: MappingDocument) -> ImportPlan:
    lock_mapping(s)
    stored, rec = _sync_plan(s, doc)
    apply(s, stored, rec, managed=CONFIG, ctx=CONFIG_ACTOR)
    row = s.get(ConfigSync, "mapping")
    assert row is not None
    row.doc_hash = document_hash(doc)
    row.synced_at = utcnow()
    row.changes = rec.plan.changes
    return rec.plan


# ---- applying a plan ----


def _target(row: Account | Role | Mapping | NamingRule | OrgMapping) -> str:
    if isinstance(row, Role):
        return f"{row.account_id}/{row.name}"
    if isinstance(row, Mapping | OrgMapping):
        return str(row.id)
    if isinstance(row, Account):
        return row.id
    return row.name


_TARGET_TYPE: dict[Kind, str] = {
    "accounts": "account", "roles": "role", "mappings": "mapping", "rules": "rule", "org_mappings": "org_mapping"
}


def apply(s: Session, stored: Rows, rec: Reconciliation, *, managed: Source, ctx: AuditContext) -> None:
    """Write the steps in dependency order, each with its audit event."""
    via = {"via": "config-sync" if managed == CONFIG else "import"}
    by_kind: dict[Kind, dict[Any, Any]] = {
        "accounts": stored.accounts, "roles": stored.roles, "mappings": stored.mappings, "rules": stored.rules,
        "org_mappings": stored.org_mappings,
    }

    def note(kind: Kind, op: Op, row: Any, before: Any = None, after: Any = None, **extra: Any) -> None:
        target_type = _TARGET_TYPE[kind]
        record(s, ctx, f"{target_type}.{op}", target_type=target_type, target_id=_target(row),
               before=before, after=after, details=via | extra)

    def dumped(spec: Any) -> dict[str, Any] | None:
        return None if spec is None else dict(spec.model_dump(mode="json"))

    # An alias may move from one account to another in one plan (renamed, swapped, taken over by
    # a new account): free every alias that changes first, so the unique index never sees two.
    freed = [
        stored.accounts[st.key] for st in rec.steps
        if st.kind == "accounts" and st.before is not None and st.before.alias
        and (st.op == "delete" or (st.op == "update" and st.spec.alias != st.before.alias))
    ]
    for row in freed:
        history.before(s, row)
        row.alias = None
    if freed:
        s.flush()

    def upsert(kind: Kind, new_row: Callable[[Any], Any], fill: Callable[[Any, Any], None]) -> None:
        for st in rec.of(kind, "create"):
            row = new_row(st.key)
            fill(row, st)
            s.add(row)
            s.flush()
            history.after(s, row)
            by_kind[kind][st.key] = row
            note(kind, "create", row, after=dumped(st.spec))
        for st in rec.of(kind, "update"):
            row = by_kind[kind][st.key]
            history.before(s, row)
            fill(row, st)
            s.flush()
            history.after(s, row)
            note(kind, "update", row, before=dumped(st.before), after=dumped(st.spec))

    def release_and_delete(kind: Kind) -> None:
        for st in rec.of(kind, "release"):
            row = by_kind[kind][st.key]
            history.before(s, row)
            row.source = API
            history.after(s, row)
            note(kind, "release", row, before=dumped(st.before), after=dumped(st.before), held_by=list(st.held_by))
        for st in rec.of(kind, "delete"):
            row = by_kind[kind][st.key]
            note(kind, "delete", row, before=dumped(st.before))
            history.gone(s, row)
            s.delete(row)
        s.flush()

    upsert("accounts", lambda key: Account(id=key, source=managed), lambda row, st: rows.apply_account_fields(row, st.spec))
    upsert(
        "roles", lambda key: Role(account_id=key[0], account=stored.accounts[key[0]], source=managed),
        lambda row, st: rows.apply_role_fields(row, st.spec),
    )
    upsert("rules", lambda key: NamingRule(source=managed), lambda row, st: rows.apply_rule_fields(row, st.spec))
    release_and_delete("rules")
    release_and_delete("org_mappings")
    release_and_delete("mappings")
    s.flush()
    upsert(
        "mappings", lambda key: Mapping(source=managed),
        lambda row, st: rows.apply_mapping_fields(row, st.spec, stored.roles[(st.key[1], st.key[2])]),
    )
    upsert("org_mappings", lambda key: OrgMapping(source=managed), lambda row, st: rows.apply_org_mapping_fields(row, st.spec))
    release_and_delete("roles")
    release_and_delete("accounts")
    rec.plan.applied = True
