"""The audit log's hash chain: ``prev_hash`` and ``hash`` on every audit row (broker.audit_chain)
and the chain's head row (last id and hash, purge anchor). Existing rows are chained in id order,
in batches, so an upgraded database verifies clean; their ids are renumbered densely only if they
are not already (a chain's ids have no gaps: a gap is a deleted row).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from datetime import UTC

import sqlalchemy as sa
from alembic import op

from broker.audit_chain import GENESIS, JSON_FIELDS, as_stored, event_hash

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("audit_events", sa.Column("hash", sa.String(64), nullable=True))
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("anchor_id", sa.BigInteger(), nullable=False),
        sa.Column("anchor_hash", sa.String(64), nullable=False),
    )
    conn = op.get_bind()
    _make_ids_dense(conn)
    last_id, last_hash = _backfill(conn)
    op.bulk_insert(head, [{"id": 1, "last_id": last_id, "last_hash": last_hash, "anchor_id": 0, "anchor_hash": GENESIS}])
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)


def _events() -> sa.Table:
    return sa.table(
        "audit_events",
        sa.column("id", sa.BigInteger()),
        sa.column("at", sa.DateTime(timezone=True)),
        *(sa.column(name, sa.String()) for name in ("actor", "action", "outcome", "target_type", "target_id",
                                                    "request_id", "source_ip")),
        *(sa.column(name, sa.JSON()) for name in JSON_FIELDS),
        sa.column("prev_hash", sa.String(64)),
        sa.column("hash", sa.String(64)),
    )


def _make_ids_dense(conn: sa.Connection) -> None:
    """Ids 1..n in the order they had, only when there are gaps (a PostgreSQL sequence leaves one
    per rolled-back insert): first out of the way, then numbered, so no id is taken twice."""
    count, top = conn.execute(sa.text("SELECT count(*), max(id) FROM audit_events")).one()
    if not count or top == count:
        return
    conn.execute(sa.text("UPDATE audit_events SET id = id + :offset"), {"offset": top})
    conn.execute(sa.text(
        "UPDATE audit_events SET id = numbered.n FROM "
        "(SELECT id AS old, row_number() OVER (ORDER BY id) AS n FROM audit_events) AS numbered "
        "WHERE audit_events.id = numbered.old"
    ))


def _backfill(conn: sa.Connection) -> tuple[int, str]:
    events = _events()
    prev_hash, after = GENESIS, 0
    while True:
        page = [dict(r._mapping) for r in conn.execute(
            sa.select(events).where(events.c.id > after).order_by(events.c.id).limit(BATCH)
        )]
        if not page:
            return after, prev_hash
        updates = []
        for row in page:
            if row["at"].tzinfo is None:
                row["at"] = row["at"].replace(tzinfo=UTC)
            for name in JSON_FIELDS:
                row[name] = as_stored(row[name])
            row["prev_hash"] = prev_hash
            prev_hash = event_hash(row)
            updates.append({"b_id": row["id"], "b_prev": row["prev_hash"], "b_hash": prev_hash})
        conn.execute(
            sa.update(events)
            .where(events.c.id == sa.bindparam("b_id"))
            .values(prev_hash=sa.bindparam("b_prev"), hash=sa.bindparam("b_hash")),
            updates,
        )
        after = page[-1]["id"]


def downgrade() -> None:
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")

