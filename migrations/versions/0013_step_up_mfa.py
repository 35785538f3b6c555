"""Step-up MFA: ``require_mfa``/``mfa_max_age`` on mappings, org mappings and naming rules, and
the TOTP factors with their recovery codes (``broker.mfa``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TABLES = ("mappings", "org_mappings", "naming_rules")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("require_mfa", sa.Boolean(), nullable=False, server_default=sa.false()))
            batch.add_column(sa.Column("mfa_max_age", sa.Integer(), nullable=True))
    op.create_table(
        "mfa_totp",
        sa.Column("person_id", sa.String(256), primary_key=True),
        sa.Column("username", sa.String(256), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.String(256), nullable=False),
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("person_id", "code_sha256", name="uq_mfa_recovery_codes_person_code"),
    )
    op.create_index("ix_mfa_recovery_codes_person_id", "mfa_recovery_codes", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_mfa_recovery_codes_person_id", table_name="mfa_recovery_codes")
    op.drop_table("mfa_recovery_codes")
    op.drop_table("mfa_totp")
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("mfa_max_age")
            batch.drop_column("require_mfa")
