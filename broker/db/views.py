"""The JSON shapes the admin API answers: an object's model fields (``broker.mapping.model``),
plus where it came from and when (``source``, ``created_at``, ``updated_at``), plus what the
database adds (a mapping's id; a role's account and ARN). ``broker.web.admin_schema`` documents
the same shapes, derived from the same models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from broker.audit import rfc3339
from broker.db.models import Account, Mapping, NamingRule, OrgMapping, OrgPlacement, Role
from broker.db.rows import account_spec, mapping_spec, org_mapping_spec, role_spec, rule_spec

View = dict[str, Any]


def dump(spec: BaseModel) -> dict[str, Any]:
    """A model's fields as JSON values."""
    return spec.model_dump(mode="json", context={"every_field": True})


def meta(row: Account | Role | Mapping | NamingRule | OrgMapping) -> dict[str, Any]:
    return {"source": row.source, "created_at": rfc3339(row.created_at), "updated_at": rfc3339(row.updated_at)}


def role_arn(role: Role) -> str:
    return f"arn:{role.account.partition}:iam::{role.account_id}:role{role.path}{role.name}"


def account_view(acc: Account) -> View:
    return {k: v for k, v in dump(account_spec(acc)).items() if k != "roles"} | meta(acc)


def role_view(role: Role) -> View:
    return {"account": role.account_id, "arn": role_arn(role), **dump(role_spec(role)), **meta(role)}


def mapping_view(m: Mapping) -> View:
    return {"id": m.id, **dump(mapping_spec(m)), **meta(m)}


def org_mapping_view(m: OrgMapping) -> View:
    return {"id": m.id, **dump(org_mapping_spec(m)), **meta(m)}


def rule_view(r: NamingRule) -> View:
    return dump(rule_spec(r)) | meta(r)


def placement_view(p: OrgPlacement) -> View:
    return {"account": p.account_id, "ou_id": p.ou_id, "ou_path": list(p.ou_path), "tags": dict(p.tags),
            "discovered_at": rfc3339(p.discovered_at)}
