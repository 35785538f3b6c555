"""Access reviews: saved access-report snapshots (rows, CSV and membership, zlib) and their
attestations.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "review_snapshots",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("mapping_version", sa.BigInteger(), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("people_count", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("csv_size", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.LargeBinary(), nullable=False),
        sa.Column("csv", sa.LargeBinary(), nullable=False),
        sa.Column("people", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "review_attestations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "snapshot_id", BigId, sa.ForeignKey("review_snapshots.id", ondelete="RESTRICT"), nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
    )
    op.create_index("ix_review_attestations_snapshot", "review_attestations", ["snapshot_id"])


def downgrade() -> None:
    op.drop_index("ix_review_attestations_snapshot", table_name="review_attestations")
    op.drop_table("review_attestations")
    op.drop_table("review_snapshots")
