"""service points findable by address (case-insensitive), for tickets placed by street address

Revision ID: 0002_address
Revises: 0001
Create Date: 2026-11-27
"""
from alembic import op

revision = "0002_address"
down_revision = "0001"
branch_labels = ("customers",)
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_service_points_address_lower ON service_points (lower(address))")


def downgrade() -> None:
    op.execute("DROP INDEX ix_service_points_address_lower")
