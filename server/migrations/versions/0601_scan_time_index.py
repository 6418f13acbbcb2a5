"""inspections: index tag scans by the time they happened (scan trails and exception reports)

Revision ID: 0601_scan_time_index
Revises: 0600_inspections
Create Date: 2026-11-27
"""
from alembic import op

revision = '0601_scan_time_index'
down_revision = '0600_inspections'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_tag_scans_at ON tag_scans ((coalesce(scanned_at, received_at)))")


def downgrade() -> None:
    op.execute("DROP INDEX ix_tag_scans_at")
