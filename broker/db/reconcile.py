"""Reconciling the database with a mapping document, as a pure function: the admin import and
the config-file sync. No database here: ``plan(current, doc, managed=...)`` takes what is stored
(as values, ``Current``) and the document, and answers a ``Reconciliation`` (the steps, the plan
a person reads, the problems); ``broker.db.sync`` loads the values and applies the steps in one
transaction.

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

The end state is checked as a whole before anything is written: dangling references or a clash
of aliases are listed, each naming its object, and nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from broker.domain import Source
from broker.groups import match_key
from broker.mapping.model import (
    AccountSpec,
    MappingDocument,
    MappingSpec,
    RoleSpec,
    RuleSpec,
    foreign_policies,
)
from broker.mapping.org_targets import Target
from broker.mapping.store import KINDS, ImportPlan, Kind

API: Source = "api"
CONFIG: Source = "config"

Op = Literal["create", "update", "delete", "release"]
RoleKey = tuple[str, str]  # (account id, role name key)
MappingKey = tuple[str, str, str]  # (group key, account id, role name key)
OrgMappingKey = tuple[str, str, str]  # (group key, target key, role name key)
S = TypeVar("S", AccountSpec, RoleSpec, MappingSpec, RuleSpec)


@dataclass(frozen=True)
class Stored(Generic[S]):
    """An object as the database holds it: its fields, who manages it, and (mappings) its id."""

    spec: S
    source: Source
    id: int | None = None


@dataclass
class Current:
    """The database now, keyed the way the database keys it (a mapping's spec names its account
    by id and its role in the role's own spelling)."""

    accounts: dict[str, Stored[AccountSpec]] = field(default_factory=dict)
    roles: dict[RoleKey, Stored[RoleSpec]] = field(default_factory=dict)
    mappings: dict[MappingKey, Stored[MappingSpec]] = field(default_factory=dict)
    rules: dict[str, Stored[RuleSpec]] = field(default_factory=dict)
    org_mappings: dict[OrgMappingKey, Stored[MappingSpec]] = field(default_factory=dict)

    def kinds(self) -> dict[Kind, dict[Any, Any]]:
        return {"accounts": self.accounts, "roles": self.roles, "mappings": self.mappings, "rules": self.rules,
                "org_mappings": self.org_mappings}


@dataclass
class Specs:
    """A state of the mapping as specs, keyed like ``Current`` (the document; the end state)."""

    accounts: dict[str, AccountSpec] = field(default_factory=dict)
    roles: dict[RoleKey, RoleSpec] = field(default_factory=dict)
    mappings: dict[MappingKey, MappingSpec] = field(default_factory=dict)
    rules: dict[str, RuleSpec] = field(default_factory=dict)
    org_mappings: dict[OrgMappingKey, MappingSpec] = field(default_factory=dict)

    def kinds(self) -> dict[Kind, dict[Any, Any]]:
        return {"accounts": self.accounts, "roles": self.roles, "mappings": self.mappings, "rules": self.rules,
                "org_mappings": self.org_mappings}


@dataclass(frozen=True)
class Step:
    """One change to write. ``spec``: the document's (create, update); ``before``: the stored
    fields (update, delete, release), also the audit event's ``before``."""

    kind: Kind
    op: Op
    key: Any
    spec: Any = None
    before: Any = None
    held_by: tuple[str, ...] = ()


@dataclass
class Reconciliation:
    plan: ImportPlan
    steps: list[Step]
    problems: list[str]

    def of(self, kind: Kind, op: Op) -> list[Step]:
        return [st for st in self.steps if st.kind == kind and st.op == op]


def _dump(spec: BaseModel) -> dict[str, Any]:
    return spec.model_dump(mode="json")


# ---- labels: every message names its object ----


def _source_name(source: str) -> str:
    return "configuration file" if source == CONFIG else "API"


def _label(kind: Kind, key: Any, source: str | None = None) -> str:
    if kind == "accounts":
        what = f"account {key}"
    elif kind == "roles":
        what = f"role {key[0]}/{key[1]}"
    elif kind == "mappings":
        what = f"mapping {key[0]!r} -> {key[1]}/{key[2]}"
    elif kind == "org_mappings":
        what = f"mapping {key[0]!r} -> {Target.from_key(key[1]).via}/{key[2]}"
    else:
        what = f"rule {key!r}"
    return f"{what} ({_source_name(source)})" if source else what


def _stored_label(kind: Kind, key: Any, stored: Stored[Any]) -> str:
    if kind == "roles":
        return f"role {key[0]}/{stored.spec.name} ({_source_name(stored.source)})"
    if kind == "mappings":
        m = stored.spec
        return f"mapping {stored.id} ({m.group!r} -> {m.account}/{m.role}, {_source_name(stored.source)})"
    if kind == "org_mappings":
        m = stored.spec
        return f"org mapping {stored.id} ({m.group!r} -> {m.accounts.target().via}/{m.role}, {_source_name(stored.source)})"
    return _label(kind, key, stored.source)


# ---- the document, keyed like the database ----


def desired(doc: MappingDocument, current: Current) -> tuple[Specs, list[str]]:
    """The document's objects by database key. A mapping's account may be named by id or alias,
    of an account in the document or already registered; its role name takes the role's own
    spelling when the role is known (IAM role names ignore case)."""
    want = Specs()
    problems: list[str] = []
    by_ref: dict[str, str] = {}
    declared = {acc.id for acc in doc.accounts}
    for acc_id, stored in current.accounts.items():
        by_ref[acc_id] = acc_id
        if stored.spec.alias and acc_id not in declared:  # a declared account answers to the document's alias only
            by_ref[stored.spec.alias] = acc_id
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
            role_key = (acc.id, role.name.lower())
            if role_key in want.roles:
                problems.append(f"role {acc.id}/{role.name} is listed twice")
            want.roles[role_key] = role
    by_ref |= doc_refs
    for i, m in enumerate(doc.mappings):
        if m.accounts is not None:  # an OU or a tag: no account or role to resolve here
            org_key = (match_key(m.group), m.accounts.target().key, m.role.lower())
            if org_key in want.org_mappings:
                problems.append(f"mapping {m.group!r} -> {m.accounts.target().via}/{m.role} is listed twice")
            want.org_mappings[org_key] = m
            continue
        assert m.account is not None
        found = by_ref.get(m.account) or by_ref.get(m.account.lower())
        if found is None:
            problems.append(f"mappings[{i}] (group {m.group!r}): unknown account {m.account!r}")
            continue
        role_key = (found, m.role.lower())
        known = want.roles.get(role_key) or (current.roles[role_key].spec if role_key in current.roles else None)
        key = (match_key(m.group), found, m.role.lower())
        if key in want.mappings:
            problems.append(f"mapping {m.group!r} -> {found}/{m.role} is listed twice")
        want.mappings[key] = m.model_copy(update={"account": found, "role": known.name if known else m.role})
    for rule in doc.rules:
        if rule.name in want.rules:
            problems.append(f"rule {rule.name!r} is listed twice")
        want.rules[rule.name] = rule
    return want, problems


# ---- the plan ----


def _entry(kind: Kind, key: Any, spec: BaseModel) -> dict[str, Any]:
    """A plan entry: the object's spec, with the account a role belongs to."""
    return ({"account": key[0]} if kind == "roles" else {}) | _dump(spec)


def plan(current: Current, doc: MappingDocument, *, managed: Source) -> Reconciliation:
    """What bringing ``managed``'s objects to ``doc`` takes (nothing is written here)."""
    want, problems = desired(doc, current)
    result = ImportPlan()
    steps: list[Step] = []
    kinds = result.kinds()
    end = Specs()  # the end state: every object's key, with its spec (kept objects: their stored spec)
    source_of: dict[tuple[Kind, Any], Source] = {}

    for kind in KINDS:
        wanted, have, kp, ends = want.kinds()[kind], current.kinds()[kind], kinds[kind], end.kinds()[kind]
        for key, spec in wanted.items():
            stored: Stored[Any] | None = have.get(key)
            if stored is None:
                steps.append(Step(kind, "create", key, spec=spec))
                kp.create.append(_entry(kind, key, spec))
                ends[key], source_of[(kind, key)] = spec, managed
                continue
            before = stored.spec
            same = _dump(before) == _dump(spec)
            if stored.source == managed:
                if same:
                    kp.unchanged += 1
                else:
                    steps.append(Step(kind, "update", key, spec=spec, before=before))
                    kp.update.append(
                        {"key": _label(kind, key), **({"account": key[0]} if kind == "roles" else {}),
                         "before": _dump(before), "after": _dump(spec)}
                    )
                ends[key], source_of[(kind, key)] = spec, managed
                continue
            # an object of the other source, repeated by the document
            ends[key], source_of[(kind, key)] = before, stored.source
            if managed == API:
                if same:
                    kp.unchanged += 1
                else:
                    result.conflicts.append(
                        f"{_label(kind, key)} is declared in the configuration file and differs from the document"
                    )
            else:
                kp.unchanged += 1
                result.notices.append(
                    f"{_stored_label(kind, key, stored)} is declared in the configuration file but was created through "
                    "the API: it stays as the API made it"
                    + ("" if same else ", and the file's version is not applied")
                    + " (delete it through the API to let the file manage it)"
                )
        for key, stored in have.items():
            if key not in wanted and stored.source != managed:
                ends[key], source_of[(kind, key)] = stored.spec, stored.source
            # the managed source's objects the document no longer has: decided below

    _removals(current, want, end, source_of, managed, result, steps)
    problems += _end_state_problems(end, source_of)
    return Reconciliation(result, steps, problems)


def _removals(
    current: Current,
    want: Specs,
    end: Specs,
    source_of: dict[tuple[Kind, Any], Source],
    managed: Source,
    result: ImportPlan,
    steps: list[Step],
) -> None:
    """Objects of ``managed`` the document no longer has are deleted; for the config sync, one
    that an object staying behind still uses is handed over to the API instead. Dependents
    first: mappings and rules, then roles, then accounts."""
    kinds = result.kinds()

    def holders_of(kind: Kind, key: Any) -> list[str]:
        """The objects of the other source (or handed over to it) that use ``key``: an object of
        the document itself that still uses it is a dangling reference, reported as such."""
        if kind == "roles":
            return [
                _stored_label("mappings", mk, current.mappings[mk]) if mk in current.mappings else _label("mappings", mk)
                for mk in end.mappings
                if (mk[1], mk[2]) == key and source_of[("mappings", mk)] != managed
            ]
        if kind == "accounts":
            return [
                _stored_label("roles", rk, current.roles[rk]) if rk in current.roles else _label("roles", rk)
                for rk in end.roles
                if rk[0] == key and source_of[("roles", rk)] != managed
            ]
        return []

    for kind in ("org_mappings", "mappings", "rules", "roles", "accounts"):
        stored_objects: dict[Any, Stored[Any]] = current.kinds()[kind]
        for key, stored in stored_objects.items():
            if stored.source != managed or key in want.kinds()[kind]:
                continue
            held = holders_of(kind, key) if managed == CONFIG else []
            if held:
                steps.append(Step(kind, "release", key, before=stored.spec, held_by=tuple(held)))
                kinds[kind].release.append({"key": _label(kind, key), "held_by": held})
                result.notices.append(
                    f"{_stored_label(kind, key, stored)} is no longer declared in the configuration file, but "
                    f"{', '.join(held)} still use{'s' if len(held) == 1 else ''} it: it is kept, now managed through the API"
                )
                end.kinds()[kind][key], source_of[(kind, key)] = stored.spec, API
            else:
                steps.append(Step(kind, "delete", key, before=stored.spec))
                kinds[kind].delete.append(_entry(kind, key, stored.spec))


def _end_state_problems(end: Specs, source_of: dict[tuple[Kind, Any], Source]) -> list[str]:
    """What the end state would break: a role without its account (or with managed policies IAM
    would not attach to it: ``foreign_policies``), a mapping without its role, one alias on two accounts.
    Each problem names the object and its source."""
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
    for role_key in sorted(end.roles):
        account = end.accounts.get(role_key[0])
        if account is None:
            problems.append(
                f"{_label('roles', role_key, source_of[('roles', role_key)])} needs account {role_key[0]}, which would be removed"
            )
            continue
        problems += [f"{_source_name(source_of[('roles', role_key)])} role in account {role_key[0]}: {message}"
                     for _, _, _, message in foreign_policies(role_key[0], account.partition, [end.roles[role_key]])]
    for key in sorted(end.mappings):
        if (key[1], key[2]) not in end.roles:
            problems.append(
                f"{_label('mappings', key, source_of[('mappings', key)])} needs role {key[1]}/{key[2]}, "
                "which is not registered or would be removed"
            )
    return problems
