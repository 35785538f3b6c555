"""Encrypted SAML assertions per account: the provider's encryption mode, its SAMLProviderUUID
(the last segment of its ACS URL) and the certificate assertions are encrypted to.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("saml_encryption_mode", sa.String(16), nullable=True))
        batch.add_column(sa.Column("saml_provider_uuid", sa.String(64), nullable=True))
        batch.add_column(sa.Column("saml_encryption_cert", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("saml_encryption_cert")
        batch.drop_column("saml_provider_uuid")
        batch.drop_column("saml_encryption_mode")
