"""A role's managed policy ARNs (attached by aws-setup's templates); existing roles get none.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("roles", sa.Column("managed_policy_arns", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    # a plain DROP COLUMN (SQLite 3.35+): no batch copy of the table, which the mappings' foreign
    # keys on roles would refuse
    op.drop_column("roles", "managed_policy_arns")
