"""dispatch: crews, live positions and their history, the road graph, assignments

Revision ID: 0100_dispatch
Revises: 0001
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
from geoalchemy2 import Geometry

revision = '0100_dispatch'
down_revision = '0001'
branch_labels = ('dispatch',)
depends_on = None


def upgrade() -> None:
    op.create_geospatial_table('crews',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('vehicle', sa.String(length=100), nullable=True),
    sa.Column('depot', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('skills', sa.ARRAY(sa.String(length=24)), nullable=False),
    sa.Column('shift', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('position', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('position_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('heading_deg', sa.Float(), nullable=True),
    sa.Column('speed_mps', sa.Float(), nullable=True),
    sa.Column('snap_edge_id', sa.BigInteger(), nullable=True),
    sa.Column('snap_fraction', sa.Float(), nullable=True),
    sa.Column('snap_distance_m', sa.Float(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("shift IN ('on_shift','break','off')", name=op.f('ck_crews_shift')),
    sa.CheckConstraint("skills <@ ARRAY['water_main', 'meter', 'valve', 'electrical', 'telecom_line']::varchar[]", name=op.f('ck_crews_skills')),
    sa.CheckConstraint("status IN ('available','assigned','en_route','on_site','offline')", name=op.f('ck_crews_status')),
    sa.CheckConstraint('capacity BETWEEN 1 AND 20', name=op.f('ck_crews_capacity')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crews')),
    sa.UniqueConstraint('name', name=op.f('uq_crews_name'))
    )
    op.create_geospatial_index('idx_crews_position', 'crews', ['position'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_crews_skills', 'crews', ['skills'], unique=False, postgresql_using='gin')
    op.create_index('ix_crews_position_geog', 'crews', [sa.text('(geography(position))')], unique=False, postgresql_using='gist')
    op.create_geospatial_table('road_edges',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.BigInteger(), nullable=False),
    sa.Column('target', sa.BigInteger(), nullable=False),
    sa.Column('cost', sa.Float(), nullable=False),
    sa.Column('reverse_cost', sa.Float(), nullable=False),
    sa.Column('length_m', sa.Float(), nullable=False),
    sa.Column('speed_kmh', sa.Float(), nullable=False),
    sa.Column('osm_id', sa.BigInteger(), nullable=False),
    sa.Column('highway', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('oneway', sa.SmallInteger(), nullable=False),
    sa.Column('geom', Geometry(geometry_type='LINESTRING', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint('cost >= 0 OR reverse_cost >= 0', name=op.f('ck_road_edges_passable')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_road_edges'))
    )
    op.create_geospatial_index('idx_road_edges_geom', 'road_edges', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_road_edges_source', 'road_edges', ['source'], unique=False)
    op.create_index('ix_road_edges_target', 'road_edges', ['target'], unique=False)
    op.create_index('ix_road_edges_geog', 'road_edges', [sa.text('(geography(geom))')], unique=False, postgresql_using='gist')
    op.create_geospatial_table('road_vertices',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('osm_node_id', sa.BigInteger(), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_road_vertices')),
    sa.UniqueConstraint('osm_node_id', name=op.f('uq_road_vertices_osm_node_id'))
    )
    op.create_geospatial_index('idx_road_vertices_geom', 'road_vertices', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_table('crew_members',
    sa.Column('crew_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['crew_id'], ['crews.id'], name=op.f('fk_crew_members_crew_id_crews'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_crew_members_user_id_users')),
    sa.PrimaryKeyConstraint('crew_id', 'user_id', name=op.f('pk_crew_members')),
    sa.UniqueConstraint('user_id', name=op.f('uq_crew_members_user_id'))
    )
    op.create_geospatial_table('crew_positions',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('crew_id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('heading_deg', sa.Float(), nullable=True),
    sa.Column('speed_mps', sa.Float(), nullable=True),
    sa.Column('implausible', sa.Boolean(), nullable=False),
    sa.Column('reported_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['crew_id'], ['crews.id'], name=op.f('fk_crew_positions_crew_id_crews'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reported_by'], ['users.id'], name=op.f('fk_crew_positions_reported_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crew_positions'))
    )
    op.create_index('ix_crew_positions_at_brin', 'crew_positions', ['at'], unique=False, postgresql_using='brin')
    op.create_index('ix_crew_positions_crew_at', 'crew_positions', ['crew_id', 'at'], unique=False)
    op.create_table('dispatch_assignments',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('ticket_id', sa.BigInteger(), nullable=False),
    sa.Column('crew_id', sa.BigInteger(), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=True),
    sa.Column('skill', sa.String(length=24), nullable=True),
    sa.Column('eta_s', sa.Float(), nullable=True),
    sa.Column('eta_source', sa.String(length=16), nullable=True),
    sa.Column('road_distance_m', sa.Float(), nullable=True),
    sa.Column('assigned_by', sa.Integer(), nullable=True),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('current_eta_s', sa.Float(), nullable=True),
    sa.Column('eta_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('arrived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.Integer(), nullable=True),
    sa.Column('end_reason', sa.String(length=16), nullable=True),
    sa.CheckConstraint("mode IN ('manual','auto')", name=op.f('ck_dispatch_assignments_mode')),
    sa.ForeignKeyConstraint(['assigned_by'], ['users.id'], name=op.f('fk_dispatch_assignments_assigned_by_users')),
    sa.ForeignKeyConstraint(['crew_id'], ['crews.id'], name=op.f('fk_dispatch_assignments_crew_id_crews')),
    sa.ForeignKeyConstraint(['ended_by'], ['users.id'], name=op.f('fk_dispatch_assignments_ended_by_users')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_dispatch_assignments_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_assignments'))
    )
    op.create_index('ix_dispatch_assignments_active_crew', 'dispatch_assignments', ['crew_id'], unique=False, postgresql_where=sa.text('ended_at IS NULL'))
    op.create_index('ix_dispatch_assignments_ticket', 'dispatch_assignments', ['ticket_id', 'id'], unique=False)
    op.create_index('uq_dispatch_assignments_active_ticket', 'dispatch_assignments', ['ticket_id'], unique=True, postgresql_where=sa.text('ended_at IS NULL'))


def downgrade() -> None:
    op.drop_index('uq_dispatch_assignments_active_ticket', table_name='dispatch_assignments', postgresql_where=sa.text('ended_at IS NULL'))
    op.drop_index('ix_dispatch_assignments_ticket', table_name='dispatch_assignments')
    op.drop_index('ix_dispatch_assignments_active_crew', table_name='dispatch_assignments', postgresql_where=sa.text('ended_at IS NULL'))
    op.drop_table('dispatch_assignments')
    op.drop_index('ix_crew_positions_crew_at', table_name='crew_positions')
    op.drop_index('ix_crew_positions_at_brin', table_name='crew_positions', postgresql_using='brin')
    op.drop_geospatial_table('crew_positions')
    op.drop_table('crew_members')
    op.drop_geospatial_index('idx_road_vertices_geom', table_name='road_vertices', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('road_vertices')
    op.drop_index('ix_road_edges_geog', table_name='road_edges', postgresql_using='gist')
    op.drop_index('ix_road_edges_target', table_name='road_edges')
    op.drop_index('ix_road_edges_source', table_name='road_edges')
    op.drop_geospatial_index('idx_road_edges_geom', table_name='road_edges', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('road_edges')
    op.drop_index('ix_crews_position_geog', table_name='crews', postgresql_using='gist')
    op.drop_index('ix_crews_skills', table_name='crews', postgresql_using='gin')
    op.drop_geospatial_index('idx_crews_position', table_name='crews', postgresql_using='gist', column_name='position')
    op.drop_geospatial_table('crews')
