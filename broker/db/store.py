"""SqlMappingStore: the mapping store on SQLAlchemy (SQLite or PostgreSQL).

Every write is one transaction that also writes its audit event. Objects declared in the
configuration file (source "config") are read-only here: writes to them answer ReadOnly.
Foreign exceptions (SQLAlchemy) are translated into the broker's errors in ``_translate``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from broker import audit
from broker.audit import AuditContext
from broker.db import repos
from broker.db.models import Account, AuditEvent, Mapping, NamingRule, Role, utcnow
from broker.db.session import session_factory
from broker.errors import (
    BrokerError,
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
    reference_problems,
)
from broker.mapping.snapshot import MappingSnapshot
from broker.mapping.store import ImportPlan, KindPlan

CONFIG_ACTOR = AuditContext(actor="config-file")
# The issuance path's audit row: a Core INSERT built once (no ORM unit of work per decision).
_AUDIT_INSERT = insert(AuditEvent.__table__)


def _dump(spec: Any) -> dict[str, Any]:
    return spec.model_dump(mode="json")


def _meta(row: Any) -> dict[str, Any]:
    return {
        "source": row.source,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


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
        with self._tx() as s:
            acc = self._account(s, ref)
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
                raise InUse(f"account {acc.id} still has {n} role(s); delete them first", details={"roles": n})
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
        with self._tx() as s:
            role = self._role(s, account, name)
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
                raise InUse(f"role {role.account_id}/{role.name} is still used by {n} mapping(s)", details={"mappings": n})
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
        with self._tx() as s:
            m = self._mapping(s, mapping_id)
            _writable(m, f"mapping {mapping_id}")
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
        with self._tx() as s:
            r = self._rule(s, name)
            _writable(r, f"naming rule {name!r}")
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
            return _reconcile(s, doc, managed="api", ctx=None)

    def apply_import(self, doc: MappingDocument, ctx: AuditContext) -> ImportPlan:
        with self._tx() as s:
            plan = _reconcile(s, doc, managed="api", ctx=ctx)
            if plan.conflicts:
                raise ReadOnly(
                    "the import would change objects declared in the configuration file; nothing was changed",
                    details=plan.conflicts,
                )
            return plan

    def sync_config(self, doc: MappingDocument) -> ImportPlan:
        """Make the config-declared objects in the database equal to the config file's."""
        with self._tx() as s:
            return _reconcile(s, doc, managed="config", ctx=CONFIG_ACTOR)

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
        raise Duplicate(details=_integrity_detail(exc)) from None
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


# ---- reconciliation (import and config sync share it) ----


def _current(s: Session) -> tuple[dict, dict, dict, dict]:
    accounts = {a.id: a for a in s.scalars(select(Account))}
    roles = {(r.account_id, r.name_key): r for r in s.scalars(select(Role))}
    mappings = {(m.group_key, m.role.account_id, m.role.name_key): m for m in s.scalars(select(Mapping).join(Role))}
    rules = {r.name: r for r in s.scalars(select(NamingRule))}
    return accounts, roles, mappings, rules


def _desired(doc: MappingDocument) -> tuple[dict, dict, dict, dict]:
    by_ref = {a.id: a.id for a in doc.accounts} | {a.alias: a.id for a in doc.accounts if a.alias}
    accounts = {a.id: a.model_copy(update={"roles": []}) for a in doc.accounts}
    roles = {(a.id, r.name.lower()): r for a in doc.accounts for r in a.roles}
    mappings = {}
    for m in doc.mappings:
        acc_id = by_ref[m.account if m.account in by_ref else m.account.lower()]
        mappings[(match_key(m.group), acc_id, m.role.lower())] = m.model_copy(update={"account": acc_id})
    rules = {r.name: r for r in doc.rules}
    return accounts, roles, mappings, rules


