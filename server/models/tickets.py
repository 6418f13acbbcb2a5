from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import SRID, Base, Timestamped

OPEN_STATUSES = ("new", "assigned", "accepted", "en_route", "on_site")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ",".join(f"'{v}'" for v in values) + ")"


CATEGORIES = ("repair", "consultation", "complaint", "help_request", "report", "query", "outage_report")
PRIORITIES = ("emergency", "high", "normal", "low")
CHANNELS = ("phone", "sms", "web", "walk_in")
STATUSES = ("new", "assigned", "accepted", "en_route", "on_site", "resolved", "closed", "cancelled")
CALLBACK_OUTCOMES = ("satisfied", "dissatisfied", "unreachable")


class Ticket(Timestamped, Base):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(f"category IN {_in(CATEGORIES)}", name="category"),
        CheckConstraint(f"priority IN {_in(PRIORITIES)}", name="priority"),
        CheckConstraint(f"channel IN {_in(CHANNELS)}", name="channel"),
        CheckConstraint(f"status IN {_in(STATUSES)}", name="status"),
        CheckConstraint(
            f"callback_outcome IS NULL OR callback_outcome IN {_in(CALLBACK_OUTCOMES)}",
            name="callback_outcome"),
        Index("ix_tickets_customer_open", "customer_id", postgresql_where=text(
            f"status IN {_in(OPEN_STATUSES)}")),
        Index("ix_tickets_status_created", "status", "created_at"),
        # lists, newest first: ids come in blocks per process (server.tickets.ids), not in order
        Index("ix_tickets_created", "created_at", "id"),
        # duplicate search: open tickets near a point, in metres on the geography type
        Index("ix_tickets_open_location_geog", text("(location::geography)"),
              postgresql_using="gist",
              postgresql_where=text(f"status IN {_in(OPEN_STATUSES)}")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    category: Mapped[str] = mapped_column(String(24))
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    channel: Mapped[str] = mapped_column(String(16), default="phone")
    status: Mapped[str] = mapped_column(String(16), default="new")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    service_point_id: Mapped[int | None] = mapped_column(ForeignKey("service_points.id"))
    location = mapped_column(Geometry("POINT", srid=SRID, spatial_index=True), nullable=True)
    address: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text)
    reporter_name: Mapped[str | None] = mapped_column(String(200))
    reporter_phone: Mapped[str | None] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(8), default="zh-CN")
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    first_contact_resolution: Mapped[bool] = mapped_column(default=False)
    resolution_code: Mapped[str | None] = mapped_column(String(64))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    close_reason: Mapped[str | None] = mapped_column(Text)
    callback_outcome: Mapped[str | None] = mapped_column(String(16))
    callback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    sla_level: Mapped[int] = mapped_column(Integer, default=0)  # 0 ok, 1 warning, 2 escalated

    @property
    def number(self) -> str:
        return f"CL-{self.id:07d}"


class TicketEvent(Base):
    """Append-only audit trail (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_id", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class TicketLink(Base):
    __tablename__ = "ticket_links"
    __table_args__ = (
        UniqueConstraint("ticket_id", "linked_ticket_id"),
        CheckConstraint("ticket_id <> linked_ticket_id", name="not_self"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    linked_ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(16), default="duplicate_of")
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SlaPolicy(Base):
    __tablename__ = "sla_policies"
    __table_args__ = (UniqueConstraint("category", "priority"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(24))
    priority: Mapped[str] = mapped_column(String(16))
    assign_minutes: Mapped[int | None]
    arrive_minutes: Mapped[int | None]
    resolve_minutes: Mapped[int | None]


class SlaClock(Base):
    """One clock of one ticket in one cycle (a reopen starts a new cycle)."""

    __tablename__ = "ticket_sla_clocks"
    __table_args__ = (
        UniqueConstraint("ticket_id", "clock", "cycle"),
        CheckConstraint("clock IN ('assign','arrive','resolve')", name="clock"),
        Index("ix_sla_clocks_pending_warn", "warn_at",
              postgresql_where=text("stopped_at IS NULL AND warned_at IS NULL")),
        Index("ix_sla_clocks_pending_due", "due_at",
              postgresql_where=text("stopped_at IS NULL AND escalated_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    clock: Mapped[str] = mapped_column(String(8))
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    warn_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
