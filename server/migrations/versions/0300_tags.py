"""tags: inspection sites, the tag registry, tag history and scans with their verdicts

Revision ID: 0300_tags
Revises: 0001
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = '0300_tags'
down_revision = '0001'
branch_labels = ('tags',)
depends_on = None


def upgrade() -> None:
    op.create_geospatial_table('sites',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('location', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('site','asset')", name=op.f('ck_sites_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sites'))
    )
    op.create_geospatial_index('idx_sites_location', 'sites', ['location'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_table('tags',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('uid', sa.String(length=20), nullable=False),
    sa.Column('tag_type', sa.String(length=16), nullable=False),
    sa.Column('sun_enabled', sa.Boolean(), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=True),
    sa.Column('last_counter', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('site_id', sa.BigInteger(), nullable=False),
    sa.Column('enrolled_by', sa.Integer(), nullable=False),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_by', sa.Integer(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoke_reason', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("uid ~ '^([0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})$'", name=op.f('ck_tags_uid')),
    sa.CheckConstraint("tag_type IN ('type2','type4','mifare_classic','unknown')", name=op.f('ck_tags_tag_type')),
    sa.CheckConstraint("status IN ('active','revoked')", name=op.f('ck_tags_status')),
    sa.CheckConstraint('sun_enabled = (key_version IS NOT NULL)', name=op.f('ck_tags_sun_key_version')),
    sa.CheckConstraint("NOT sun_enabled OR (tag_type = 'type4' AND length(uid) = 14)", name=op.f('ck_tags_sun_tag')),
    sa.CheckConstraint('last_counter IS NULL OR (sun_enabled AND last_counter BETWEEN 0 AND 16777215)', name=op.f('ck_tags_last_counter')),
    sa.CheckConstraint("(status = 'revoked') = (revoked_at IS NOT NULL)", name=op.f('ck_tags_revoked_at')),
    sa.ForeignKeyConstraint(['enrolled_by'], ['users.id'], name=op.f('fk_tags_enrolled_by_users')),
    sa.ForeignKeyConstraint(['revoked_by'], ['users.id'], name=op.f('fk_tags_revoked_by_users')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_tags_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tags'))
    )
    op.create_index('uq_tags_active_uid', 'tags', ['uid'], unique=True, postgresql_where=sa.text("status = 'active'"))
    op.create_index('ix_tags_site_id', 'tags', ['site_id'], unique=False)
    op.create_table('tag_events',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('tag_id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('from_site_id', sa.BigInteger(), nullable=True),
    sa.Column('to_site_id', sa.BigInteger(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('enrolled','moved','revoked')", name=op.f('ck_tag_events_kind')),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_tag_events_actor_id_users')),
    sa.ForeignKeyConstraint(['from_site_id'], ['sites.id'], name=op.f('fk_tag_events_from_site_id_sites')),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_tag_events_tag_id_tags')),
    sa.ForeignKeyConstraint(['to_site_id'], ['sites.id'], name=op.f('fk_tag_events_to_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tag_events'))
    )
    op.create_index('ix_tag_events_tag_id', 'tag_events', ['tag_id', 'id'], unique=False)
    op.create_geospatial_table('tag_scans',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('scanned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('client_id', sa.Uuid(), nullable=True),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('tag_id', sa.BigInteger(), nullable=True),
    sa.Column('site_id', sa.BigInteger(), nullable=True),
    sa.Column('uid', sa.String(length=20), nullable=True),
    sa.Column('counter', sa.Integer(), nullable=True),
    sa.Column('key_version', sa.Integer(), nullable=True),
    sa.Column('position', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('raw', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.CheckConstraint("verdict IN ('verified','uid_only','unknown_tag','revoked','replayed','bad_mac','malformed')", name=op.f('ck_tag_scans_verdict')),
    sa.CheckConstraint("source IN ('http','mqtt','cli')", name=op.f('ck_tag_scans_source')),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_tag_scans_actor_id_users')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_tag_scans_site_id_sites')),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_tag_scans_tag_id_tags')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tag_scans'))
    )
    op.create_index('uq_tag_scans_client_id', 'tag_scans', ['client_id'], unique=True, postgresql_where=sa.text('client_id IS NOT NULL'))
    op.create_index('ix_tag_scans_site_id', 'tag_scans', ['site_id', 'id'], unique=False)
    op.create_index('ix_tag_scans_tag_id', 'tag_scans', ['tag_id', 'id'], unique=False)
    op.create_index('ix_tag_scans_uid', 'tag_scans', ['uid', 'id'], unique=False)
    op.create_index('ix_tag_scans_verdict', 'tag_scans', ['verdict', 'id'], unique=False)
    # Tag history and scan records are evidence: append-only, like the ticket audit trail
    # (crewline_append_only() comes with 0001).
    op.execute("CREATE TRIGGER tag_events_append_only BEFORE UPDATE OR DELETE ON tag_events "
               "FOR EACH ROW EXECUTE FUNCTION crewline_append_only()")
    op.execute("CREATE TRIGGER tag_scans_append_only BEFORE UPDATE OR DELETE ON tag_scans "
               "FOR EACH ROW EXECUTE FUNCTION crewline_append_only()")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS tag_scans_append_only ON tag_scans")
    op.execute("DROP TRIGGER IF EXISTS tag_events_append_only ON tag_events")
    op.drop_index('ix_tag_scans_verdict', table_name='tag_scans')
    op.drop_index('ix_tag_scans_uid', table_name='tag_scans')
    op.drop_index('ix_tag_scans_tag_id', table_name='tag_scans')
    op.drop_index('ix_tag_scans_site_id', table_name='tag_scans')
    op.drop_index('uq_tag_scans_client_id', table_name='tag_scans', postgresql_where=sa.text('client_id IS NOT NULL'))
    op.drop_geospatial_table('tag_scans')
    op.drop_index('ix_tag_events_tag_id', table_name='tag_events')
    op.drop_table('tag_events')
    op.drop_index('ix_tags_site_id', table_name='tags')
    op.drop_index('uq_tags_active_uid', table_name='tags', postgresql_where=sa.text("status = 'active'"))
    op.drop_table('tags')
    op.drop_geospatial_index('idx_sites_location', table_name='sites', postgresql_using='gist', column_name='location')
    op.drop_geospatial_table('sites')
