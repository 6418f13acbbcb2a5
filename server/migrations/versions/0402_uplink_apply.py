"""devices: uplink events applied after the ack (positions), applied_at; downlink resync generation

Revision ID: 0402_uplink_apply
Revises: 0401_downlink
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = '0402_uplink_apply'
down_revision = '0401_downlink'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('device_messages', sa.Column('applied_at', sa.DateTime(timezone=True),
                                               nullable=True))
    op.execute("UPDATE device_messages SET applied_at = received_at")
    op.create_index('ix_device_messages_unapplied', 'device_messages', ['id'], unique=False,
                    postgresql_where=sa.text('applied_at IS NULL'))
    op.add_column('device_downlink', sa.Column('generation', sa.Integer(),
                                               server_default=sa.text('0'), nullable=False))


def downgrade() -> None:
    op.drop_column('device_downlink', 'generation')
    op.drop_index('ix_device_messages_unapplied', table_name='device_messages',
                  postgresql_where=sa.text('applied_at IS NULL'))
    op.drop_column('device_messages', 'applied_at')
