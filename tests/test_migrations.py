"""Migrations: upgrade → downgrade → upgrade on SQLite and PostgreSQL, and the models match them."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from broker.config import DatabaseConfig
from broker.db.models import Base
from broker.db.session import current_revision, downgrade, head_revision, make_engine, migrate
from broker.db.store import SqlMappingStore
from broker.mapping.model import MappingDocument

TABLES = {"accounts", "roles", "mappings", "naming_rules", "audit_events"}
DOC = MappingDocument.model_validate(
    {
        "accounts": [{"id": "123456789012", "alias": "prod", "roles": [{"name": "Admin"}]}],
        "mappings": [{"group": "ops", "account": "prod", "role": "Admin"}],
    }
)


def test_upgrade_downgrade_upgrade(database_url):
    engine = make_engine(DatabaseConfig(url=database_url))
    try:
        migrate(engine)
        assert current_revision(engine) == head_revision()
        assert TABLES <= set(inspect(engine).get_table_names())
        SqlMappingStore(engine).sync_config(DOC)

        downgrade(engine, "base")
        assert current_revision(engine) is None
        assert not TABLES & set(inspect(engine).get_table_names())

        migrate(engine)
        assert current_revision(engine) == head_revision()
        store = SqlMappingStore(engine)
        assert store.list_accounts() == []  # a fresh schema, usable again
        assert store.sync_config(DOC).changes == 3
    finally:
        engine.dispose()


def test_models_match_the_migrations(database_url):
    engine = make_engine(DatabaseConfig(url=database_url))
    try:
        migrate(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_the_audit_chain_migration_chains_existing_rows_so_they_verify(database_url):
    """A database with audit rows from before the chain (ids with gaps, as a PostgreSQL sequence
    leaves them after rollbacks): upgraded, every row is chained in its order, ids are dense, the
    chain verifies clean and new rows extend it."""
    import json
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from broker.audit import AuditContext, Decision

    engine = make_engine(DatabaseConfig(url=database_url))
    try:
        migrate(engine, "0006")
        t0 = datetime(2026, 11, 1, 8, 0, 0, 250000, tzinfo=UTC)
        with engine.begin() as conn:
            for i, old_id in enumerate((3, 4, 9)):
                conn.execute(
                    text("INSERT INTO audit_events (id, at, actor, action, outcome, details) "
                         "VALUES (:id, :at, 'alice', 'login', 'allow', :d)"),
                    {"id": old_id, "at": t0 + timedelta(minutes=i), "d": json.dumps({"n": i, "name": "Zoë"})},
                )
        migrate(engine)
        store = SqlMappingStore(engine)
        report = store.verify_audit()
        assert (report.ok, report.checked, report.first_id, report.last_id) == (True, 3, 1, 3)
        store.record_events([Decision(AuditContext(actor="bob"), "login", "allow")])
        _, rows = store.export_audit(after_id=0, limit=10, since=None)
        lines = list(rows)
        assert [(x["id"], x["actor"], (x["details"] or {}).get("n")) for x in lines] == [
            (1, "alice", 0), (2, "alice", 1), (3, "alice", 2), (4, "bob", None)
        ]
        assert lines[0]["at"] == "2026-11-01T08:00:00.250000Z"
        assert store.verify_audit().ok
        downgrade(engine, "0006")
        migrate(engine)
        assert store.verify_audit().checked == 4
    finally:
        engine.dispose()
