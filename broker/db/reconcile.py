"""Reconciling the database with a mapping document: the admin import and the config-file sync.

Both compare the objects of ONE source with a document and change only those:

- an import manages the ``api`` objects: the document is the API-managed mapping as a whole
  (what it omits is deleted); configuration-file objects it repeats unchanged are left alone,
  and one it would change makes the whole import a conflict;
- the config sync manages the ``config`` objects: it creates and updates what the file
  declares and deletes config objects the file no longer declares. It never takes an API object
  over: an object the file declares that the API already created stays the API's (a notice says
  so). A config object the file no longer declares but that API objects still use (an API
  mapping on a config role, an API role under a config account) is kept and handed over to the
  API (``*.release`` in the audit log, naming what held it), so editing the file never deletes
  or breaks what a person made.

Every change is written with its audit event in the caller's transaction. The end state is
checked as a whole before anything is written: dangling references or a clash of aliases are
listed, each naming its object, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker import audit
from broker.audit import AuditContext
from broker.db import repos
from broker.db.models import Account, Mapping, NamingRule, Role
from broker.groups import match_key
from broker.mapping.model import MappingDocument
from broker.mapping.store import ImportPlan

API, CONFIG = "api", "config"

RoleKey = tuple[str, str]  # (account id, role name key)
MappingKey = tuple[str, str, str]  # (group key, account id, role name key)


def _dump(spec: Any) -> dict[str, Any]:
    return spec.model_dump(mode="json")


@dataclass
class Objects:
    """One state of the mapping, keyed the way the database keys it. Values are rows (the
    database now) or specs (the document)."""

    accounts: dict[str, Any] = field(default_factory=dict)
    roles: dict[RoleKey, Any] = field(default_factory=dict)
    mappings: dict[MappingKey, Any] = field(default_factory=dict)
    rules: dict[str, Any] = field(default_factory=dict)

    def kinds(self) -> dict[str, dict[Any, Any]]:
        return {"accounts": self.accounts, "roles": self.roles, "mappings": self.mappings, "rules": self.rules}


def load_current(s: Session) -> Objects:
    return Objects(
        accounts={a.id: a for a in s.scalars(select(Account))},
        roles={(r.account_id, r.name_key): r for r in s.scalars(select(Role))},
        mappings={(m.group_key, m.role.account_id, m.role.name_key): m for m in s.scalars(select(Mapping).join(Role))},
        rules={r.name: r for r in s.scalars(select(NamingRule))},
    )


# ---- labels: every message names its object ----


def _label(kind: str, key: Any, source: str | None = None) -> str:
    what = {
        "accounts": lambda k: f"account {k}",
        "roles": lambda k: f"role {k[0]}/{k[1]}",
        "mappings": lambda k: f"mapping {k[0]!r} -> {k[1]}/{k[2]}",
        "rules": lambda k: f"rule {k!r}",
    }[kind](key)
    return f"{what} ({'configuration file' if source == CONFIG else 'API'})" if source else what


def _row_label(kind: str, key: Any, row: Any) -> str:
    if kind == "roles":
        return f"role {row.account_id}/{row.name} ({_source_name(row.source)})"
    if kind == "mappings":
        return f"mapping {row.id} ({row.group_name!r} -> {row.role.account_id}/{row.role.name}, {_source_name(row.source)})"
    return _label(kind, key, row.source)


def _source_name(source: str) -> str:
    return "configuration file" if source == CONFIG else "API"


def _to_spec(kind: str, row: Any) -> Any:
    return {
        "accounts": repos.account_spec,
        "roles": repos.role_spec,
        "mappings": repos.mapping_spec,
        "rules": repos.rule_spec,
    }[kind](row)


# ---- the document, keyed like the database ----


def desired(doc: MappingDocument, current: Objects) -> tuple[Objects, list[str]]:
    """The document's objects by database key. A mapping's account may be named by id or alias,
    of an account in the document or already registered; its role name takes the role's own
    spelling when the role is known (IAM role names ignore case)."""
    want = Objects()
    problems: list[str] = []
    by_ref: dict[str, str] = {}
    declared = {acc.id for acc in doc.accounts}
    for acc_id, row in current.accounts.items():
        by_ref[acc_id] = acc_id
        if row.alias and acc_id not in declared:  # a declared account answers to the document's alias only
            by_ref[row.alias] = acc_id
    doc_refs: dict[str, str] = {}
    for acc in doc.accounts:
        if acc.id in want.accounts:
            problems.append(f"account {acc.id} is listed twice")
        want.accounts[acc.id] = acc.model_copy(update={"roles": []})
        doc_refs[acc.id] = acc.id
        if acc.alias:
            if doc_refs.get(acc.alias, acc.id) != acc.id:
                problems.append(f"alias {acc.alias!r} is used by {doc_refs[acc.alias]} and {acc.id}")
            doc_refs[acc.alias] = acc.id
        for role in acc.roles:
            key = (acc.id, role.name.lower())
            if key in want.roles:
                problems.append(f"role {acc.id}/{role.name} is listed twice")
            want.roles[key] = role
    by_ref |= doc_refs
    for i, m in enumerate(doc.mappings):
        acc_id = by_ref.get(m.account) or by_ref.get(m.account.lower())
        if acc_id is None:
            problems.append(f"mappings[{i}] (group {m.group!r}): unknown account {m.account!r}")
            continue
        role_key = m.role.lower()
        known = want.roles.get((acc_id, role_key)) or current.roles.get((acc_id, role_key))
        key = (match_key(m.group), acc_id, role_key)
        if key in want.mappings:
            problems.append(f"mapping {m.group!r} -> {acc_id}/{m.role} is listed twice")
        want.mappings[key] = m.model_copy(update={"account": acc_id, "role": known.name if known else m.role})
    for rule in doc.rules:
        if rule.name in want.rules:
            problems.append(f"rule {rule.name!r} is listed twice")
        want.rules[rule.name] = rule
    return want, problems


# ---- the plan ----


@dataclass
class Step:
    kind: str
    op: str  # create | update | delete | release
    key: Any
    spec: Any = None  # the document's spec (create, update)
    row: Any = None  # the database row (update, delete, release)
    held_by: list[str] = field(default_factory=list)
    before: dict[str, Any] | None = None  # the row as it was, for the audit event (set by apply)


@dataclass
class Reconciliation:
    plan: ImportPlan
    steps: list[Step]
    problems: list[str]


def _entry(kind: str, key: Any, spec: Any) -> dict[str, Any]:
    """A plan entry: the object's spec, with the account a role belongs to."""
    return ({"account": key[0]} if kind == "roles" else {}) | _dump(spec)


