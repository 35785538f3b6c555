"""Durable state: CLI logins (refresh-token families and their tokens) in the database, so a
Redis restart without persistence does not sign every CLI user out (broker.db.durable_state).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "durable_state",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("index_name", sa.String(255), nullable=True),
    )
    op.create_index("ix_durable_state_index_name", "durable_state", ["index_name"])
    op.create_index("ix_durable_state_expires_at", "durable_state", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_durable_state_expires_at", table_name="durable_state")
    op.drop_index("ix_durable_state_index_name", table_name="durable_state")
    op.drop_table("durable_state")
