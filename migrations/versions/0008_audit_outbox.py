"""The audit outbox: one row per (audit event, forwarding destination) until it is delivered.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_outbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", _ID, sa.ForeignKey("audit_events.id"), nullable=False),
        sa.Column("destination", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(256), nullable=True),
    )
    op.create_index("ix_audit_outbox_due", "audit_outbox", ["destination", "next_attempt_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_outbox_due", table_name="audit_outbox")
    op.drop_table("audit_outbox")
