"""inspections: which handset each round was queued for (rounds reach handsets registered later)

Revision ID: 0602_round_deliveries
Revises: 0601_scan_time_index
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = '0602_round_deliveries'
down_revision = '0601_scan_time_index'
branch_labels = None
depends_on = '0401_downlink'  # the deliveries name devices; the backfill reads device_downlink


def upgrade() -> None:
    op.create_table('inspection_round_deliveries',
    sa.Column('round_id', sa.BigInteger(), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=True),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_inspection_round_deliveries_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['round_id'], ['inspection_rounds.id'], name=op.f('fk_inspection_round_deliveries_round_id_inspection_rounds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('round_id', 'device_id', name=op.f('pk_inspection_round_deliveries'))
    )
    # rounds queued before this table existed: do not send them a second time
    op.execute("""
        INSERT INTO inspection_round_deliveries (round_id, device_id, seq, queued_at)
        SELECT r.id, d.device_id, d.seq, d.created_at FROM device_downlink d
        JOIN inspection_rounds r ON r.id = (d.payload->>'round_id')::bigint
        WHERE d.kind = 'round'
        ON CONFLICT DO NOTHING""")


def downgrade() -> None:
    op.drop_table('inspection_round_deliveries')
