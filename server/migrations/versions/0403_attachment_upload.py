"""devices: when a handset uploaded an attachment's file

Revision ID: 0403_attachment_upload
Revises: 0402_uplink_apply
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = '0403_attachment_upload'
down_revision = '0402_uplink_apply'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('device_attachments', sa.Column('uploaded_at', sa.DateTime(timezone=True),
                                                  nullable=True))


def downgrade() -> None:
    op.drop_column('device_attachments', 'uploaded_at')
