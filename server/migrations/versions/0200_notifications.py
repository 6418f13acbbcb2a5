"""notifications: SMS outbox, opt-outs, inbound replies, edited templates

Revision ID: 0200_notifications
Revises: 0001
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = '0200_notifications'
down_revision = '0001'
branch_labels = ('notifications',)
depends_on = None


def upgrade() -> None:
    op.create_table('sms_messages',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('ticket_id', sa.BigInteger(), nullable=True),
    sa.Column('customer_id', sa.BigInteger(), nullable=True),
    sa.Column('outage_ref', sa.String(length=64), nullable=True),
    sa.Column('to_e164', sa.String(length=20), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('template', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('encoding', sa.String(length=8), nullable=False),
    sa.Column('segments', sa.SmallInteger(), nullable=False),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=160), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=True),
    sa.Column('provider_message_id', sa.String(length=64), nullable=True),
    sa.Column('provider_status', sa.String(length=24), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('attempt_token', sa.Uuid(), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('error_code', sa.String(length=48), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending','sending','sent','delivered','undelivered','failed','suppressed')", name=op.f('ck_sms_messages_status')),
    sa.CheckConstraint("language IN ('zh-CN','en')", name=op.f('ck_sms_messages_language')),
    sa.CheckConstraint("encoding IN ('GSM-7','UCS-2')", name=op.f('ck_sms_messages_encoding')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_sms_messages_customer_id_customers')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_sms_messages_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_messages')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_sms_messages_dedupe_key')),
    sa.UniqueConstraint('provider_message_id', name=op.f('uq_sms_messages_provider_message_id'))
    )
    op.create_index('ix_sms_messages_due', 'sms_messages', ['next_attempt_at', 'id'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_sms_messages_claimed', 'sms_messages', ['claimed_at'], unique=False, postgresql_where=sa.text("status = 'sending'"))
    op.create_index('ix_sms_messages_ticket_id', 'sms_messages', ['ticket_id'], unique=False)
    op.create_index('ix_sms_messages_to_e164', 'sms_messages', ['to_e164', 'id'], unique=False)
    op.create_table('sms_opt_outs',
    sa.Column('e164', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('keyword', sa.String(length=32), nullable=True),
    sa.Column('opted_out_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('e164', name=op.f('pk_sms_opt_outs'))
    )
    op.create_table('sms_inbound',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('provider_message_id', sa.String(length=64), nullable=False),
    sa.Column('from_e164', sa.String(length=20), nullable=False),
    sa.Column('to_number', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('intent', sa.String(length=24), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('ticket_id', sa.BigInteger(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_sms_inbound_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_inbound')),
    sa.UniqueConstraint('provider_message_id', name=op.f('uq_sms_inbound_provider_message_id'))
    )
    op.create_index('ix_sms_inbound_from_e164', 'sms_inbound', ['from_e164', 'id'], unique=False)
    op.create_table('sms_templates',
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('encoding', sa.String(length=8), nullable=False),
    sa.Column('segments', sa.SmallInteger(), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("language IN ('zh-CN','en')", name=op.f('ck_sms_templates_language')),
    sa.ForeignKeyConstraint(['updated_by'], ['users.id'], name=op.f('fk_sms_templates_updated_by_users')),
    sa.PrimaryKeyConstraint('key', 'language', name=op.f('pk_sms_templates'))
    )


def downgrade() -> None:
    op.drop_table('sms_templates')
    op.drop_index('ix_sms_inbound_from_e164', table_name='sms_inbound')
    op.drop_table('sms_inbound')
    op.drop_table('sms_opt_outs')
    op.drop_index('ix_sms_messages_to_e164', table_name='sms_messages')
    op.drop_index('ix_sms_messages_ticket_id', table_name='sms_messages')
    op.drop_index('ix_sms_messages_claimed', table_name='sms_messages')
    op.drop_index('ix_sms_messages_due', table_name='sms_messages')
    op.drop_table('sms_messages')
