"""SqlMappingStore: the mapping store on SQLAlchemy (SQLite or PostgreSQL).

Every write is one transaction that also writes its audit event. Objects declared in the
configuration file (source "config") are read-only here: writes to them answer ReadOnly.
Foreign exceptions (SQLAlchemy) are translated into the broker's errors in ``_translate``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from broker import audit
from broker.audit import AuditContext, rfc3339
from broker.db import reconcile, repos
from broker.db.models import Account, AuditEvent, ConfigSync, Mapping, NamingRule, Role, utcnow
from broker.db.session import session_factory
from broker.errors import (
    BrokerError,
    ConfigSyncFailed,
    Conflict,
    Duplicate,
    InUse,
    InvalidImport,
    NotFound,
    ReadOnly,
    StorageUnavailable,
    UnknownAccount,
    UnknownRole,
)
from broker.groups import match_key
from broker.mapping.model import (
    AccountFields,
    AccountSpec,
    MappingDocument,
    MappingSpec,
    RoleSpec,
    RuleSpec,
)
from broker.mapping.snapshot import MappingSnapshot
from broker.mapping.store import ImportPlan

CONFIG_ACTOR = AuditContext(actor="config-file")
_Spec = TypeVar("_Spec", bound=BaseModel)
# The issuance path's audit row: a Core INSERT built once (no ORM unit of work per decision).
_AUDIT_INSERT = insert(AuditEvent.__table__)


def _dump(spec: Any) -> dict[str, Any]:
    return spec.model_dump(mode="json")


def _meta(row: Any) -> dict[str, Any]:
    return {"source": row.source, "created_at": rfc3339(row.created_at), "updated_at": rfc3339(row.updated_at)}


def _account_view(acc: Account) -> dict[str, Any]:
    d = _dump(repos.account_spec(acc))
    d.pop("roles")
    return d | _meta(acc)


def _role_view(role: Role) -> dict[str, Any]:
    return {"account": role.account_id, "arn": None, **_dump(repos.role_spec(role)), **_meta(role)} | {
        "arn": f"arn:{role.account.partition}:iam::{role.account_id}:role{role.path}{role.name}"
    }


def _mapping_view(m: Mapping) -> dict[str, Any]:
    return {"id": m.id, **_dump(repos.mapping_spec(m)), **_meta(m)}


def _rule_view(r: NamingRule) -> dict[str, Any]:
    return _dump(repos.rule_spec(r)) | _meta(r)


_Row = TypeVar("_Row", Account, Role, Mapping, NamingRule)


def _merged(current: dict[str, Any], changes: dict[str, Any], model: type[_Spec], drop: tuple[str, ...] = ()) -> _Spec:
    """A PATCH: ``changes`` laid over the current fields, validated as a whole (a field that is
    not the model's is ``unknown_field``: ``extra="forbid"``)."""
    base = {k: v for k, v in current.items() if k not in drop}
    return model.model_validate(base | changes)


def _writable(row: Any, what: str) -> None:
    if row.source == "config":
        raise ReadOnly(f"{what} is declared in the configuration file; change it there (it is read-only through the API)")


class SqlMappingStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)
        # PostgreSQL: the issuance path's statements run in autocommit, without BEGIN and COMMIT
        # round trips around them (each statement is atomic by itself; the mapping read's two
        # selects need no common snapshot, the audit rows are separate facts). SQLite has no
        # round trips to save, and pysqlite's autocommit switch costs more than it saves.
        self._issuance_engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if engine.dialect.name == "postgresql" else engine
        )

    # ---- plumbing ----

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with _translated(), self._sessions.begin() as s:
            yield s

    @contextmanager
    def _core_tx(self) -> Iterator[Connection]:
        """A plain connection for the issuance path's reads and audit rows (see __init__)."""
        with _translated(), self._issuance_engine.begin() as conn:
            yield conn

    @contextmanager
    def _write_tx(self) -> Iterator[Session]:
        """A transaction that writes what it has read (PUT, PATCH): on SQLite it takes the write
        lock up front (BEGIN IMMEDIATE: pysqlite would begin only at the first write, after the
        read); on PostgreSQL ``_locked`` locks the row it read until the commit."""
        with self._tx() as s:
            if self.engine.dialect.name == "sqlite":
                s.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield s

    def _locked(self, s: Session, row: _Row) -> _Row:
        """``row`` re-read with a row lock (SELECT ... FOR UPDATE) where the database has them."""
        if self.engine.dialect.name != "sqlite":
            s.refresh(row, with_for_update=True)
        return row

    def ping(self) -> None:
        with self._tx() as s:
            s.execute(text("SELECT 1"))

    # ---- issuance path ----

    def snapshot_for(self, groups: Iterable[str]) -> MappingSnapshot:
        with self._core_tx() as conn:
            return repos.snapshot_for_groups(conn, groups)

    def full_snapshot(self) -> MappingSnapshot:
        with self._tx() as s:
            return repos.full_snapshot(s)

    # ---- accounts ----

    def _account(self, s: Session, ref: str) -> Account:
        acc = repos.find_account(s, ref)
        if acc is None:
            raise NotFound(f"no account {ref!r} is registered")
        return acc

    def list_accounts(self) -> list[dict[str, Any]]:
        with self._tx() as s:
            return [_account_view(a) for a in s.scalars(select(Account).order_by(Account.id))]

    def get_account(self, ref: str) -> dict[str, Any]:
        with self._tx() as s:
            return _account_view(self._account(s, ref))

    def create_account(self, spec: AccountSpec, ctx: AuditContext, *, source: str = "api") -> dict[str, Any]:
        with self._tx() as s:
            return self._create_account(s, spec, ctx, source)

    def _create_account(self, s: Session, spec: AccountSpec, ctx: AuditContext, source: str) -> dict[str, Any]:
        if s.get(Account, spec.id) is not None:
            raise Duplicate(f"account {spec.id} is already registered")
        if spec.alias and repos.find_account(s, spec.alias) is not None:
            raise Duplicate(f"alias {spec.alias!r} is already used by another account")
        acc = Account(id=spec.id, source=source)
        repos.apply_account_fields(acc, spec)
        s.add(acc)
        s.flush()
        view = _account_view(acc)
        audit.record(s, ctx, "account.create", target_type="account", target_id=acc.id, after=view)
        for role in spec.roles:
            self._create_role(s, acc, role, ctx, source)
        return view

    def update_account(self, ref: str, fields: AccountFields, ctx: AuditContext) -> dict[str, Any]:
        with self._write_tx() as s:
            acc = self._locked(s, self._account(s, ref))
            return self._update_account(s, acc, fields, ctx)

    def patch_account(self, ref: str, changes: dict[str, Any], ctx: AuditContext) -> dict[str, Any]:
        """PATCH: the current fields with ``changes`` laid over them, validated as a whole and
        written in the one transaction that read them (a concurrent write is never undone)."""
        with self._write_tx() as s:
            acc = self._locked(s, self._account(s, ref))
            _writable(acc, f"account {acc.id}")
            current = _dump(repos.account_spec(acc))
            fields = _merged(current, changes, AccountFields, drop=("id", "roles"))
            return self._update_account(s, acc, fields, ctx)

    def _update_account(self, s: Session, acc: Account, fields: AccountFields, ctx: AuditContext) -> dict[str, Any]:
        _writable(acc, f"account {acc.id}")
        if fields.alias and (other := repos.find_account(s, fields.alias)) is not None and other.id != acc.id:
            raise Duplicate(f"alias {fields.alias!r} is already used by account {other.id}")
        before = _account_view(acc)
        repos.apply_account_fields(acc, AccountSpec(id=acc.id, **fields.model_dump()))
        s.flush()
        after = _account_view(acc)
        audit.record(s, ctx, "account.update", target_type="account", target_id=acc.id, before=before, after=after)
        return after

    def delete_account(self, ref: str, ctx: AuditContext) -> None:
        with self._tx() as s:
            acc = self._account(s, ref)
            _writable(acc, f"account {acc.id}")
            n = repos.count_roles(s, acc.id)
            if n:
                raise InUse(f"account {acc.id} still has {n} role(s); delete them first", details=[{"field": "roles", "value": n, "message": f"{n} role(s) registered in the account"}])
            audit.record(s, ctx, "account.delete", target_type="account", target_id=acc.id, before=_account_view(acc))
            s.delete(acc)

    # ---- roles ----

    def _role(self, s: Session, account: str, name: str) -> Role:
        acc = self._account(s, account)
        role = repos.find_role(s, acc.id, name)
        if role is None:
            raise NotFound(f"account {acc.id} has no role {name!r}")
        return role

    def list_roles(self, account: str) -> list[dict[str, Any]]:
        with self._tx() as s:
            return [_role_view(r) for r in self._account(s, account).roles]

    def role_descriptions(self, account_ids: Iterable[str]) -> dict[str, str]:
        """``<account id>/<role name, lower case>`` → description, for the registered roles of
        those accounts that have one (the portal shows them beside each role)."""
        ids = sorted(set(account_ids))
        if not ids:
            return {}
        with self._tx() as s:
            q = select(Role.account_id, Role.name_key, Role.description).where(Role.account_id.in_(ids))
            return {f"{a}/{k}": d for a, k, d in s.execute(q) if d}

    def get_role(self, account: str, name: str) -> dict[str, Any]:
        with self._tx() as s:
            return _role_view(self._role(s, account, name))

    def create_role(self, account: str, spec: RoleSpec, ctx: AuditContext) -> dict[str, Any]:
        with self._tx() as s:
            acc = repos.find_account(s, account)
            if acc is None:
                raise UnknownAccount(f"no account {account!r} is registered")
            return self._create_role(s, acc, spec, ctx, "api")

    def _create_role(self, s: Session, acc: Account, spec: RoleSpec, ctx: AuditContext, source: str) -> dict[str, Any]:
        if repos.find_role(s, acc.id, spec.name) is not None:
            raise Duplicate(f"account {acc.id} already has a role named {spec.name!r} (IAM role names ignore case)")
        role = Role(account_id=acc.id, account=acc, source=source)
        repos.apply_role_fields(role, spec)
        s.add(role)
        s.flush()
        view = _role_view(role)
        audit.record(s, ctx, "role.create", target_type="role", target_id=f"{acc.id}/{role.name}", after=view)
        return view

    def update_role(self, account: str, name: str, spec: RoleSpec, ctx: AuditContext) -> dict[str, Any]:
        with self._write_tx() as s:
            return self._update_role(s, self._locked(s, self._role(s, account, name)), spec, ctx)

    def patch_role(self, account: str, name: str, changes: dict[str, Any], ctx: AuditContext) -> dict[str, Any]:
        """PATCH in one transaction (see patch_account)."""
        with self._write_tx() as s:
            role = self._locked(s, self._role(s, account, name))
            _writable(role, f"role {role.account_id}/{role.name}")
            return self._update_role(s, role, _merged(_dump(repos.role_spec(role)), changes, RoleSpec), ctx)

    def _update_role(self, s: Session, role: Role, spec: RoleSpec, ctx: AuditContext) -> dict[str, Any]:
        _writable(role, f"role {role.account_id}/{role.name}")
        if spec.name.lower() != role.name_key and repos.find_role(s, role.account_id, spec.name):
            raise Duplicate(f"account {role.account_id} already has a role named {spec.name!r}")
        before = _role_view(role)
        repos.apply_role_fields(role, spec)
        s.flush()
        after = _role_view(role)
        audit.record(
            s, ctx, "role.update", target_type="role", target_id=f"{role.account_id}/{role.name}", before=before, after=after
        )
        return after

    def delete_role(self, account: str, name: str, ctx: AuditContext) -> None:
        with self._tx() as s:
            role = self._role(s, account, name)
            _writable(role, f"role {role.account_id}/{role.name}")
            n = repos.count_mappings(s, role.id)
            if n:
                raise InUse(f"role {role.account_id}/{role.name} is still used by {n} mapping(s)", details=[{"field": "mappings", "value": n, "message": f"{n} mapping(s) use the role"}])
            audit.record(
                s, ctx, "role.delete", target_type="role", target_id=f"{role.account_id}/{role.name}", before=_role_view(role)
            )
            s.delete(role)

    # ---- mappings ----

    def _mapping(self, s: Session, mapping_id: int) -> Mapping:
        m = s.get(Mapping, mapping_id)
        if m is None:
            raise NotFound(f"no mapping {mapping_id}")
        return m

    def _target_role(self, s: Session, spec: MappingSpec) -> Role:
        acc = repos.find_account(s, spec.account)
        if acc is None:
            raise UnknownAccount(f"no account {spec.account!r} is registered")
        role = repos.find_role(s, acc.id, spec.role)
        if role is None:
            raise UnknownRole(f"account {acc.id} has no role {spec.role!r}; register the role first")
        return role

    def list_mappings(
        self,
        *,
        group: str | None = None,
        account: str | None = None,
        role: str | None = None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        with self._tx() as s:
            q = select(Mapping).join(Role).order_by(Mapping.id).limit(limit)
            if after_id is not None:
                q = q.where(Mapping.id > after_id)
            if group:
                q = q.where(Mapping.group_key == match_key(group))
            if account:
                acc = repos.find_account(s, account)
                if acc is None:
                    return []
                q = q.where(Role.account_id == acc.id)
            if role:
                q = q.where(Role.name_key == role.lower())
            return [_mapping_view(m) for m in s.scalars(q)]

    def get_mapping(self, mapping_id: int) -> dict[str, Any]:
        with self._tx() as s:
            return _mapping_view(self._mapping(s, mapping_id))

    def create_mapping(self, spec: MappingSpec, ctx: AuditContext) -> dict[str, Any]:
        with self._tx() as s:
            return self._create_mapping(s, spec, ctx, "api")

    def _create_mapping(self, s: Session, spec: MappingSpec, ctx: AuditContext, source: str) -> dict[str, Any]:
        role = self._target_role(s, spec)
        if repos.find_mapping(s, spec.group, role) is not None:
            raise Duplicate(f"group {spec.group!r} is already mapped to {role.account_id}/{role.name}")
        m = Mapping(source=source)
        repos.apply_mapping_fields(m, spec, role)
        s.add(m)
        s.flush()
        view = _mapping_view(m)
        audit.record(s, ctx, "mapping.create", target_type="mapping", target_id=str(m.id), after=view)
        return view

    def update_mapping(self, mapping_id: int, spec: MappingSpec, ctx: AuditContext) -> dict[str, Any]:
        with self._write_tx() as s:
            return self._update_mapping(s, self._locked(s, self._mapping(s, mapping_id)), spec, ctx)

    def patch_mapping(self, mapping_id: int, changes: dict[str, Any], ctx: AuditContext) -> dict[str, Any]:
        """PATCH in one transaction (see patch_account)."""
        with self._write_tx() as s:
            m = self._locked(s, self._mapping(s, mapping_id))
            _writable(m, f"mapping {mapping_id}")
            return self._update_mapping(s, m, _merged(_dump(repos.mapping_spec(m)), changes, MappingSpec), ctx)

    def _update_mapping(self, s: Session, m: Mapping, spec: MappingSpec, ctx: AuditContext) -> dict[str, Any]:
        _writable(m, f"mapping {m.id}")
        role = self._target_role(s, spec)
        other = repos.find_mapping(s, spec.group, role)
        if other is not None and other.id != m.id:
            raise Duplicate(f"group {spec.group!r} is already mapped to {role.account_id}/{role.name} (mapping {other.id})")
        before = _mapping_view(m)
        repos.apply_mapping_fields(m, spec, role)
        s.flush()
        after = _mapping_view(m)
        audit.record(s, ctx, "mapping.update", target_type="mapping", target_id=str(m.id), before=before, after=after)
        return after

    def delete_mapping(self, mapping_id: int, ctx: AuditContext) -> None:
        with self._tx() as s:
            m = self._mapping(s, mapping_id)
            _writable(m, f"mapping {mapping_id}")
            audit.record(s, ctx, "mapping.delete", target_type="mapping", target_id=str(m.id), before=_mapping_view(m))
            s.delete(m)

    # ---- naming rules ----

    def _rule(self, s: Session, name: str) -> NamingRule:
        r = s.get(NamingRule, name)
        if r is None:
            raise NotFound(f"no naming rule {name!r}")
        return r

    def list_rules(self) -> list[dict[str, Any]]:
        with self._tx() as s:
            return [_rule_view(r) for r in s.scalars(select(NamingRule).order_by(NamingRule.name))]

    def get_rule(self, name: str) -> dict[str, Any]:
        with self._tx() as s:
            return _rule_view(self._rule(s, name))

    def create_rule(self, spec: RuleSpec, ctx: AuditContext) -> dict[str, Any]:
        with self._tx() as s:
            return self._create_rule(s, spec, ctx, "api")

    def _create_rule(self, s: Session, spec: RuleSpec, ctx: AuditContext, source: str) -> dict[str, Any]:
        if s.get(NamingRule, spec.name) is not None:
            raise Duplicate(f"a naming rule named {spec.name!r} already exists")
        r = NamingRule(source=source)
        repos.apply_rule_fields(r, spec)
        s.add(r)
        s.flush()
        view = _rule_view(r)
        audit.record(s, ctx, "rule.create", target_type="rule", target_id=r.name, after=view)
        return view

    def update_rule(self, name: str, spec: RuleSpec, ctx: AuditContext) -> dict[str, Any]:
        with self._write_tx() as s:
            return self._update_rule(s, self._locked(s, self._rule(s, name)), spec, ctx)

    def patch_rule(self, name: str, changes: dict[str, Any], ctx: AuditContext) -> dict[str, Any]:
        """PATCH in one transaction (see patch_account)."""
        with self._write_tx() as s:
            r = self._locked(s, self._rule(s, name))
            _writable(r, f"naming rule {name!r}")
            return self._update_rule(s, r, _merged(_dump(repos.rule_spec(r)), changes, RuleSpec), ctx)

    def _update_rule(self, s: Session, r: NamingRule, spec: RuleSpec, ctx: AuditContext) -> dict[str, Any]:
        _writable(r, f"naming rule {r.name!r}")
        if spec.name != r.name:
            raise Conflict("a naming rule cannot be renamed; create a new one and delete this one")
        before = _rule_view(r)
        repos.apply_rule_fields(r, spec)
        s.flush()
        after = _rule_view(r)
        audit.record(s, ctx, "rule.update", target_type="rule", target_id=r.name, before=before, after=after)
        return after

    def delete_rule(self, name: str, ctx: AuditContext) -> None:
        with self._tx() as s:
            r = self._rule(s, name)
            _writable(r, f"naming rule {name!r}")
            audit.record(s, ctx, "rule.delete", target_type="rule", target_id=r.name, before=_rule_view(r))
            s.delete(r)

    # ---- export / import / config sync ----

    def export(self, *, source: str | None = None) -> MappingDocument:
        with self._tx() as s:
            return repos.export_document(s, source=source)

    def plan_import(self, doc: MappingDocument) -> ImportPlan:
        with self._tx() as s:
            return _reconciled(s, doc, managed=reconcile.API).plan

    def apply_import(
        self, doc: MappingDocument, ctx: AuditContext, *, check: Callable[[ImportPlan], None] | None = None
    ) -> ImportPlan:
        """Apply the import atomically. ``check`` sees the plan inside the transaction, before any
        write, and may refuse it (the dry run's plan hash, deletions without allow_deletes): the
        mapping lock is held from the plan to the writes, so nothing slips in between."""
        with self._tx() as s:
            _lock_mapping(s)
            rec = _reconciled(s, doc, managed=reconcile.API)
            if rec.plan.conflicts:
                raise ReadOnly(
                    "the import would change objects declared in the configuration file; nothing was changed",
                    details=rec.plan.conflicts,
                )
            if check is not None:
                check(rec.plan)
            reconcile.apply(s, rec, managed=reconcile.API, ctx=ctx)
            return rec.plan

    def plan_config_sync(self, doc: MappingDocument) -> ImportPlan:
        """What `sync_config` would do now (check-config's look ahead); writes nothing."""
        with self._tx() as s:
            rec = reconcile.reconcile(reconcile.load_current(s), doc, managed=reconcile.CONFIG)
            if rec.problems:
                raise ConfigSyncFailed(details=rec.problems)
            return rec.plan

    def sync_config(self, doc: MappingDocument) -> ImportPlan:
        """Bring the config-declared objects in the database to the config file's; nothing else.

        Runs under the config_sync row's lock, so workers and replicas starting together sync one
        after the other (the later ones find nothing to do). See broker.db.reconcile."""
        with self._tx() as s:
            _lock_mapping(s)
            rec = reconcile.reconcile(reconcile.load_current(s), doc, managed=reconcile.CONFIG)
            if rec.problems:
                raise ConfigSyncFailed(details=rec.problems)
            reconcile.apply(s, rec, managed=reconcile.CONFIG, ctx=CONFIG_ACTOR)
            row = s.get(ConfigSync, "mapping")
            assert row is not None
            row.doc_hash = document_hash(doc)
            row.synced_at = utcnow()
            row.changes = rec.plan.changes
            return rec.plan

    def record_event(
        self,
        ctx: AuditContext,
        action: str,
        *,
        outcome: str,
        target_type: str | None = None,
        target_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """One decision (an issuance, a sign-in) into the audit log, in its own transaction."""
        self.record_events([audit.Decision(ctx, action, outcome, target_type, target_id, details)])

    def record_events(self, events: Sequence[audit.Decision]) -> None:
        """Several decisions of one request (a password sign-in and the issuance it led to) in one
        write: one transaction on SQLite, one pipelined batch of autocommit inserts on PostgreSQL."""
        if not events:
            return
        rows = [
            {
                "at": e.at or utcnow(),
                "actor": e.ctx.actor,
                "action": e.action,
                "outcome": e.outcome,
                "target_type": e.target_type,
                "target_id": e.target_id,
                "request_id": e.ctx.request_id,
                "source_ip": e.ctx.source_ip,
                "before": None,
                "after": None,
                "details": e.details,
            }
            for e in events
        ]
        with self._core_tx() as conn:
            conn.execute(_AUDIT_INSERT, rows)

    def audit_events(self, f: audit.AuditFilter, *, limit: int, before_id: int | None) -> list[dict[str, Any]]:
        with self._tx() as s:
            return [audit.event_dict(e) for e in audit.query(s, f, limit=limit, before_id=before_id)]


@contextmanager
def _translated() -> Iterator[None]:
    """SQLAlchemy's exceptions → the broker's errors (the one place in this store)."""
    try:
        yield
    except BrokerError:
        raise
    except IntegrityError as exc:
        what = _integrity_detail(exc)
        raise Duplicate(details=[{"field": what, "message": f"unique constraint: {what}"}]) from None
    except OperationalError as exc:
        raise StorageUnavailable() from exc
    except SQLAlchemyError as exc:
        raise StorageUnavailable(f"database error: {type(exc).__name__}") from exc


def _integrity_detail(exc: IntegrityError) -> str:
    text_ = str(exc.orig) if exc.orig is not None else ""
    for marker in ("uq_roles_account_name", "uq_mappings_group_role", "accounts_alias", "accounts.alias"):
        if marker in text_:
            return {"uq_roles_account_name": "role", "uq_mappings_group_role": "mapping"}.get(marker, "alias")
    return "unique constraint"


def _reconciled(s: Session, doc: MappingDocument, *, managed: str) -> reconcile.Reconciliation:
    rec = reconcile.reconcile(reconcile.load_current(s), doc, managed=managed)
    if rec.problems:
        raise InvalidImport("the document has dangling or duplicate references", details=rec.problems)
    return rec


def _lock_mapping(s: Session) -> None:
    """Write the config_sync row first: a concurrent sync or import waits here until this one
    commits (the row's lock on PostgreSQL, the database's write lock on SQLite), then reads what
    it wrote. Syncs and applied imports thus run one at a time over the whole mapping."""
    dialect = s.get_bind().dialect.name
    upsert = {"postgresql": pg_insert, "sqlite": sqlite_insert}.get(dialect)
    if upsert is None:
        if s.get(ConfigSync, "mapping", with_for_update=True) is None:
            s.add(ConfigSync(name="mapping", changes=0))
            s.flush()
        return
    stmt = upsert(ConfigSync).values(name="mapping", changes=0)
    s.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"changes": stmt.excluded.changes}))


def document_hash(doc: MappingDocument) -> str:
    """SHA-256 of a mapping document's canonical JSON: which file's mapping was synced."""
    return hashlib.sha256(json.dumps(doc.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
