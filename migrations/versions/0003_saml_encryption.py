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


COLUMNS = (
    ("saml_encryption_mode", sa.String(16)),
    ("saml_provider_uuid", sa.String(64)),
    ("saml_encryption_cert", sa.Text()),
)


def upgrade() -> None:
    # plain ADD/DROP COLUMN (SQLite 3.35+ has both): a batch rebuild of accounts would drop the
    # table the roles' foreign keys point to
    for name, type_ in COLUMNS:
        op.add_column("accounts", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("accounts", name)
