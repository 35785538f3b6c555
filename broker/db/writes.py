"""The admin writes, each with its audit event, in the caller's transaction.

Keyword-only functions that take the session explicitly; ``SqlMappingStore`` opens the
transaction (one per write) and translates the database's exceptions. Objects declared in the
configuration file (source "config") are read-only here: writes to them answer ReadOnly.
A PATCH lays its changes over the current fields and validates the whole, in the transaction
that read them (a concurrent write is never undone). Each write tells ``broker.db.history`` what
it changes, for the transaction's mapping version.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.orm import Session

from broker.audit import AuditContext
from broker.db import history, queries
from broker.db.audit import record
from broker.db.models import Account, Mapping, NamingRule, OrgMapping, Role
from broker.db.rows import (
    account_spec,
    apply_account_fields,
    apply_mapping_fields,
    apply_org_mapping_fields,
    apply_role_fields,
    apply_rule_fields,
    mapping_spec,
    org_mapping_spec,
    role_spec,
    rule_spec,
)
from broker.db.views import View, account_view, dump, mapping_view, org_mapping_view, role_view, rule_view
from broker.errors import Conflict, Duplicate, InUse, InvalidInput, ReadOnly, UnknownAccount, UnknownRole
from broker.mapping.model import AccountFields, AccountSpec, MappingSpec, RoleSpec, RuleSpec, foreign_policies

_Spec = TypeVar("_Spec", bound=BaseModel)
_Row = TypeVar("_Row", Account, Role, Mapping, NamingRule, OrgMapping)


# ---- shared ----


def merged(current: dict[str, Any], changes: dict[str, Any], model: type[_Spec], drop: tuple[str, ...] = ()) -> _Spec:
    """A PATCH: ``changes`` laid over the current fields, validated as a whole (a field that is
    not the model's is ``unknown_field``: ``extra="forbid"``)."""
    base = {k: v for k, v in current.items() if k not in drop}
    return model.model_validate(base | changes)


def writable(row: Account | Role | Mapping | NamingRule | OrgMapping, what: str) -> None:
    if row.source == "config":
        raise ReadOnly(f"{what} is declared in the configuration file; change it there (it is read-only through the API)")


def attachable(account_id: str, partition: str, roles: list[RoleSpec], *, field: str = "partition") -> None:
    """IAM attaches to a role only managed policies of its partition, AWS's or its account's own.
    ``field`` is each problem's ``details`` field: the ARN in a role's body
    (``managed_policy_arns.{j}``), or ``partition`` when an account's new partition is refused."""
    found = foreign_policies(account_id, partition, roles)
    if found:
        details = [{"field": field.format(j=j), "code": error.code, "message": message} for _, j, error, message in found]
        _, _, error, message = found[0]
        raise error(message, details=details)


def locked(s: Session, row: _Row) -> _Row:
    """``row`` re-read with a row lock (SELECT ... FOR UPDATE) where the database has them."""
    if s.get_bind().dialect.name != "sqlite":
        s.refresh(row, with_for_update=True)
    return row


# ---- accounts ----


def create_account(s: Session, *, spec: AccountSpec, ctx: AuditContext, source: str = "api") -> View:
    if s.get(Account, spec.id) is not None:
        raise Duplicate(f"account {spec.id} is already registered")
    if spec.alias and queries.find_account(s, spec.alias) is not None:
        raise Duplicate(f"alias {spec.alias!r} is already used by another account")
    acc = Account(id=spec.id, source=source)
    apply_account_fields(acc, spec)
    s.add(acc)
    s.flush()
    history.after(s, acc)
    view = account_view(acc)
    record(s, ctx, "account.create", target_type="account", target_id=acc.id, after=view)
    for role in spec.roles:
        _create_role(s, acc=acc, spec=role, ctx=ctx, source=source)
    return view


def update_account(s: Session, *, acc: Account, fields: AccountFields, ctx: AuditContext) -> View:
    writable(acc, f"account {acc.id}")
    if fields.alias and (other := queries.find_account(s, fields.alias)) is not None and other.id != acc.id:
        raise Duplicate(f"alias {fields.alias!r} is already used by account {other.id}")
    attachable(acc.id, fields.partition, [role_spec(r) for r in acc.roles])
    before = account_view(acc)
    history.before(s, acc)
    apply_account_fields(acc, AccountSpec(id=acc.id, **fields.model_dump()))
    s.flush()
    history.after(s, acc)
    after = account_view(acc)
    record(s, ctx, "account.update", target_type="account", target_id=acc.id, before=before, after=after)
    return after


def patch_account(s: Session, *, acc: Account, changes: dict[str, Any], ctx: AuditContext) -> View:
    writable(acc, f"account {acc.id}")
    fields = merged(dump(account_spec(acc)), changes, AccountFields, drop=("id", "roles"))
    return update_account(s, acc=acc, fields=fields, ctx=ctx)


def delete_account(s: Session, *, acc: Account, ctx: AuditContext) -> None:
    writable(acc, f"account {acc.id}")
    n = queries.count_roles(s, acc.id)
    if n:
        raise InUse(
            f"account {acc.id} still has {n} role(s); delete them first",
            details=[{"field": "roles", "value": n, "message": f"{n} role(s) registered in the account"}],
        )
    record(s, ctx, "account.delete", target_type="account", target_id=acc.id, before=account_view(acc))
    history.gone(s, acc)
    s.delete(acc)


# ---- roles ----


def create_role(s: Session, *, account: str, spec: RoleSpec, ctx: AuditContext) -> View:
    acc = queries.find_account(s, account)
    if acc is None:
        raise UnknownAccount(f"no account {account!r} is registered")
    return _create_role(s, acc=acc, spec=spec, ctx=ctx, source="api")


def _create_role(s: Session, *, acc: Account, spec: RoleSpec, ctx: AuditContext, source: str) -> View:
    if queries.find_role(s, acc.id, spec.name) is not None:
        raise Duplicate(f"account {acc.id} already has a role named {spec.name!r} (IAM role names ignore case)")
    attachable(acc.id, acc.partition, [spec], field="managed_policy_arns.{j}")
    role = Role(account_id=acc.id, account=acc, source=source)
    apply_role_fields(role, spec)
    s.add(role)
    s.flush()
    history.after(s, role)
    view = role_view(role)
    record(s, ctx, "role.create", target_type="role", target_id=f"{acc.id}/{role.name}", after=view)
    return view


def update_role(s: Session, *, role: Role, spec: RoleSpec, ctx: AuditContext) -> View:
    writable(role, f"role {role.account_id}/{role.name}")
    if spec.name.lower() != role.name_key and queries.find_role(s, role.account_id, spec.name):
        raise Duplicate(f"account {role.account_id} already has a role named {spec.name!r}")
    attachable(role.account_id, role.account.partition, [spec], field="managed_policy_arns.{j}")
    before = role_view(role)
    history.before(s, role)
    apply_role_fields(role, spec)
    s.flush()
    history.after(s, role)
    after = role_view(role)
    record(s, ctx, "role.update", target_type="role", target_id=f"{role.account_id}/{role.name}", before=before, after=after)
    return after


def patch_role(s: Session, *, role: Role, changes: dict[str, Any], ctx: AuditContext) -> View:
    writable(role, f"role {role.account_id}/{role.name}")
    return update_role(s, role=role, spec=merged(dump(role_spec(role)), changes, RoleSpec), ctx=ctx)


def delete_role(s: Session, *, role: Role, ctx: AuditContext) -> None:
    writable(role, f"role {role.account_id}/{role.name}")
    n = queries.count_mappings(s, role.id)
    if n:
        raise InUse(
            f"role {role.account_id}/{role.name} is still used by {n} mapping(s)",
            details=[{"field": "mappings", "value": n, "message": f"{n} mapping(s) use the role"}],
        )
    record(s, ctx, "role.delete", target_type="role", target_id=f"{role.account_id}/{role.name}", before=role_view(role))
    history.gone(s, role)
    s.delete(role)


# ---- mappings ----


def _wrong_target(spec: MappingSpec, *, targeted: bool) -> None:
    """/mappings take ``account:``, /org-mappings ``accounts:`` (each its own id space)."""
    if (spec.accounts is not None) != targeted:
        where, field = ("/org-mappings", "accounts") if spec.accounts is not None else ("/mappings", "account")
        message = f"a mapping with {field}: is managed at {where}"
        raise InvalidInput(message, details=[{"field": field, "code": "invalid_target", "message": message}])


def _target_role(s: Session, spec: MappingSpec) -> Role:
    _wrong_target(spec, targeted=False)
    assert spec.account is not None
    acc = queries.find_account(s, spec.account)
    if acc is None:
        raise UnknownAccount(f"no account {spec.account!r} is registered")
    role = queries.find_role(s, acc.id, spec.role)
    if role is None:
        raise UnknownRole(f"account {acc.id} has no role {spec.role!r}; register the role first")
    return role


def create_mapping(s: Session, *, spec: MappingSpec, ctx: AuditContext) -> View:
    role = _target_role(s, spec)
    if queries.find_mapping(s, spec.group, role) is not None:
        raise Duplicate(f"group {spec.group!r} is already mapped to {role.account_id}/{role.name}")
    m = Mapping(source="api")
    apply_mapping_fields(m, spec, role)
    s.add(m)
    s.flush()
    history.after(s, m)
    view = mapping_view(m)
    record(s, ctx, "mapping.create", target_type="mapping", target_id=str(m.id), after=view)
    return view


def update_mapping(s: Session, *, m: Mapping, spec: MappingSpec, ctx: AuditContext) -> View:
    writable(m, f"mapping {m.id}")
    role = _target_role(s, spec)
    other = queries.find_mapping(s, spec.group, role)
    if other is not None and other.id != m.id:
        raise Duplicate(f"group {spec.group!r} is already mapped to {role.account_id}/{role.name} (mapping {other.id})")
    before = mapping_view(m)
    history.before(s, m)
    apply_mapping_fields(m, spec, role)
    s.flush()
    history.after(s, m)
    after = mapping_view(m)
    record(s, ctx, "mapping.update", target_type="mapping", target_id=str(m.id), before=before, after=after)
    return after


def patch_mapping(s: Session, *, m: Mapping, changes: dict[str, Any], ctx: AuditContext) -> View:
    writable(m, f"mapping {m.id}")
    return update_mapping(s, m=m, spec=merged(dump(mapping_spec(m)), changes, MappingSpec), ctx=ctx)


def delete_mapping(s: Session, *, m: Mapping, ctx: AuditContext) -> None:
    writable(m, f"mapping {m.id}")
    record(s, ctx, "mapping.delete", target_type="mapping", target_id=str(m.id), before=mapping_view(m))
    history.gone(s, m)
    s.delete(m)


# ---- org mappings (accounts: an OU or a tag) ----


def _same_org_mapping(s: Session, spec: MappingSpec) -> OrgMapping | None:
    assert spec.accounts is not None
    return queries.find_org_mapping(s, spec.group, spec.accounts.target().key, spec.role)


def create_org_mapping(s: Session, *, spec: MappingSpec, ctx: AuditContext) -> View:
    _wrong_target(spec, targeted=True)
    assert spec.accounts is not None
    if _same_org_mapping(s, spec) is not None:
        raise Duplicate(f"group {spec.group!r} is already mapped to {spec.role} via {spec.accounts.target().via}")
    m = OrgMapping(source="api")
    apply_org_mapping_fields(m, spec)
    s.add(m)
    s.flush()
    history.after(s, m)
    view = org_mapping_view(m)
    record(s, ctx, "org_mapping.create", target_type="org_mapping", target_id=str(m.id), after=view)
    return view


def update_org_mapping(s: Session, *, m: OrgMapping, spec: MappingSpec, ctx: AuditContext) -> View:
    writable(m, f"org mapping {m.id}")
    _wrong_target(spec, targeted=True)
    other = _same_org_mapping(s, spec)
    if other is not None and other.id != m.id:
        raise Duplicate(f"group {spec.group!r} is already mapped to {spec.role} there (org mapping {other.id})")
    before = org_mapping_view(m)
    history.before(s, m)
    apply_org_mapping_fields(m, spec)
    s.flush()
    history.after(s, m)
    after = org_mapping_view(m)
    record(s, ctx, "org_mapping.update", target_type="org_mapping", target_id=str(m.id), before=before, after=after)
    return after


def patch_org_mapping(s: Session, *, m: OrgMapping, changes: dict[str, Any], ctx: AuditContext) -> View:
    writable(m, f"org mapping {m.id}")
    return update_org_mapping(s, m=m, spec=merged(dump(org_mapping_spec(m)), changes, MappingSpec), ctx=ctx)


def delete_org_mapping(s: Session, *, m: OrgMapping, ctx: AuditContext) -> None:
    writable(m, f"org mapping {m.id}")
    record(s, ctx, "org_mapping.delete", target_type="org_mapping", target_id=str(m.id), before=org_mapping_view(m))
    history.gone(s, m)
    s.delete(m)


# ---- naming rules ----


def create_rule(s: Session, *, spec: RuleSpec, ctx: AuditContext) -> View:
    if s.get(NamingRule, spec.name) is not None:
        raise Duplicate(f"a naming rule named {spec.name!r} already exists")
    r = NamingRule(source="api")
    apply_rule_fields(r, spec)
    s.add(r)
    s.flush()
    history.after(s, r)
    view = rule_view(r)
    record(s, ctx, "rule.create", target_type="rule", target_id=r.name, after=view)
    return view


def update_rule(s: Session, *, r: NamingRule, spec: RuleSpec, ctx: AuditContext) -> View:
    writable(r, f"naming rule {r.name!r}")
    if spec.name != r.name:
        raise Conflict("a naming rule cannot be renamed; create a new one and delete this one")
    before = rule_view(r)
    history.before(s, r)
    apply_rule_fields(r, spec)
    s.flush()
    history.after(s, r)
    after = rule_view(r)
    record(s, ctx, "rule.update", target_type="rule", target_id=r.name, before=before, after=after)
    return after


def patch_rule(s: Session, *, r: NamingRule, changes: dict[str, Any], ctx: AuditContext) -> View:
    writable(r, f"naming rule {r.name!r}")
    return update_rule(s, r=r, spec=merged(dump(rule_spec(r)), changes, RuleSpec), ctx=ctx)


def delete_rule(s: Session, *, r: NamingRule, ctx: AuditContext) -> None:
    writable(r, f"naming rule {r.name!r}")
    record(s, ctx, "rule.delete", target_type="rule", target_id=r.name, before=rule_view(r))
    history.gone(s, r)
    s.delete(r)
