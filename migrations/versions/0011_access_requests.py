"""Just-in-time access: ``access``/``policy`` on mappings, org mappings and naming rules
(standing or eligible), and the requests for eligible roles with their time-bound grants.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TABLES = ("mappings", "org_mappings", "naming_rules")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("access", sa.String(16), nullable=False, server_default="standing"))
            batch.add_column(sa.Column("policy", sa.String(64), nullable=True))
    op.create_table(
        "access_requests",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("requester_id", sa.String(256), nullable=False),
        sa.Column("requester", sa.String(256), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("role_name", sa.String(64), nullable=False),
        sa.Column("role_key", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ticket", sa.String(256), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("approvals_needed", sa.Integer(), nullable=False),
        sa.Column("approvals", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(256), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(256), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_access_requests_person", "access_requests", ["requester_id", "account_id", "role_key", "state"])
    op.create_index("ix_access_requests_state", "access_requests", ["state"])


def downgrade() -> None:
    op.drop_index("ix_access_requests_state", table_name="access_requests")
    op.drop_index("ix_access_requests_person", table_name="access_requests")
    op.drop_table("access_requests")
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("policy")
            batch.drop_column("access")