def reconcile(current: Objects, doc: MappingDocument, *, managed: str) -> Reconciliation:
    """What bringing ``managed``'s objects to ``doc`` takes (nothing is written here)."""
    want, problems = desired(doc, current)
    plan = ImportPlan()
    steps: list[Step] = []
    kinds = plan.kinds()
    end = Objects()  # the end state: every object's key, with its spec (kept rows: their spec)
    source_of: dict[tuple[str, Any], str] = {}

    for kind, wanted in want.kinds().items():
        have, kp = current.kinds()[kind], kinds[kind]
        for key, spec in wanted.items():
            row = have.get(key)
            if row is None:
                steps.append(Step(kind, "create", key, spec=spec))
                kp.create.append(_entry(kind, key, spec))
                end.kinds()[kind][key], source_of[(kind, key)] = spec, managed
                continue
            before = _to_spec(kind, row)
            same = _dump(before) == _dump(spec)
            if row.source == managed:
                if same:
                    kp.unchanged += 1
                else:
                    steps.append(Step(kind, "update", key, spec=spec, row=row))
                    kp.update.append(
                        {"key": _label(kind, key), **({"account": key[0]} if kind == "roles" else {}),
                         "before": _dump(before), "after": _dump(spec)}
                    )
                end.kinds()[kind][key], source_of[(kind, key)] = spec, managed
                continue
            # an object of the other source, repeated by the document
            end.kinds()[kind][key], source_of[(kind, key)] = before, row.source
            if managed == API:
                if same:
                    kp.unchanged += 1
                else:
                    plan.conflicts.append(f"{_label(kind, key)} is declared in the configuration file and differs from the document")
            else:
                kp.unchanged += 1
                plan.notices.append(
                    f"{_row_label(kind, key, row)} is declared in the configuration file but was created through the "
                    "API: it stays as the API made it"
                    + ("" if same else ", and the file's version is not applied")
                    + " (delete it through the API to let the file manage it)"
                )
        for key, row in have.items():
            if key in wanted:
                continue
            if row.source != managed:
                end.kinds()[kind][key], source_of[(kind, key)] = _to_spec(kind, row), row.source
            # the managed source's objects the document no longer has: decided below

    _removals(current, want, end, source_of, managed, plan, steps)
    problems += _end_state_problems(end, source_of)
    return Reconciliation(plan, steps, problems)