def _merge_unmanaged(
    doc: MappingDocument, current: tuple[dict, dict, dict, dict], managed: str
) -> tuple[MappingDocument, list[str]]:
    """The desired end state: the document plus the other source's objects it does not mention,
    and the problems of objects of the other source the document would leave dangling."""
    cur_accounts, cur_roles, cur_mappings, cur_rules = current
    problems: list[str] = []
    accounts = {a.id: a for a in doc.accounts}
    for acc in cur_accounts.values():
        if acc.source != managed and acc.id not in accounts:
            accounts[acc.id] = repos.account_spec(acc)
    for (acc_id, key), role in cur_roles.items():
        if role.source == managed:
            continue
        spec = accounts.get(acc_id)
        if spec is None:
            problems.append(f"role {acc_id}/{role.name} ({role.source}) needs account {acc_id}, which would be removed")
        elif key not in {r.name.lower() for r in spec.roles}:
            accounts[acc_id] = spec.model_copy(update={"roles": [*spec.roles, repos.role_spec(role)]})
    by_ref = {a.id: a.id for a in accounts.values()} | {a.alias: a.id for a in accounts.values() if a.alias}
    keys = {(match_key(m.group), by_ref.get(m.account, by_ref.get(m.account.lower())), m.role.lower()) for m in doc.mappings}
    mappings = list(doc.mappings) + [
        repos.mapping_spec(m) for k, m in cur_mappings.items() if m.source != managed and k not in keys
    ]
    names = {r.name for r in doc.rules}
    rules = list(doc.rules) + [repos.rule_spec(r) for r in cur_rules.values() if r.source != managed and r.name not in names]
    merged = MappingDocument.model_construct(version=1, accounts=list(accounts.values()), mappings=mappings, rules=rules)
    return merged, problems


