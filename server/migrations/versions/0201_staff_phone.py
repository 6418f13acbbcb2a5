"""staff phone numbers, for the "new job for your crew" SMS

Revision ID: 0201_staff_phone
Revises: 0200_notifications
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0201_staff_phone"
down_revision = "0200_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("phone", sa.String(length=20), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "phone")
