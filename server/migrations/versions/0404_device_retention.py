"""devices: the newest uplink seen per device, kept by the retention task (server/devices/retention.py)

Revision ID: 0404_device_retention
Revises: 0403_attachment_upload
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa

revision = '0404_device_retention'
down_revision = '0403_attachment_upload'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('device_uplink_seen',
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('last_message_id', sa.BigInteger(), nullable=False),
    sa.Column('last_received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ondelete='CASCADE',
                            name=op.f('fk_device_uplink_seen_device_id_devices')),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_device_uplink_seen'))
    )


def downgrade() -> None:
    op.drop_table('device_uplink_seen')
