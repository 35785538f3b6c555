"""Accounts, roles, mappings, naming rules and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _stamps() -> list[sa.Column]:
    return [
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(12), primary_key=True),
        sa.Column("alias", sa.String(63), nullable=True, unique=True),
        sa.Column("partition", sa.String(16), nullable=False),
        sa.Column("default_region", sa.String(32), nullable=True),
        sa.Column("environment", sa.String(64), nullable=True),
        sa.Column("owner", sa.String(256), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("federation_path", sa.String(16), nullable=False),
        sa.Column("saml_provider", sa.String(128), nullable=True),
        sa.Column("audience", sa.String(255), nullable=True),
        *_stamps(),
    )
    op.create_table(
        "roles",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(12), sa.ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("name_key", sa.String(64), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("max_session_duration", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_stamps(),
        sa.UniqueConstraint("account_id", "name_key", name="uq_roles_account_name"),
    )
    op.create_table(
        "mappings",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("group_name", sa.String(1024), nullable=False),
        sa.Column("group_key", sa.String(1024), nullable=False),
        sa.Column("role_id", BigId, sa.ForeignKey("roles.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("session_duration", sa.Integer(), nullable=True),
        sa.Column("console", sa.Boolean(), nullable=False),
        sa.Column("cli", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_stamps(),
        sa.UniqueConstraint("group_key", "role_id", name="uq_mappings_group_role"),
    )
    op.create_index("ix_mappings_group_key", "mappings", ["group_key"])
    op.create_index("ix_mappings_role_id", "mappings", ["role_id"])
    op.create_table(
        "naming_rules",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("pattern", sa.String(1024), nullable=False),
        sa.Column("session_duration", sa.Integer(), nullable=True),
        sa.Column("console", sa.Boolean(), nullable=False),
        sa.Column("cli", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_stamps(),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=True),
        sa.Column("target_id", sa.String(1100), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("source_ip", sa.String(64), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_at", "audit_events", ["at"])
    op.create_index("ix_audit_actor", "audit_events", ["actor"])
    op.create_index("ix_audit_action", "audit_events", ["action"])
    op.create_index("ix_audit_target", "audit_events", ["target_type", "target_id"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("naming_rules")
    op.drop_table("mappings")
    op.drop_table("roles")
    op.drop_table("accounts")
