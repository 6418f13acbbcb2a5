"""Crews: who goes out, with which skills, on which shift, and where they are now (and were)."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import SRID, Base, Timestamped

SKILLS = ("water_main", "meter", "valve", "electrical", "telecom_line")
SHIFTS = ("on_shift", "break", "off")
CREW_STATUSES = ("available", "assigned", "en_route", "on_site", "offline")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ",".join(f"'{v}'" for v in values) + ")"


class Crew(Timestamped, Base):
    """A crew and its live position (the newest plausible fix; history in crew_positions)."""

    __tablename__ = "crews"
    __table_args__ = (
        CheckConstraint(f"shift IN {_in(SHIFTS)}", name="shift"),
        CheckConstraint(f"status IN {_in(CREW_STATUSES)}", name="status"),
        CheckConstraint("capacity BETWEEN 1 AND 20", name="capacity"),
        CheckConstraint(f"skills <@ ARRAY{list(SKILLS)!r}::varchar[]", name="skills"),
        Index("ix_crews_skills", "skills", postgresql_using="gin"),
        # KNN in metres: at 60° N a degree of longitude is half a degree of latitude, so
        # nearest-first must be ordered on the geography type, not on raw degrees
        Index("ix_crews_position_geog", text("(geography(position))"), postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    vehicle: Mapped[str | None] = mapped_column(String(100))
    depot = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=True)
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(24)), default=list)
    shift: Mapped[str] = mapped_column(String(16), default="off")
    status: Mapped[str] = mapped_column(String(16), default="available")
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # live position: KNN candidates come from the GiST index on this column
    position = mapped_column(Geometry("POINT", srid=SRID, spatial_index=True), nullable=True)
    position_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    speed_mps: Mapped[float | None] = mapped_column(Float)
    # where the live position joins the road graph, kept current by position reports and road
    # imports so a suggestion snaps only the ticket (no FK: the graph is replaced wholesale)
    snap_edge_id: Mapped[int | None] = mapped_column(BigInteger)
    snap_fraction: Mapped[float | None] = mapped_column(Float)
    snap_distance_m: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=text("now()"))


class CrewMember(Base):
    """A technician belongs to at most one crew."""

    __tablename__ = "crew_members"

    crew_id: Mapped[int] = mapped_column(ForeignKey("crews.id", ondelete="CASCADE"),
                                         primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, unique=True)


class CrewPosition(Base):
    """Every fix received, plausible or not (``implausible`` flags a jump, nothing is dropped).

    Append-mostly and time-ordered, so a BRIN index on ``at`` stays tiny however long the table
    grows; per-crew track reads use (crew_id, at). Partitioning by month is the next step when
    retention needs dropping old months (see docs/dispatch.md).
    """

    __tablename__ = "crew_positions"
    __table_args__ = (
        Index("ix_crew_positions_at_brin", "at", postgresql_using="brin"),
        Index("ix_crew_positions_crew_at", "crew_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    crew_id: Mapped[int] = mapped_column(ForeignKey("crews.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    speed_mps: Mapped[float | None] = mapped_column(Float)
    implausible: Mapped[bool] = mapped_column(Boolean, default=False)
    reported_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
