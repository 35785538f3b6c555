"""The mapping store interface. ``broker.db.store.SqlMappingStore`` implements it on SQLite
and PostgreSQL; the conformance suite in tests/ runs the same tests against each."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from broker.audit import AuditContext
from broker.mapping.model import AccountFields, AccountSpec, MappingDocument, MappingSpec, RoleSpec, RuleSpec
from broker.mapping.snapshot import MappingSnapshot

Kind = Literal["accounts", "roles", "mappings", "rules", "org_mappings"]
"""The mapping's kinds of object, in dependency order (a document's lists, a plan's parts)."""
KINDS: tuple[Kind, ...] = get_args(Kind)


@dataclass
class KindPlan:
    create: list[dict[str, Any]] = field(default_factory=list)
    update: list[dict[str, Any]] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)
    release: list[dict[str, Any]] = field(default_factory=list)
    """Config sync only: objects the file no longer declares that API objects still use; they are
    kept and handed over to the API (each entry names what holds it)."""
    unchanged: int = 0

    @property
    def changes(self) -> int:
        return len(self.create) + len(self.update) + len(self.delete) + len(self.release)


@dataclass
class ImportPlan:
    """What an import (or the config-file sync) changes, object by object."""

    accounts: KindPlan = field(default_factory=KindPlan)
    roles: KindPlan = field(default_factory=KindPlan)
    mappings: KindPlan = field(default_factory=KindPlan)
    rules: KindPlan = field(default_factory=KindPlan)
    org_mappings: KindPlan = field(default_factory=KindPlan)
    """Mappings with ``accounts:`` (an OU or a tag), their own objects (``/org-mappings``)."""
    conflicts: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    """Config sync only: what the sync left as it is and why (objects the API owns that the file
    also declares; objects the file dropped that API objects still use), each naming its object."""
    applied: bool = False

    def kinds(self) -> dict[Kind, KindPlan]:
        return {"accounts": self.accounts, "roles": self.roles, "mappings": self.mappings, "rules": self.rules,
                "org_mappings": self.org_mappings}

    @property
    def changes(self) -> int:
        return sum(k.changes for k in self.kinds().values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "changes": self.changes,
            "conflicts": self.conflicts,
            "notices": self.notices,
            **{
                name: {
                    "create": k.create,
                    "update": k.update,
                    "delete": k.delete,
                    "release": k.release,
                    "unchanged": k.unchanged,
                }
                for name, k in self.kinds().items()
            },
        }


class MappingStore(Protocol):
    # reads used on the issuance path
    def snapshot_for(self, groups: Iterable[str]) -> MappingSnapshot: ...
    def full_snapshot(self) -> MappingSnapshot: ...

    # admin reads (views are JSON-ready dicts: the spec plus id/source/timestamps)
    def list_accounts(self) -> list[dict[str, Any]]: ...
    def get_account(self, ref: str) -> dict[str, Any]: ...
    def list_roles(self, account: str) -> list[dict[str, Any]]: ...
    def get_role(self, account: str, name: str) -> dict[str, Any]: ...
    def role_descriptions(self, account_ids: Iterable[str]) -> dict[str, str]: ...
    def list_mappings(
        self, *, group: str | None, account: str | None, role: str | None, limit: int, after_id: int | None
    ) -> list[dict[str, Any]]: ...
    def get_mapping(self, mapping_id: int) -> dict[str, Any]: ...
    def list_rules(self) -> list[dict[str, Any]]: ...
    def get_rule(self, name: str) -> dict[str, Any]: ...
    def export(self, *, source: str | None = None) -> MappingDocument: ...

    # admin writes: each one transaction, with its audit event
    def create_account(self, spec: AccountSpec, ctx: AuditContext) -> dict[str, Any]: ...
    def update_account(self, ref: str, fields: AccountFields, ctx: AuditContext) -> dict[str, Any]: ...
    def patch_account(self, ref: str, changes: dict[str, Any], ctx: AuditContext) -> dict[str, Any]: ...
    def delete_account(self, ref: str, ctx: AuditContext) -> None: ...
    def create_role(self, account: str, spec: RoleSpec, ctx: AuditContext) -> dict[str, Any]: ...
    def update_role(self, account: str, name: str, spec: RoleSpec, ctx: AuditContext) -> dict[str, Any]: ...
    def patch_role(self, account: str, name: str, changes: dict[str, Any], ctx: AuditContext) -> dict[str, Any]: ...
    def delete_role(self, account: str, name: str, ctx: AuditContext) -> None: ...
    def create_mapping(self, spec: MappingSpec, ctx: AuditContext) -> dict[str, Any]: ...
    def update_mapping(self, mapping_id: int, spec: MappingSpec, ctx: AuditContext) -> dict[str, Any]: ...
    def patch_mapping(self, mapping_id: int, changes: dict[str, Any], ctx: AuditContext) -> dict[str, Any]: ...
    def delete_mapping(self, mapping_id: int, ctx: AuditContext) -> None: ...
    def create_rule(self, spec: RuleSpec, ctx: AuditContext) -> dict[str, Any]: ...
    def update_rule(self, name: str, spec: RuleSpec, ctx: AuditContext) -> dict[str, Any]: ...
    def patch_rule(self, name: str, changes: dict[str, Any], ctx: AuditContext) -> dict[str, Any]: ...
    def delete_rule(self, name: str, ctx: AuditContext) -> None: ...
    def plan_import(self, doc: MappingDocument) -> ImportPlan: ...
    def apply_import(
        self, doc: MappingDocument, ctx: AuditContext, *, check: Callable[[ImportPlan], None] | None = None
    ) -> ImportPlan: ...
    def sync_config(self, doc: MappingDocument) -> ImportPlan: ...
    def plan_config_sync(self, doc: MappingDocument) -> ImportPlan: ...
