"""Dispatch: the road graph (pgRouting) and the assignment of crews to tickets."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import SRID, Base

ASSIGNMENT_MODES = ("manual", "auto")


class RoadVertex(Base):
    """A graph vertex: an OSM node where ways meet or end."""

    __tablename__ = "road_vertices"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    osm_node_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=True), nullable=False)


class RoadEdge(Base):
    """A pgRouting edge between two vertices; costs in seconds, -1 where one-way forbids."""

    __tablename__ = "road_edges"
    __table_args__ = (
        Index("ix_road_edges_source", "source"),
        Index("ix_road_edges_target", "target"),
        CheckConstraint("cost >= 0 OR reverse_cost >= 0", name="passable"),
        # snapping is nearest-in-metres (see crews.ix_crews_position_geog)
        Index("ix_road_edges_geog", text("(geography(geom))"), postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[int] = mapped_column(BigInteger)
    target: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[float] = mapped_column(Float)
    reverse_cost: Mapped[float] = mapped_column(Float)
    length_m: Mapped[float] = mapped_column(Float)
    speed_kmh: Mapped[float] = mapped_column(Float)
    osm_id: Mapped[int] = mapped_column(BigInteger)
    highway: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    oneway: Mapped[int] = mapped_column(SmallInteger)
    geom = mapped_column(Geometry("LINESTRING", srid=SRID, spatial_index=True), nullable=False)


class Assignment(Base):
    """A crew assigned to a ticket: who decided, how, which suggestion rank, ETA at that moment.

    At most one active (ended_at IS NULL) assignment per ticket, enforced by a unique index as a
    last line behind the row locks.
    """

    __tablename__ = "dispatch_assignments"
    __table_args__ = (
        CheckConstraint("mode IN ('manual','auto')", name="mode"),
        Index("uq_dispatch_assignments_active_ticket", "ticket_id", unique=True,
              postgresql_where=text("ended_at IS NULL")),
        Index("ix_dispatch_assignments_active_crew", "crew_id",
              postgresql_where=text("ended_at IS NULL")),
        Index("ix_dispatch_assignments_ticket", "ticket_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    crew_id: Mapped[int] = mapped_column(ForeignKey("crews.id"))
    mode: Mapped[str] = mapped_column(String(8))
    rank: Mapped[int | None] = mapped_column(Integer)
    skill: Mapped[str | None] = mapped_column(String(24))
    eta_s: Mapped[float | None] = mapped_column(Float)
    eta_source: Mapped[str | None] = mapped_column(String(16))
    road_distance_m: Mapped[float | None] = mapped_column(Float)
    assigned_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    current_eta_s: Mapped[float | None] = mapped_column(Float)
    eta_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    arrived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    end_reason: Mapped[str | None] = mapped_column(String(16))
