"""devices: flag a handset whose resync asks for downlink rows retention already pruned

Revision ID: 0405_resync_stuck
Revises: 0404_device_retention
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = '0405_resync_stuck'
down_revision = '0404_device_retention'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('devices', sa.Column('resync_stuck_at', sa.DateTime(timezone=True),
                                       nullable=True))
    op.add_column('devices', sa.Column('resync_stuck_seq', sa.BigInteger(), nullable=True))
    op.create_check_constraint(op.f('ck_devices_resync_stuck'), 'devices',
                               "(resync_stuck_at IS NULL) = (resync_stuck_seq IS NULL)")


def downgrade() -> None:
    op.drop_constraint(op.f('ck_devices_resync_stuck'), 'devices', type_='check')
    op.drop_column('devices', 'resync_stuck_seq')
    op.drop_column('devices', 'resync_stuck_at')
