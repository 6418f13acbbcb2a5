"""devices: sequenced durable downlink, acknowledged seq, attachment metadata

Revision ID: 0401_downlink
Revises: 0400_devices
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0401_downlink'
down_revision = '0400_devices'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('devices', sa.Column('downlink_seq', sa.Integer(), server_default=sa.text('0'),
                                       nullable=False))
    op.add_column('devices', sa.Column('acked_seq', sa.Integer(), server_default=sa.text('0'),
                                       nullable=False))
    op.add_column('devices', sa.Column('acked_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('device_downlink',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_device_downlink_seq')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'],
                            name=op.f('fk_device_downlink_device_id_devices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_downlink')),
    sa.UniqueConstraint('device_id', 'seq', name='uq_device_downlink_device_id_seq')
    )
    op.create_index('ix_device_downlink_unpublished', 'device_downlink', ['id'], unique=False,
                    postgresql_where=sa.text('published_at IS NULL'))
    op.create_table('device_attachments',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('msg_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.BigInteger(), nullable=True),
    sa.Column('visit_ref', sa.String(length=100), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('mime', sa.String(length=100), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('photo', 'signature')", name=op.f('ck_device_attachments_kind')),
    sa.CheckConstraint('ticket_id IS NOT NULL OR visit_ref IS NOT NULL',
                       name=op.f('ck_device_attachments_subject')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'],
                            name=op.f('fk_device_attachments_device_id_devices')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'],
                            name=op.f('fk_device_attachments_ticket_id_tickets')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                            name=op.f('fk_device_attachments_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_attachments')),
    sa.UniqueConstraint('device_id', 'msg_id', name='uq_device_attachments_device_id_msg_id')
    )
    op.create_index('ix_device_attachments_ticket_id', 'device_attachments', ['ticket_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_device_attachments_ticket_id', table_name='device_attachments')
    op.drop_table('device_attachments')
    op.drop_index('ix_device_downlink_unpublished', table_name='device_downlink',
                  postgresql_where=sa.text('published_at IS NULL'))
    op.drop_table('device_downlink')
    op.drop_column('devices', 'acked_at')
    op.drop_column('devices', 'acked_seq')
    op.drop_column('devices', 'downlink_seq')
