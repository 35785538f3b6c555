"""Alembic environment. The engine comes from broker.db.session (config.attributes["connection"])
so `broker migrate` and the tests run the same code on SQLite and PostgreSQL."""

from alembic import context

from broker.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `broker migrate` (broker.db.session.migrate)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline SQL generation is not supported; run `broker migrate`")
run_migrations_online()
