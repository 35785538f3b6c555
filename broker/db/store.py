"""SqlMappingStore: the mapping store on SQLAlchemy (SQLite or PostgreSQL), a thin facade.

It owns the engine and the transactions (one per call) and translates SQLAlchemy's exceptions
into the broker's errors (``_translated``, the one place). The work is done by modules named
after their reason to change, each a set of functions taking the session explicitly:

- ``queries`` — reads: look-ups, the admin lists, the issuance snapshots, the export;
- ``writes`` — the admin writes, each with its audit event (config-declared objects read-only);
- ``views`` — the JSON shapes the admin API answers;
- ``reconcile`` (pure) and ``sync`` — the import and the config-file sync: a plan, then applied;
- ``audit`` — audit rows (the admin writes' events, the flow's decisions, the log's pages);
- ``history`` and ``restore`` — the mapping's numbered versions (each write's transaction adds
  one), and a version brought back as an import;
- ``reviews`` — access-review snapshots of the access report, their diffs and attestations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from broker.audit import AuditContext, AuditFilter, Decision
from broker.audit_chain import Report
from broker.connectors.membership import Membership
from broker.db import audit, audit_trail, history, placements, queries, restore, reviews, sync, views, writes
from broker.db.models import utcnow
from broker.db.session import session_factory
from broker.db.sync import CONFIG_ACTOR, document_hash
from broker.db.views import View
from broker.errors import BrokerError, Duplicate, StorageUnavailable
from broker.mapping.model import AccountFields, AccountSpec, MappingDocument, MappingSpec, RoleSpec, RuleSpec
from broker.mapping.org_targets import Placement, PlacementChanges
from broker.mapping.snapshot import MappingSnapshot
from broker.mapping.store import ImportPlan
from broker.reports.access import ReportFilter

__all__ = ["CONFIG_ACTOR", "SqlMappingStore", "document_hash"]


class SqlMappingStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)
        # PostgreSQL: the issuance path's statements run in autocommit, without BEGIN and COMMIT
        # round trips around them (each statement is atomic by itself; the mapping read's two
        # selects need no common snapshot). The audit rows are not on it: the chain needs its
        # transaction (record_events). SQLite has no
        # round trips to save, and pysqlite's autocommit switch costs more than it saves.
        self._issuance_engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if engine.dialect.name == "postgresql" else engine
        )
        self._commits_decisions = audit.can_commit_decisions(engine)

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
    def _mapping_tx(
        self, ctx: AuditContext, *, via: str = "api", details: dict[str, Any] | None = None
    ) -> Iterator[Session]:
        """A transaction that changes the mapping: it takes the mapping lock before its first
        read (writes, imports and syncs run one at a time; on SQLite the write lock up front,
        BEGIN IMMEDIATE), and ends by writing the mapping version of what it changed."""
        with self._tx() as s:
            if self.engine.dialect.name == "sqlite":
                s.connection().exec_driver_sql("BEGIN IMMEDIATE")
            sync.lock_mapping(s)
            history.begin(s)
            yield s
            history.commit(s, ctx=ctx, via=via, details=details)

    def ping(self) -> None:
        with self._tx() as s:
            s.execute(text("SELECT 1"))

    # ---- issuance path ----

    def snapshot_for(self, groups: Iterable[str]) -> MappingSnapshot:
        with self._core_tx() as conn:
            return queries.snapshot_for_groups(conn, groups)

    def full_snapshot(self) -> MappingSnapshot:
        with self._tx() as s:
            return queries.full_snapshot(s)

    # ---- accounts ----

    def list_accounts(self) -> list[View]:
        with self._tx() as s:
            return [views.account_view(a) for a in queries.accounts(s)]

    def get_account(self, ref: str) -> View:
        with self._tx() as s:
            return views.account_view(queries.get_account(s, ref=ref))

    def create_account(self, spec: AccountSpec, ctx: AuditContext, *, source: str = "api") -> View:
        with self._mapping_tx(ctx) as s:
            return writes.create_account(s, spec=spec, ctx=ctx, source=source)

    def update_account(self, ref: str, fields: AccountFields, ctx: AuditContext) -> View:
        with self._mapping_tx(ctx) as s:
            acc = writes.locked(s, queries.get_account(s, ref=ref))
            return writes.update_account(s, acc=acc, fields=fields, ctx=ctx)

    def patch_account(self, ref: str, changes: dict[str, Any], ctx: AuditContext) -> View:
        """PATCH: the current fields with ``changes`` laid over them, validated as a whole and
        written in the one transaction that read them (a concurrent write is never undone)."""
        with self._mapping_tx(ctx) as s:
            acc = writes.locked(s, queries.get_account(s, ref=ref))
            return writes.patch_account(s, acc=acc, changes=changes, ctx=ctx)

    def delete_account(self, ref: str, ctx: AuditContext) -> None:
        with self._mapping_tx(ctx) as s:
            writes.delete_account(s, acc=queries.get_account(s, ref=ref), ctx=ctx)

    # ---- roles ----

    def list_roles(self, account: str) -> list[View]:
        with self._tx() as s:
            return [views.role_view(r) for r in queries.get_account(s, ref=account).roles]

    def role_descriptions(self, account_ids: Iterable[str]) -> dict[str, str]:
        """``<account id>/<role name, lower case>`` → description, for the registered roles of
        those accounts that have one (the portal shows them beside each role)."""
        ids = sorted(set(account_ids))
        if not ids:
            return {}
        with self._tx() as s:
            return queries.role_descriptions(s, ids)

    def get_role(self, account: str, name: str) -> View:
        with self._tx() as s:
            return views.role_view(queries.get_role(s, account=account, name=name))

    def create_role(self, account: str, spec: RoleSpec, ctx: AuditContext) -> View:
        with self._mapping_tx(ctx) as s:
            return writes.create_role(s, account=account, spec=spec, ctx=ctx)

    def update_role(self, account: str, name: str, spec: RoleSpec, ctx: AuditContext) -> View:
        with self._mapping_tx(ctx) as s:
            role = writes.locked(s, queries.get_role(s, account=account, name=name))
            return writes.update_role(s, role=role, spec=spec, ctx=ctx)

    def patch_role(self, account: str, name: str, changes: dict[str, Any], ctx: AuditContext) -> View:
        """PATCH in one transaction (see patch_account)."""
        with self._mapping_tx(ctx) as s:
            role = writes.locked(s, queries.get_role(s, account=account, name=name))
            return writes.patch_role(s, role=role, changes=changes, ctx=ctx)

    def delete_role(self, account: str, name: str, ctx: AuditContext) -> None:
        with self._mapping_tx(ctx) as s:
            writes.delete_role(s, role=queries.get_role(s, account=account, name=name), ctx=ctx)

    # ---- mappings ----

    def list_mappings(
        self,
        *,
        group: str | None = None,
        account: str | None = None,
        role: str | None = None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[View]:
        with self._tx() as s:
            page = queries.mappings(s, group=group, account=account, role=role, limit=limit, after_id=after_id)
            return [views.mapping_view(m) for m in page]

    def get_mapping(self, mapping_id: int) -> View:
        with self._tx() as s:
            return views.mapping_view(queries.get_mapping(s, mapping_id=mapping_id))

    def create_mapping(self, spec: MappingSpec, ctx: AuditContext) -> View:
        with self._mapping_tx(ctx) as s:
            return writes.create_mapping(s, spec=spec, ctx=ctx)

    def update_mapping(self, mapping_id: int, spec: MappingSpec, ctx: AuditContext) -> View:
        with self._mapping_tx(ctx) as s:
            m = writes.locked(s, queries.get_mapping(s, mapping_id=mapping_id))
            return writes.update_mapping(s, m=m, spec=spec, ctx=ctx)

    def patch_mapping(self, mapping_id: int, changes: dict[str, Any], ctx: AuditContext) -> View:
        """PATCH in one transaction (see patch_account)."""
        with self._mapping_tx(ctx) as s:
            m = writes.locked(s, queries.get_mapping(s, mapping_id=mapping_id))
            return writes.patch_mapping(s, m=m, changes=changes, ctx=ctx)

    def delete_mapping(self, mapping_id: int, ctx: AuditContext) -> None:
        with self._mapping_tx(ctx) as s:
            writes.delete_mapping(s, m=queries.get_mapping(s, mapping_id=mapping_id), ctx=ctx)

    # ---- org mappings (accounts: an OU or a tag) and the placements discovery records ----

    def list_org_mappings(self, *, group: str | None = None) -> list[View]:
        with self._tx() as s:
            return [views.org_mapping_view(m) for m in queries.org_mappings(s, group=group)]

    def get_org_mapping(self, mapping_id: int) -> View:
        with self._tx() as s:
            return views.org_mapping_view(queries.get_org_mapping(s, mapping_id=mapping_id))

    def create_org_mapping(self, spec: MappingSpec, ctx: AuditContext) -> View:
        with self._mapping_tx(ctx) as s:
            return writes.create_org_mapping(s, spec=spec, ctx=ctx)

    def update_org_mapping(self, mapping_id: int, spec: MappingSpec, ctx: AuditContext) -> View:
        with self._mapping_tx(ctx) as s:
            m = writes.locked(s, queries.get_org_mapping(s, mapping_id=mapping_id))
            return writes.update_org_mapping(s, m=m, spec=spec, ctx=ctx)

    def patch_org_mapping(self, mapping_id: int, changes: dict[str, Any], ctx: AuditContext) -> View:
        """PATCH in one transaction (see patch_account)."""
        with self._mapping_tx(ctx) as s:
            m = writes.locked(s, queries.get_org_mapping(s, mapping_id=mapping_id))
            return writes.patch_org_mapping(s, m=m, changes=changes, ctx=ctx)

    def delete_org_mapping(self, mapping_id: int, ctx: AuditContext) -> None:
        with self._mapping_tx(ctx) as s:
            writes.delete_org_mapping(s, m=queries.get_org_mapping(s, mapping_id=mapping_id), ctx=ctx)

    def list_placements(self) -> list[View]:
        with self._tx() as s:
            return [views.placement_view(p) for p in queries.placements(s)]

    def record_placements(self, found: Sequence[Placement]) -> PlacementChanges:
        """Discovery's placements of registered accounts (``found``: the whole organization),
        written over the last ones (discovered data: nothing a person made); accounts not
        registered are skipped, placed accounts no longer listed lose their placement (never their
        registration). One transaction."""
        with self._tx() as s:
            return placements.record_placements(s, found=found)

    # ---- naming rules ----

    def list_rules(self) -> list[View]:
        with self._tx() as s:
            return [views.rule_view(r) for r in queries.rules(s)]

    def get_rule(self, name: str) -> View:
        with self._tx() as s:
            return views.rule_view(queries.get_rule(s, name=name))

    def create_rule(self, spec: RuleSpec, ctx: AuditContext) -> View:
        with self._mapping_tx(ctx) as s:
            return writes.create_rule(s, spec=spec, ctx=ctx)

    def update_rule(self, name: str, spec: RuleSpec, ctx: AuditContext) -> View:
        with self._mapping_tx(ctx) as s:
            r = writes.locked(s, queries.get_rule(s, name=name))
            return writes.update_rule(s, r=r, spec=spec, ctx=ctx)

    def patch_rule(self, name: str, changes: dict[str, Any], ctx: AuditContext) -> View:
        """PATCH in one transaction (see patch_account)."""
        with self._mapping_tx(ctx) as s:
            r = writes.locked(s, queries.get_rule(s, name=name))
            return writes.patch_rule(s, r=r, changes=changes, ctx=ctx)

    def delete_rule(self, name: str, ctx: AuditContext) -> None:
        with self._mapping_tx(ctx) as s:
            writes.delete_rule(s, r=queries.get_rule(s, name=name), ctx=ctx)

    # ---- export / import / config sync ----

    def export(self, *, source: str | None = None) -> MappingDocument:
        with self._tx() as s:
            return queries.export_document(s, source=source)

    def plan_import(self, doc: MappingDocument) -> ImportPlan:
        with self._tx() as s:
            return sync.plan_import(s, doc=doc)

    def apply_import(
        self, doc: MappingDocument, ctx: AuditContext, *, check: Callable[[ImportPlan], None] | None = None
    ) -> ImportPlan:
        """Apply the import atomically. ``check`` sees the plan inside the transaction, before any
        write, and may refuse it (the dry run's plan hash, deletions without allow_deletes): the
        mapping lock is held from the plan to the writes, so nothing slips in between."""
        with self._mapping_tx(ctx, via="import") as s:
            return sync.apply_import(s, doc=doc, ctx=ctx, check=check)

    def plan_config_sync(self, doc: MappingDocument) -> ImportPlan:
        """What `sync_config` would do now (check-config's look ahead); writes nothing."""
        with self._tx() as s:
            return sync.plan_config_sync(s, doc=doc)

    def sync_config(self, doc: MappingDocument) -> ImportPlan:
        """Bring the config-declared objects in the database to the config file's; nothing else.

        Runs under the config_sync row's lock, so workers and replicas starting together sync one
        after the other (the later ones find nothing to do). See broker.db.reconcile."""
        with self._mapping_tx(CONFIG_ACTOR, via="config-sync") as s:
            return sync.sync_config(s, doc=doc)

    # ---- the mapping's history ----

    def list_versions(self, *, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        with self._tx() as s:
            return history.list_versions(s, limit=limit, before_number=before)

    def get_version(self, number: int) -> dict[str, Any]:
        with self._tx() as s:
            return history.get_version(s, number=number)

    def version_document(self, number: int) -> dict[str, Any]:
        with self._tx() as s:
            return history.document_at(s, number=number)

    def diff_versions(self, old: int, new: int) -> dict[str, Any]:
        with self._tx() as s:
            return history.diff_versions(s, old=old, new=new)

    def plan_restore(self, number: int) -> ImportPlan:
        """Restoring version ``number``: the import plan of its document (nothing is written)."""
        with self._tx() as s:
            return restore.plan(s, number=number)

    def apply_restore(
        self, number: int, ctx: AuditContext, *, check: Callable[[ImportPlan], None] | None = None
    ) -> ImportPlan:
        """Restore version ``number``: its document imported atomically (``check`` as for
        apply_import); the new version says which one it restored."""
        with self._mapping_tx(ctx, via="restore", details={"restored_from": number}) as s:
            return restore.apply(s, number=number, ctx=ctx, check=check)

    # ---- access reviews (broker.db.reviews) ----

    def create_review_snapshot(
        self, membership: Membership, flt: ReportFilter, ctx: AuditContext, *, title: str | None = None
    ) -> dict[str, Any]:
        """Save the access report now (from ``membership``, read by the caller) as a snapshot; audited."""
        with self._tx() as s:
            return reviews.create_snapshot(s, membership=membership, flt=flt, ctx=ctx, title=title)

    def list_review_snapshots(self, *, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        with self._tx() as s:
            return reviews.list_snapshots(s, limit=limit, before=before)

    def latest_review_attestations(self, numbers: list[int]) -> dict[int, dict[str, Any]]:
        """Snapshot number → its newest attestation (the snapshots of ``numbers`` that have one)."""
        with self._tx() as s:
            return reviews.latest_attestations(s, numbers=numbers)

    def get_review_snapshot(self, number: int) -> dict[str, Any]:
        with self._tx() as s:
            return reviews.get_snapshot(s, number=number)

    def review_snapshot_csv(self, number: int) -> bytes:
        """The snapshot's CSV, compressed (``broker.reports.review_snapshot.csv_bytes`` streams it)."""
        with self._tx() as s:
            return reviews.snapshot_csv(s, number=number)

    def review_snapshot_rows(self, number: int) -> bytes:
        """The snapshot's rows, compressed (``broker.reports.review_snapshot.unpack_rows`` reads them)."""
        with self._tx() as s:
            return reviews.snapshot_rows(s, number=number)

    def review_changes(
        self, number: int, *, against: int | None = None, membership: Membership | None = None
    ) -> dict[str, Any]:
        """Snapshot ``number`` against snapshot ``against``, or against now (``membership`` needed)."""
        with self._tx() as s:
            return reviews.changes(s, number=number, against=against, membership=membership)

    def attest_review_snapshot(
        self, number: int, ctx: AuditContext, *, decision: str | None = None, comment: str = ""
    ) -> dict[str, Any]:
        with self._tx() as s:
            return reviews.attest(s, number=number, ctx=ctx, decision=decision, comment=comment)

    # ---- the audit log ----

    def record_events(self, events: Sequence[Decision]) -> None:
        """The flow's ``DecisionLog``: several decisions of one request (a password sign-in and
        the issuance it led to) in one write: one transaction that extends the audit chain
        (``broker.db.chain``: a transaction on PostgreSQL too, not the issuance path's autocommit)."""
        if not events:
            return
        if self._commits_decisions:  # PostgreSQL: two round trips (broker.db.chain_pg)
            with _translated(), self.engine.connect() as conn:
                audit.commit_decisions(conn, events)
            return
        with _translated(), self.engine.begin() as conn:
            audit.record_decisions(conn, events)

    def audit_events(self, f: AuditFilter, *, limit: int, before_id: int | None) -> list[dict[str, Any]]:
        with self._tx() as s:
            return [audit.event_dict(e) for e in audit.query(s, f, limit=limit, before_id=before_id)]

    # ---- the audit trail: chain, export, retention (broker.db.audit_trail) ----

    def verify_audit(self) -> Report:
        """The audit chain checked from its anchor, on one snapshot of the database."""
        with _translated(), self.engine.connect() as conn:
            audit_trail.snapshot(conn)
            return audit_trail.check(conn)

    def export_audit(self, *, after_id: int, limit: int, since: datetime | None) -> tuple[int, Iterator[dict[str, Any]]]:
        """An export page: its last id (the next cursor) at once, and its rows in id order as
        they are read, ``audit_trail.PAGE`` at a time (the iterator opens its own connection)."""
        with self._tx() as s:
            end = audit_trail.export_end(s.connection(), after_id=after_id, limit=limit, since=since)

        def rows() -> Iterator[dict[str, Any]]:
            if end == after_id:
                return
            with _translated(), self.engine.connect() as conn:
                yield from audit_trail.export_page(conn, after_id=after_id, through_id=end, since=since)

        return end, rows()

    def purge_audit(self, *, retention_days: int, ctx: AuditContext, dry_run: bool,
                    now: datetime | None = None) -> dict[str, Any]:
        with _translated(), self.engine.begin() as conn:
            return audit_trail.purge(conn, retention_days=retention_days, ctx=ctx, now=now or utcnow(),
                                     dry_run=dry_run)


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
