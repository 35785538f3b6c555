"""Storage: SQLAlchemy models, sessions, migrations and the SQL mapping store."""
