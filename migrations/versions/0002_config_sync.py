"""The config sync's lock row and its last result.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "config_sync",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("doc_hash", sa.String(64), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changes", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("config_sync")
