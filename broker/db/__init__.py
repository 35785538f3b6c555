"""Storage: SQLAlchemy models, sessions, migrations and the SQL mapping store.

- ``models`` — the tables (the schema is the Alembic migrations'); ``session`` — engines, migrations;
- ``rows`` — rows ↔ the mapping model (``broker.mapping.model``: the fields' one definition);
- ``queries`` — reads; ``writes`` — admin writes with their audit events; ``views`` — the admin API's JSON;
- ``reconcile`` — the import / config-sync plan, a pure function; ``sync`` — loads, plans, applies it;
- ``audit`` — audit rows; ``store`` — ``SqlMappingStore``, the facade: transactions and error translation.
"""
