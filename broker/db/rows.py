"""Rows ↔ the mapping model: each table's columns are the model's fields of the same name.

The fields are the pydantic models' (``broker.mapping.model``); only what a table stores
differently is spelled out here: an account's federation (six columns), a role's and a
mapping's lower-case keys, a mapping's account and role (its role row), and the ``accounts:``
target of org mappings and rules (one ``target`` key column, ``broker.mapping.org_targets``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from broker.db.models import Account, Mapping, NamingRule, OrgMapping, Role
from broker.groups import match_key
from broker.mapping.model import (
    AccountSelector,
    AccountSpec,
    AssertionEncryption,
    MappingSpec,
    RoleSpec,
    RuleSpec,
    SamlFederation,
    WebIdentityFederation,
)
from broker.mapping.org_targets import Target


def _same_named(model: type[BaseModel], *, but: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The model's fields stored in a column of the same name."""
    return tuple(name for name in model.model_fields if name not in but)


ACCOUNT_COLUMNS = _same_named(AccountSpec, but=("id", "federation", "roles"))  # the id: the primary key
ROLE_COLUMNS = _same_named(RoleSpec)
MAPPING_COLUMNS = _same_named(MappingSpec, but=("group", "account", "accounts", "role"))
RULE_COLUMNS = _same_named(RuleSpec, but=("accounts",))  # accounts: the target column


def _columns(row: object, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


def _fill(row: object, spec: BaseModel, names: tuple[str, ...]) -> None:
    for name in names:
        setattr(row, name, getattr(spec, name))


# ---- rows → specs (what the API returns and exports) ----


def _encryption(acc: Account) -> AssertionEncryption | None:
    if acc.saml_encryption_mode is None:
        return None
    # not re-validated: a certificate stored before it expired is still listed, exported and replaceable
    stored: dict[str, Any] = {
        "mode": acc.saml_encryption_mode, "provider_id": acc.saml_provider_uuid, "certificate": acc.saml_encryption_cert
    }
    return AssertionEncryption.model_construct(**stored)


def account_spec(acc: Account, *, with_roles: bool = False) -> AccountSpec:
    fed = (
        SamlFederation(saml_provider=acc.saml_provider or "broker", assertion_encryption=_encryption(acc))
        if acc.federation_path == "saml"
        else WebIdentityFederation(path="web_identity", audience=acc.audience)
    )
    roles = [role_spec(r) for r in acc.roles] if with_roles else []
    return AccountSpec(id=acc.id, **_columns(acc, ACCOUNT_COLUMNS), federation=fed, roles=roles)


def role_spec(role: Role) -> RoleSpec:
    return RoleSpec(**_columns(role, ROLE_COLUMNS))


def mapping_spec(m: Mapping) -> MappingSpec:
    return MappingSpec(**_columns(m, MAPPING_COLUMNS), group=m.group_name, account=m.role.account_id, role=m.role.name)


def org_mapping_spec(m: OrgMapping) -> MappingSpec:
    return MappingSpec(**_columns(m, MAPPING_COLUMNS), group=m.group_name, accounts=_selector(m.target),
                       role=m.role_name)


def _selector(target: str | None) -> AccountSelector | None:
    return None if target is None else AccountSelector.of(Target.from_key(target))


def rule_spec(r: NamingRule) -> RuleSpec:
    # not re-validated: a rule stored before patterns had to be RE2 is still listed, exported and deletable
    return RuleSpec.model_construct(**_columns(r, RULE_COLUMNS), accounts=_selector(r.target))


# ---- specs → rows ----


def apply_account_fields(acc: Account, spec: AccountSpec) -> None:
    _fill(acc, spec, ACCOUNT_COLUMNS)
    acc.federation_path = spec.federation.path
    acc.saml_provider = spec.federation.saml_provider if isinstance(spec.federation, SamlFederation) else None
    acc.audience = spec.federation.audience if isinstance(spec.federation, WebIdentityFederation) else None
    enc = spec.federation.assertion_encryption if isinstance(spec.federation, SamlFederation) else None
    acc.saml_encryption_mode = enc.mode if enc else None
    acc.saml_provider_uuid = enc.provider_id if enc else None
    acc.saml_encryption_cert = enc.certificate if enc else None


def apply_role_fields(role: Role, spec: RoleSpec) -> None:
    _fill(role, spec, ROLE_COLUMNS)
    role.name_key = spec.name.lower()


def apply_mapping_fields(m: Mapping, spec: MappingSpec, role: Role) -> None:
    _fill(m, spec, MAPPING_COLUMNS)
    m.group_name = spec.group
    m.group_key = match_key(spec.group)
    m.role_id = role.id
    m.role = role


def apply_org_mapping_fields(m: OrgMapping, spec: MappingSpec) -> None:
    assert spec.accounts is not None
    _fill(m, spec, MAPPING_COLUMNS)
    m.group_name = spec.group
    m.group_key = match_key(spec.group)
    m.target = spec.accounts.target().key
    m.role_name = spec.role
    m.role_key = spec.role.lower()


def apply_rule_fields(r: NamingRule, spec: RuleSpec) -> None:
    _fill(r, spec, RULE_COLUMNS)
    r.target = spec.accounts.target().key if spec.accounts is not None else None
