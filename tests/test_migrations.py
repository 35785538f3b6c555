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