def _removals(
    current: Objects,
    want: Objects,
    end: Objects,
    source_of: dict[tuple[str, Any], str],
    managed: str,
    plan: ImportPlan,
    steps: list[Step],
) -> None:
    """Objects of ``managed`` the document no longer has are deleted; for the config sync, one
    that an object staying behind still uses is handed over to the API instead. Dependents
    first: mappings and rules, then roles, then accounts."""
    kinds = plan.kinds()

    def holders_of(kind: str, key: Any) -> list[str]:
        """The objects of the other source (or handed over to it) that use ``key``: an object of
        the document itself that still uses it is a dangling reference, reported as such."""
        if kind == "roles":
            return [
                _row_label("mappings", mk, current.mappings[mk]) if mk in current.mappings else _label("mappings", mk)
                for mk in end.mappings
                if (mk[1], mk[2]) == key and source_of[("mappings", mk)] != managed
            ]
        if kind == "accounts":
            return [
                _row_label("roles", rk, current.roles[rk]) if rk in current.roles else _label("roles", rk)
                for rk in end.roles
                if rk[0] == key and source_of[("roles", rk)] != managed
            ]
        return []

    for kind in ("mappings", "rules", "roles", "accounts"):
        for key, row in current.kinds()[kind].items():
            if row.source != managed or key in want.kinds()[kind]:
                continue
            held = holders_of(kind, key) if managed == CONFIG else []
            if held:
                steps.append(Step(kind, "release", key, row=row, held_by=held))
                kinds[kind].release.append({"key": _label(kind, key), "held_by": held})
                plan.notices.append(
                    f"{_row_label(kind, key, row)} is no longer declared in the configuration file, but "
                    f"{', '.join(held)} still use{'s' if len(held) == 1 else ''} it: it is kept, now managed through the API"
                )
                end.kinds()[kind][key], source_of[(kind, key)] = _to_spec(kind, row), API
            else:
                steps.append(Step(kind, "delete", key, row=row))
                kinds[kind].delete.append(_entry(kind, key, _to_spec(kind, row)))


def _end_state_problems(end: Objects, source_of: dict[tuple[str, Any], str]) -> list[str]:
    """What the end state would break: a role without its account, a mapping without its role,
    one alias on two accounts. Each problem names the object and its source."""
    problems: list[str] = []
    aliases: dict[str, str] = {}
    for acc_id, spec in sorted(end.accounts.items()):
        if spec.alias:
            other = aliases.setdefault(spec.alias, acc_id)
            if other != acc_id:
                problems.append(
                    f"alias {spec.alias!r} would name two accounts: {_label('accounts', other, source_of[('accounts', other)])}"
                    f" and {_label('accounts', acc_id, source_of[('accounts', acc_id)])}"
                )
    for key in sorted(end.roles):
        if key[0] not in end.accounts:
            problems.append(f"{_label('roles', key, source_of[('roles', key)])} needs account {key[0]}, which would be removed")
    for key in sorted(end.mappings):
        if (key[1], key[2]) not in end.roles:
            problems.append(
                f"{_label('mappings', key, source_of[('mappings', key)])} needs role {key[1]}/{key[2]}, "
                "which is not registered or would be removed"
            )
    return problems


