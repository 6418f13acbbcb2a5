"""inspections: site types with versioned checklists, plans, rounds, hash-chained visit records,
attachments, chain heads and missed-checkpoint alerts

Revision ID: 0600_inspections
Revises: 0300_tags
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = '0600_inspections'
down_revision = '0300_tags'
branch_labels = ('inspections',)
depends_on = '0100_dispatch'  # plans and rounds name crews


def upgrade() -> None:
    op.create_table('inspection_site_types',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_site_types')),
    sa.UniqueConstraint('code', name=op.f('uq_inspection_site_types_code'))
    )
    op.create_table('inspection_checklist_templates',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('site_type_id', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('items', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.CheckConstraint('version >= 1', name=op.f('ck_inspection_checklist_templates_version')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_inspection_checklist_templates_created_by_users')),
    sa.ForeignKeyConstraint(['site_type_id'], ['inspection_site_types.id'], name=op.f('fk_inspection_checklist_templates_site_type_id_inspection_site_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_checklist_templates')),
    sa.UniqueConstraint('site_type_id', 'version', name=op.f('uq_inspection_checklist_templates_site_type_id'))
    )
    op.create_table('inspection_site_profiles',
    sa.Column('site_id', sa.BigInteger(), nullable=False),
    sa.Column('site_type_id', sa.BigInteger(), nullable=False),
    sa.Column('parent_site_id', sa.BigInteger(), nullable=True),
    sa.Column('tolerance_m', sa.Float(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('parent_site_id IS NULL OR parent_site_id <> site_id', name=op.f('ck_inspection_site_profiles_parent')),
    sa.CheckConstraint('tolerance_m IS NULL OR tolerance_m > 0', name=op.f('ck_inspection_site_profiles_tolerance_m')),
    sa.ForeignKeyConstraint(['parent_site_id'], ['sites.id'], name=op.f('fk_inspection_site_profiles_parent_site_id_sites')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_inspection_site_profiles_site_id_sites')),
    sa.ForeignKeyConstraint(['site_type_id'], ['inspection_site_types.id'], name=op.f('fk_inspection_site_profiles_site_type_id_inspection_site_types')),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_inspection_site_profiles'))
    )
    op.create_index('ix_inspection_site_profiles_site_type_id', 'inspection_site_profiles', ['site_type_id'], unique=False)
    op.create_table('inspection_plans',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('frequency', sa.String(length=8), nullable=False),
    sa.Column('weekday', sa.SmallInteger(), nullable=True),
    sa.Column('day_of_month', sa.SmallInteger(), nullable=True),
    sa.Column('window_start', sa.Time(), nullable=False),
    sa.Column('window_end', sa.Time(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('crew_id', sa.BigInteger(), nullable=True),
    sa.Column('technician_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.CheckConstraint("frequency IN ('daily','weekly','monthly')", name=op.f('ck_inspection_plans_frequency')),
    sa.CheckConstraint('(crew_id IS NULL) <> (technician_id IS NULL)', name=op.f('ck_inspection_plans_assignee')),
    sa.CheckConstraint('weekday IS NULL OR weekday BETWEEN 1 AND 7', name=op.f('ck_inspection_plans_weekday')),
    sa.CheckConstraint('day_of_month IS NULL OR day_of_month BETWEEN 1 AND 28', name=op.f('ck_inspection_plans_day_of_month')),
    sa.CheckConstraint("(frequency = 'weekly') = (weekday IS NOT NULL)", name=op.f('ck_inspection_plans_weekly')),
    sa.CheckConstraint("(frequency = 'monthly') = (day_of_month IS NOT NULL)", name=op.f('ck_inspection_plans_monthly')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_inspection_plans_created_by_users')),
    sa.ForeignKeyConstraint(['crew_id'], ['crews.id'], name=op.f('fk_inspection_plans_crew_id_crews')),
    sa.ForeignKeyConstraint(['technician_id'], ['users.id'], name=op.f('fk_inspection_plans_technician_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_plans'))
    )
    op.create_table('inspection_plan_sites',
    sa.Column('plan_id', sa.BigInteger(), nullable=False),
    sa.Column('site_id', sa.BigInteger(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['inspection_plans.id'], name=op.f('fk_inspection_plan_sites_plan_id_inspection_plans'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_inspection_plan_sites_site_id_sites')),
    sa.PrimaryKeyConstraint('plan_id', 'site_id', name=op.f('pk_inspection_plan_sites'))
    )
    op.create_table('inspection_rounds',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('plan_id', sa.BigInteger(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('crew_id', sa.BigInteger(), nullable=True),
    sa.Column('technician_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_to', sa.Integer(), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=12), nullable=True),
    sa.CheckConstraint('window_end > window_start', name=op.f('ck_inspection_rounds_window')),
    sa.CheckConstraint("outcome IS NULL OR outcome IN ('complete','incomplete')", name=op.f('ck_inspection_rounds_outcome')),
    sa.CheckConstraint('(closed_at IS NULL) = (outcome IS NULL)', name=op.f('ck_inspection_rounds_closed')),
    sa.ForeignKeyConstraint(['crew_id'], ['crews.id'], name=op.f('fk_inspection_rounds_crew_id_crews')),
    sa.ForeignKeyConstraint(['plan_id'], ['inspection_plans.id'], name=op.f('fk_inspection_rounds_plan_id_inspection_plans')),
    sa.ForeignKeyConstraint(['technician_id'], ['users.id'], name=op.f('fk_inspection_rounds_technician_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_rounds')),
    sa.UniqueConstraint('plan_id', 'period_start', name=op.f('uq_inspection_rounds_plan_id'))
    )
    op.create_index('ix_inspection_rounds_open_window_end', 'inspection_rounds', ['window_end'], unique=False, postgresql_where=sa.text('closed_at IS NULL'))
    op.create_index('ix_inspection_rounds_window_start', 'inspection_rounds', ['window_start'], unique=False)
    op.create_table('inspection_round_sites',
    sa.Column('round_id', sa.BigInteger(), nullable=False),
    sa.Column('site_id', sa.BigInteger(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['round_id'], ['inspection_rounds.id'], name=op.f('fk_inspection_round_sites_round_id_inspection_rounds'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_inspection_round_sites_site_id_sites')),
    sa.PrimaryKeyConstraint('round_id', 'site_id', name=op.f('pk_inspection_round_sites'))
    )
    op.create_table('inspection_attachments',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('uploaded_by', sa.Integer(), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f('ck_inspection_attachments_sha256')),
    sa.CheckConstraint("content_type IN ('image/png','image/jpeg')", name=op.f('ck_inspection_attachments_content_type')),
    sa.ForeignKeyConstraint(['uploaded_by'], ['users.id'], name=op.f('fk_inspection_attachments_uploaded_by_users')),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_inspection_attachments'))
    )
    op.create_geospatial_table('inspection_records',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('site_id', sa.BigInteger(), nullable=False),
    sa.Column('site_seq', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.BigInteger(), nullable=True),
    sa.Column('technician_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('client_id', sa.Uuid(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tag_scan_id', sa.BigInteger(), nullable=True),
    sa.Column('scan_verdict', sa.String(length=16), nullable=True),
    sa.Column('position', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('distance_m', sa.Float(), nullable=True),
    sa.Column('template_id', sa.BigInteger(), nullable=True),
    sa.Column('values', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('attachments', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('evidence', sa.String(length=8), nullable=False),
    sa.Column('flags', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('corrects_id', sa.BigInteger(), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint("evidence IN ('verified','flagged')", name=op.f('ck_inspection_records_evidence')),
    sa.CheckConstraint("source IN ('http','mqtt')", name=op.f('ck_inspection_records_source')),
    sa.CheckConstraint('site_seq >= 1', name=op.f('ck_inspection_records_site_seq')),
    sa.CheckConstraint("hash ~ '^[0-9a-f]{64}$' AND prev_hash ~ '^[0-9a-f]{64}$'", name=op.f('ck_inspection_records_hashes')),
    sa.ForeignKeyConstraint(['corrects_id'], ['inspection_records.id'], name=op.f('fk_inspection_records_corrects_id_inspection_records')),
    sa.ForeignKeyConstraint(['round_id'], ['inspection_rounds.id'], name=op.f('fk_inspection_records_round_id_inspection_rounds')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_inspection_records_site_id_sites')),
    sa.ForeignKeyConstraint(['tag_scan_id'], ['tag_scans.id'], name=op.f('fk_inspection_records_tag_scan_id_tag_scans')),
    sa.ForeignKeyConstraint(['technician_id'], ['users.id'], name=op.f('fk_inspection_records_technician_id_users')),
    sa.ForeignKeyConstraint(['template_id'], ['inspection_checklist_templates.id'], name=op.f('fk_inspection_records_template_id_inspection_checklist_templates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_records')),
    sa.UniqueConstraint('site_id', 'site_seq', name=op.f('uq_inspection_records_site_id'))
    )
    op.create_index('uq_inspection_records_client_id', 'inspection_records', ['client_id'], unique=True, postgresql_where=sa.text('client_id IS NOT NULL'))
    op.create_index('ix_inspection_records_round_id', 'inspection_records', ['round_id'], unique=False)
    op.create_index('ix_inspection_records_technician_started', 'inspection_records', ['technician_id', 'started_at'], unique=False)
    op.create_index('ix_inspection_records_tag_scan_id', 'inspection_records', ['tag_scan_id'], unique=False)
    op.create_index('ix_inspection_records_received_at', 'inspection_records', ['received_at'], unique=False)
    op.create_table('inspection_chain_heads',
    sa.Column('site_id', sa.BigInteger(), nullable=False),
    sa.Column('site_seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_inspection_chain_heads_site_id_sites')),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_inspection_chain_heads'))
    )
    op.create_table('inspection_alerts',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('round_id', sa.BigInteger(), nullable=False),
    sa.Column('site_id', sa.BigInteger(), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.CheckConstraint("kind IN ('missed_checkpoint')", name=op.f('ck_inspection_alerts_kind')),
    sa.ForeignKeyConstraint(['round_id'], ['inspection_rounds.id'], name=op.f('fk_inspection_alerts_round_id_inspection_rounds')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_inspection_alerts_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_alerts')),
    sa.UniqueConstraint('round_id', 'site_id', 'kind', name=op.f('uq_inspection_alerts_round_id'))
    )
    op.create_index('ix_inspection_alerts_raised_at', 'inspection_alerts', ['raised_at'], unique=False)
    # Visit records are evidence: append-only like the ticket audit trail (crewline_append_only()
    # comes with 0001); checklist versions never change once visits refer to them.
    op.execute("CREATE TRIGGER inspection_records_append_only BEFORE UPDATE OR DELETE ON "
               "inspection_records FOR EACH ROW EXECUTE FUNCTION crewline_append_only()")
    op.execute("CREATE TRIGGER inspection_checklist_templates_append_only BEFORE UPDATE OR DELETE "
               "ON inspection_checklist_templates FOR EACH ROW EXECUTE FUNCTION crewline_append_only()")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS inspection_checklist_templates_append_only ON inspection_checklist_templates")
    op.execute("DROP TRIGGER IF EXISTS inspection_records_append_only ON inspection_records")
    op.drop_index('ix_inspection_alerts_raised_at', table_name='inspection_alerts')
    op.drop_table('inspection_alerts')
    op.drop_table('inspection_chain_heads')
    op.drop_index('ix_inspection_records_received_at', table_name='inspection_records')
    op.drop_index('ix_inspection_records_tag_scan_id', table_name='inspection_records')
    op.drop_index('ix_inspection_records_technician_started', table_name='inspection_records')
    op.drop_index('ix_inspection_records_round_id', table_name='inspection_records')
    op.drop_index('uq_inspection_records_client_id', table_name='inspection_records', postgresql_where=sa.text('client_id IS NOT NULL'))
    op.drop_geospatial_table('inspection_records')
    op.drop_table('inspection_attachments')
    op.drop_table('inspection_round_sites')
    op.drop_index('ix_inspection_rounds_window_start', table_name='inspection_rounds')
    op.drop_index('ix_inspection_rounds_open_window_end', table_name='inspection_rounds', postgresql_where=sa.text('closed_at IS NULL'))
    op.drop_table('inspection_rounds')
    op.drop_table('inspection_plan_sites')
    op.drop_table('inspection_plans')
    op.drop_index('ix_inspection_site_profiles_site_type_id', table_name='inspection_site_profiles')
    op.drop_table('inspection_site_profiles')
    op.drop_table('inspection_checklist_templates')
    op.drop_table('inspection_site_types')
