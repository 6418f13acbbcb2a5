"""Outages: declared or suspected supply interruptions, their area, audit trail, linked tickets and
the callers who asked for SMS updates (docs/outages.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import SRID, Base

OUTAGE_TYPES = ("water_outage", "low_pressure", "emergency_repair", "planned_maintenance")
OUTAGE_STATUSES = ("suspected", "confirmed", "restoring", "restored", "dismissed")
OPEN_OUTAGE_STATUSES = ("suspected", "confirmed", "restoring")
ACTIVE_OUTAGE_STATUSES = ("confirmed", "restoring")
AREA_KINDS = ("polygon", "buffer", "streets")
OUTAGE_SOURCES = ("manual", "inferred")
LINK_SOURCES = ("auto", "inferred", "manual")


# An outage's reference, "OUT-000042": the one definition, spelt in Python and in SQL.
REF_PREFIX, REF_DIGITS = "OUT-", 6


def outage_ref(outage_id: int) -> str:
    return f"{REF_PREFIX}{outage_id:0{REF_DIGITS}d}"


def outage_ref_sql(id_sql: str) -> str:
    """``outage_ref`` as a SQL expression of the id column or parameter ``id_sql`` (never cut:
    an id of more digits is written whole, like Python's format)."""
    return (f"('{REF_PREFIX}' || lpad(CAST({id_sql} AS text), "
            f"greatest({REF_DIGITS}, length(CAST({id_sql} AS text))), '0'))")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ",".join(f"'{v}'" for v in values) + ")"


class Outage(Base):
    """One outage. ``area`` is what selects customers (a MultiPolygon in SRID 4326); a buffer
    also keeps its ``center`` and ``radius_m`` so selection is exact in geodesic metres."""

    __tablename__ = "outages"
    __table_args__ = (
        CheckConstraint(f"type IN {_in(OUTAGE_TYPES)}", name="type"),
        CheckConstraint(f"status IN {_in(OUTAGE_STATUSES)}", name="status"),
        CheckConstraint(f"area_kind IN {_in(AREA_KINDS)}", name="area_kind"),
        CheckConstraint(f"source IN {_in(OUTAGE_SOURCES)}", name="source"),
        CheckConstraint("(area_kind = 'buffer') = (radius_m IS NOT NULL AND center IS NOT NULL)",
                        name="buffer_shape"),
        Index("ix_outages_open", "status", postgresql_where=text(
            f"status IN {_in(OPEN_OUTAGE_STATUSES)}")),
        # the planned-notice sweep: confirmed planned outages not yet announced
        Index("ix_outages_planned_due", "starts_at", postgresql_where=text(
            "type = 'planned_maintenance' AND status = 'confirmed' AND notice_sent_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    type: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16), default="manual")
    area_name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    area_kind: Mapped[str] = mapped_column(String(16))
    area_spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    area = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=True), nullable=False)
    center = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=True)
    radius_m: Mapped[float | None] = mapped_column(Float)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    etr: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    restored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notice_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revision: Mapped[int] = mapped_column(Integer, default=1)  # +1 on every change
    etr_revision: Mapped[int] = mapped_column(Integer, default=0)  # +1 on every ETR change
    # customers inside the area when it was last counted (declaration, each notification batch)
    affected_customers: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def ref(self) -> str:
        return outage_ref(self.id)


class OutageEvent(Base):
    """Append-only audit trail of an outage (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "outage_events"
    __table_args__ = (Index("ix_outage_events_outage_id", "outage_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    outage_id: Mapped[int] = mapped_column(ForeignKey("outages.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class OutageTicket(Base):
    """A ticket explained by an outage; a ticket belongs to at most one outage."""

    __tablename__ = "outage_tickets"
    __table_args__ = (
        PrimaryKeyConstraint("ticket_id"),
        CheckConstraint(f"source IN {_in(LINK_SOURCES)}", name="source"),
        Index("ix_outage_tickets_outage_id", "outage_id"),
    )

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    outage_id: Mapped[int] = mapped_column(ForeignKey("outages.id"))
    source: Mapped[str] = mapped_column(String(16))
    linked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutageSubscription(Base):
    """A caller who pressed 1 in the IVR: SMS updates of this outage go to this number too."""

    __tablename__ = "outage_subscriptions"
    __table_args__ = (UniqueConstraint("outage_id", "e164"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    outage_id: Mapped[int] = mapped_column(ForeignKey("outages.id"))
    e164: Mapped[str] = mapped_column(String(20))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    language: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16), default="ivr")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