def _reconcile(s: Session, doc: MappingDocument, *, managed: str, ctx: AuditContext | None) -> ImportPlan:
    """Diff the ``managed`` source's objects against ``doc`` and, when ``ctx`` is given, apply.

    Objects of the other source are never changed by an import: a document that differs from
    them yields conflicts. The config sync (managed="config") takes over API objects it
    declares, and hands objects it no longer declares back to the API when they are still in use.
    """
    current = _current(s)
    merged, problems = _merge_unmanaged(doc, current, managed)
    problems += reference_problems(merged)
    if problems:
        raise InvalidImport("the document has dangling or duplicate references", details=problems)
    cur_accounts, cur_roles, cur_mappings, cur_rules = current
    want_accounts, want_roles, want_mappings, want_rules = _desired(merged)
    plan = ImportPlan()
    apply = ctx is not None

    def diff(kind: KindPlan, cur: dict, want: dict, to_spec: Callable[[Any], Any], label: Callable[[Any], str]) -> tuple:
        creates, updates, deletes = [], [], []
        for key, spec in want.items():
            row = cur.get(key)
            if row is None:
                creates.append((key, spec))
                kind.create.append(_dump(spec))
                continue
            have = to_spec(row)
            if _dump(have) == _dump(spec) and (row.source == managed or managed == "api"):
                kind.unchanged += 1
            elif row.source != managed and managed == "api":
                plan.conflicts.append(f"{label(key)} is declared in the configuration file and differs from the document")
            else:
                updates.append((key, row, spec))
                kind.update.append({"key": label(key), "before": _dump(have), "after": _dump(spec)})
        for key, row in cur.items():
            if key not in want and row.source == managed:
                deletes.append((key, row))
                kind.delete.append(_dump(to_spec(row)))
        return creates, updates, deletes

    acc_c, acc_u, acc_d = diff(
        plan.accounts, cur_accounts, want_accounts, lambda a: repos.account_spec(a), lambda k: f"account {k}"
    )
    role_c, role_u, role_d = diff(plan.roles, cur_roles, want_roles, repos.role_spec, lambda k: f"role {k[0]}/{k[1]}")
    map_c, map_u, map_d = diff(
        plan.mappings, cur_mappings, want_mappings, repos.mapping_spec, lambda k: f"mapping {k[0]!r} -> {k[1]}/{k[2]}"
    )
    rule_c, rule_u, rule_d = diff(plan.rules, cur_rules, want_rules, repos.rule_spec, lambda k: f"rule {k!r}")
    for entries, items in ((plan.roles.create, role_c), (plan.roles.delete, role_d)):  # a role names its account
        entries[:] = [{"account": item[0][0], **entry} for item, entry in zip(items, entries, strict=True)]
    if not apply or plan.conflicts:
        return plan
    assert ctx is not None
    source = managed

    via = {"via": "config-sync" if managed == "config" else "import"}

    def note(action: str, target_type: str, target_id: str, before: Any, after: Any = None) -> None:
        audit.record(s, ctx, action, target_type=target_type, target_id=target_id, before=before, after=after, details=via)

    def take(row: Any, action: str, target_type: str, target_id: str, before: Any, after: Any) -> None:
        row.source = source
        note(action, target_type, target_id, before, after)

    for key, spec in acc_c:
        acc = Account(id=spec.id, source=source)
        repos.apply_account_fields(acc, spec)
        s.add(acc)
        take(acc, "account.create", "account", acc.id, None, _dump(spec))
    for key, row, spec in acc_u:
        before = _dump(repos.account_spec(row))
        repos.apply_account_fields(row, spec)
        take(row, "account.update", "account", row.id, before, _dump(spec))
    s.flush()
    accounts_now = {a.id: a for a in s.scalars(select(Account))}
    for (acc_id, _), spec in role_c:
        role = Role(account_id=acc_id, account=accounts_now[acc_id], source=source)
        repos.apply_role_fields(role, spec)
        s.add(role)
        take(role, "role.create", "role", f"{acc_id}/{spec.name}", None, _dump(spec))
    for (acc_id, _), row, spec in role_u:
        before = _dump(repos.role_spec(row))
        repos.apply_role_fields(row, spec)
        take(row, "role.update", "role", f"{acc_id}/{spec.name}", before, _dump(spec))
    for name, spec in rule_c:
        r = NamingRule(source=source)
        repos.apply_rule_fields(r, spec)
        s.add(r)
        take(r, "rule.create", "rule", name, None, _dump(spec))
    for name, row, spec in rule_u:
        before = _dump(repos.rule_spec(row))
        repos.apply_rule_fields(row, spec)
        take(row, "rule.update", "rule", name, before, _dump(spec))
    for name, row in rule_d:
        note("rule.delete", "rule", name, _dump(repos.rule_spec(row)))
        s.delete(row)
    for key, row in map_d:
        note("mapping.delete", "mapping", str(row.id), _dump(repos.mapping_spec(row)))
        s.delete(row)
    s.flush()
    roles_now = {(r.account_id, r.name_key): r for r in s.scalars(select(Role))}
    for (gkey, acc_id, role_key), spec in map_c:
        m = Mapping(source=source)
        repos.apply_mapping_fields(m, spec, roles_now[(acc_id, role_key)])
        s.add(m)
        s.flush()
        take(m, "mapping.create", "mapping", str(m.id), None, _dump(spec))
    for (gkey, acc_id, role_key), row, spec in map_u:
        before = _dump(repos.mapping_spec(row))
        repos.apply_mapping_fields(row, spec, roles_now[(acc_id, role_key)])
        take(row, "mapping.update", "mapping", str(row.id), before, _dump(spec))
    s.flush()
    for (acc_id, _), row in role_d:
        note("role.delete", "role", f"{acc_id}/{row.name}", _dump(repos.role_spec(row)))
        s.delete(row)
    s.flush()
    for acc_id, row in acc_d:
        note("account.delete", "account", acc_id, _dump(repos.account_spec(row)))
        s.delete(row)
    s.flush()
    plan.applied = True
    return plan