# ---- applying ----


def apply(s: Session, rec: Reconciliation, *, managed: str, ctx: AuditContext) -> None:
    """Write the steps in dependency order, each with its audit event."""
    via = {"via": "config-sync" if managed == CONFIG else "import"}
    by_op: dict[tuple[str, str], list[Step]] = {}
    for step in rec.steps:
        by_op.setdefault((step.kind, step.op), []).append(step)
        if step.row is not None:
            step.before = _dump(_to_spec(step.kind, step.row))
    # An alias may move from one account to another in one plan (renamed, swapped, taken over by
    # a new account): free every alias that changes first, so the unique index never sees two.
    freed = [
        st.row for st in rec.steps
        if st.kind == "accounts" and st.row is not None and st.row.alias
        and (st.op == "delete" or (st.op == "update" and st.spec.alias != st.row.alias))
    ]
    for row in freed:
        row.alias = None
    if freed:
        s.flush()

    def steps(kind: str, op: str) -> list[Step]:
        return by_op.get((kind, op), [])

    def note(action: str, target_type: str, target_id: str, before: Any = None, after: Any = None, **extra: Any) -> None:
        audit.record(
            s, ctx, action, target_type=target_type, target_id=target_id, before=before, after=after, details=via | extra
        )

    def upsert(kind: str, target_type: str, new_row: Callable[[Step], Any], fill: Callable[[Any, Step], None],
               target_id: Callable[[Any], str]) -> None:
        for step in steps(kind, "create"):
            row = new_row(step)
            fill(row, step)
            s.add(row)
            s.flush()
            note(f"{target_type}.create", target_type, target_id(row), after=_dump(step.spec))
        for step in steps(kind, "update"):
            fill(step.row, step)
            note(f"{target_type}.update", target_type, target_id(step.row), before=step.before, after=_dump(step.spec))

    def release_and_delete(kind: str, target_type: str, target_id: Callable[[Any], str]) -> None:
        for step in steps(kind, "release"):
            step.row.source = API
            note(f"{target_type}.release", target_type, target_id(step.row), before=step.before, after=step.before,
                 held_by=step.held_by)
        for step in steps(kind, "delete"):
            note(f"{target_type}.delete", target_type, target_id(step.row), before=step.before)
            s.delete(step.row)
        s.flush()

    upsert(
        "accounts", "account", lambda st: Account(id=st.key, source=managed),
        lambda row, st: repos.apply_account_fields(row, st.spec), lambda row: row.id,
    )
    accounts = {a.id: a for a in s.scalars(select(Account))}
    upsert(
        "roles", "role", lambda st: Role(account_id=st.key[0], account=accounts[st.key[0]], source=managed),
        lambda row, st: repos.apply_role_fields(row, st.spec), lambda row: f"{row.account_id}/{row.name}",
    )
    upsert(
        "rules", "rule", lambda st: NamingRule(source=managed),
        lambda row, st: repos.apply_rule_fields(row, st.spec), lambda row: row.name,
    )
    release_and_delete("rules", "rule", lambda row: row.name)
    release_and_delete("mappings", "mapping", lambda row: str(row.id))
    s.flush()
    roles = {(r.account_id, r.name_key): r for r in s.scalars(select(Role))}
    upsert(
        "mappings", "mapping", lambda st: Mapping(source=managed),
        lambda row, st: repos.apply_mapping_fields(row, st.spec, roles[(st.key[1], st.key[2])]), lambda row: str(row.id),
    )
    release_and_delete("roles", "role", lambda row: f"{row.account_id}/{row.name}")
    release_and_delete("accounts", "account", lambda row: row.id)
    rec.plan.applied = True

