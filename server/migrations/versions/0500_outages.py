"""outages: areas, audit trail, linked tickets, IVR subscriptions

Revision ID: 0500_outages
Revises: 0201_staff_phone (the SMS outbox, which outages write to)
Depends on: 0100_dispatch (road_edges, for areas drawn along streets)
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0500_outages"
down_revision = "0201_staff_phone"
branch_labels = ("outages",)
depends_on = ("0100_dispatch",)


def upgrade() -> None:
    op.create_geospatial_table(
        "outages",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("area_name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("area_kind", sa.String(length=16), nullable=False),
        sa.Column("area_spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("area", Geometry(geometry_type="MULTIPOLYGON", srid=4326, dimension=2,
                                   spatial_index=False, from_text="ST_GeomFromEWKT",
                                   name="geometry", nullable=False), nullable=False),
        sa.Column("center", Geometry(geometry_type="POINT", srid=4326, dimension=2,
                                     spatial_index=False, from_text="ST_GeomFromEWKT",
                                     name="geometry"), nullable=True),
        sa.Column("radius_m", sa.Float(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("etr", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notice_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("etr_revision", sa.Integer(), nullable=False),
        sa.Column("affected_customers", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("type IN ('water_outage','low_pressure','emergency_repair',"
                           "'planned_maintenance')", name=op.f("ck_outages_type")),
        sa.CheckConstraint("status IN ('suspected','confirmed','restoring','restored',"
                           "'dismissed')", name=op.f("ck_outages_status")),
        sa.CheckConstraint("area_kind IN ('polygon','buffer','streets')",
                           name=op.f("ck_outages_area_kind")),
        sa.CheckConstraint("source IN ('manual','inferred')", name=op.f("ck_outages_source")),
        sa.CheckConstraint("(area_kind = 'buffer') = (radius_m IS NOT NULL AND center IS NOT NULL)",
                           name=op.f("ck_outages_buffer_shape")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"],
                                name=op.f("fk_outages_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outages")),
    )
    op.create_geospatial_index("idx_outages_area", "outages", ["area"], unique=False,
                               postgresql_using="gist", postgresql_ops={})
    op.create_index("ix_outages_open", "outages", ["status"], unique=False,
                    postgresql_where=sa.text(
                        "status IN ('suspected','confirmed','restoring')"))
    op.create_index("ix_outages_planned_due", "outages", ["starts_at"], unique=False,
                    postgresql_where=sa.text(
                        "type = 'planned_maintenance' AND status = 'confirmed' "
                        "AND notice_sent_at IS NULL"))
    op.create_table(
        "outage_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("outage_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"],
                                name=op.f("fk_outage_events_actor_id_users")),
        sa.ForeignKeyConstraint(["outage_id"], ["outages.id"],
                                name=op.f("fk_outage_events_outage_id_outages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outage_events")),
    )
    op.create_index("ix_outage_events_outage_id", "outage_events", ["outage_id", "id"],
                    unique=False)
    # history cannot be rewritten (the function comes with 0001)
    op.execute("CREATE TRIGGER outage_events_append_only BEFORE UPDATE OR DELETE ON outage_events "
               "FOR EACH ROW EXECUTE FUNCTION crewline_append_only()")
    op.create_table(
        "outage_tickets",
        sa.Column("ticket_id", sa.BigInteger(), nullable=False),
        sa.Column("outage_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("linked_by", sa.Integer(), nullable=True),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('auto','inferred','manual')",
                           name=op.f("ck_outage_tickets_source")),
        sa.ForeignKeyConstraint(["linked_by"], ["users.id"],
                                name=op.f("fk_outage_tickets_linked_by_users")),
        sa.ForeignKeyConstraint(["outage_id"], ["outages.id"],
                                name=op.f("fk_outage_tickets_outage_id_outages")),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name=op.f("fk_outage_tickets_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_outage_tickets")),
    )
    op.create_index("ix_outage_tickets_outage_id", "outage_tickets", ["outage_id"], unique=False)
    op.create_table(
        "outage_subscriptions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("outage_id", sa.BigInteger(), nullable=False),
        sa.Column("e164", sa.String(length=20), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_outage_subscriptions_customer_id_customers")),
        sa.ForeignKeyConstraint(["outage_id"], ["outages.id"],
                                name=op.f("fk_outage_subscriptions_outage_id_outages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outage_subscriptions")),
        sa.UniqueConstraint("outage_id", "e164", name=op.f("uq_outage_subscriptions_outage_id")),
    )


def downgrade() -> None:
    op.drop_table("outage_subscriptions")
    op.drop_index("ix_outage_tickets_outage_id", table_name="outage_tickets")
    op.drop_table("outage_tickets")
    op.execute("DROP TRIGGER IF EXISTS outage_events_append_only ON outage_events")
    op.drop_index("ix_outage_events_outage_id", table_name="outage_events")
    op.drop_table("outage_events")
    op.drop_index("ix_outages_planned_due", table_name="outages")
    op.drop_index("ix_outages_open", table_name="outages")
    op.drop_geospatial_index("idx_outages_area", table_name="outages", postgresql_using="gist",
                             column_name="area")
    op.drop_geospatial_table("outages")
