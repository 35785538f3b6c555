"""Mappings and naming rules that target an OU or an account tag: org_mappings, the placements
discovery records (org_placements, org_placement_targets), naming_rules.target.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("naming_rules", sa.Column("target", sa.String(400), nullable=True))
    op.create_table(
        "org_mappings",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("group_name", sa.String(1024), nullable=False),
        sa.Column("group_key", sa.String(1024), nullable=False),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("role_name", sa.String(64), nullable=False),
        sa.Column("role_key", sa.String(64), nullable=False),
        sa.Column("session_duration", sa.Integer(), nullable=True),
        sa.Column("console", sa.Boolean(), nullable=False),
        sa.Column("cli", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("group_key", "target", "role_key", name="uq_org_mappings_group_target_role"),
    )
    op.create_index("ix_org_mappings_group_key", "org_mappings", ["group_key"])
    op.create_table(
        "org_placements",
        sa.Column(
            "account_id", sa.String(12), sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("ou_id", sa.String(68), nullable=False),
        sa.Column("ou_path", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "org_placement_targets",
        sa.Column(
            "account_id",
            sa.String(12),
            sa.ForeignKey("org_placements.account_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("target", sa.String(400), primary_key=True),
    )
    op.create_index("ix_org_placement_targets_target", "org_placement_targets", ["target"])


def downgrade() -> None:
    op.drop_index("ix_org_placement_targets_target", table_name="org_placement_targets")
    op.drop_table("org_placement_targets")
    op.drop_table("org_placements")
    op.drop_index("ix_org_mappings_group_key", table_name="org_mappings")
    op.drop_table("org_mappings")
    op.drop_column("naming_rules", "target")
