"""devices: handsets with MQTT credentials, received uplink messages, dead letters

Revision ID: 0400_devices
Revises: 0001
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0400_devices'
down_revision = '0001'
branch_labels = ('devices',)
depends_on = None


def upgrade() -> None:
    op.create_table('devices',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.Integer(), nullable=True),
    sa.Column('presence', sa.String(length=8), nullable=True),
    sa.Column('presence_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("presence IS NULL OR presence IN ('online','offline')", name=op.f('ck_devices_presence')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_devices_created_by_users')),
    sa.ForeignKeyConstraint(['revoked_by'], ['users.id'], name=op.f('fk_devices_revoked_by_users')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_devices_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices'))
    )
    op.create_index('ix_devices_user_id', 'devices', ['user_id'], unique=False)
    op.create_table('device_dead_letters',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_dead_letters'))
    )
    op.create_index('ix_device_dead_letters_received_at', 'device_dead_letters', ['received_at'], unique=False)
    op.create_table('device_messages',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('msg_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('error', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.CheckConstraint("result IN ('accepted','rejected')", name=op.f('ck_device_messages_result')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_messages_device_id_devices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_messages')),
    sa.UniqueConstraint('device_id', 'msg_id', name='uq_device_messages_device_id_msg_id')
    )


def downgrade() -> None:
    op.drop_table('device_messages')
    op.drop_index('ix_device_dead_letters_received_at', table_name='device_dead_letters')
    op.drop_table('device_dead_letters')
    op.drop_index('ix_devices_user_id', table_name='devices')
    op.drop_table('devices')
