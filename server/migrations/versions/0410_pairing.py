"""devices: one-time pairing codes for handsets and the wrong-code record for the lockout

Revision ID: 0410_pairing
Revises: 0400_devices
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = '0410_pairing'
down_revision = '0400_devices'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('device_pairing_codes',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('device_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_device_pairing_codes_created_by_users')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_pairing_codes_device_id_devices')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_device_pairing_codes_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_pairing_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_device_pairing_codes_code_hash'))
    )
    op.create_index('ix_device_pairing_codes_user_id', 'device_pairing_codes', ['user_id'], unique=False)
    op.create_table('device_pairing_failures',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_pairing_failures'))
    )
    op.create_index('ix_device_pairing_failures_client_at', 'device_pairing_failures', ['client', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_device_pairing_failures_client_at', table_name='device_pairing_failures')
    op.drop_table('device_pairing_failures')
    op.drop_index('ix_device_pairing_codes_user_id', table_name='device_pairing_codes')
    op.drop_table('device_pairing_codes')
