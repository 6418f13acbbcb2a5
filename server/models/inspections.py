"""Inspections: site types with versioned checklists, plans, rounds, the hash-chained visit
records (append-only) and missed-checkpoint alerts. Sites and tags are the tags domain's."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from uuid import UUID

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import SRID, Base

FREQUENCIES = ("daily", "weekly", "monthly")
EVIDENCE = ("verified", "flagged")
RECORD_SOURCES = ("http", "mqtt")
ALERT_KINDS = ("missed_checkpoint",)
ROUND_OUTCOMES = ("complete", "incomplete", "withdrawn")  # withdrawn: plan deactivated first


def _in(values: tuple[str, ...]) -> str:
    return "(" + ",".join(f"'{v}'" for v in values) + ")"


class SiteType(Base):
    """A kind of inspection point (pump station, valve chamber, hydrant …) with a checklist."""

    __tablename__ = "inspection_site_types"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChecklistTemplate(Base):
    """One version of a site type's checklist. Versions are never changed: a visit keeps the
    version it was filled in against."""

    __tablename__ = "inspection_checklist_templates"
    __table_args__ = (
        UniqueConstraint("site_type_id", "version"),
        CheckConstraint("version >= 1", name="version"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    site_type_id: Mapped[int] = mapped_column(ForeignKey("inspection_site_types.id"))
    version: Mapped[int] = mapped_column(Integer)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))


class SiteProfile(Base):
    """What inspections need to know about a tags-domain site: its type, the site an asset
    sits on, and an optional GPS tolerance of its own."""

    __tablename__ = "inspection_site_profiles"
    __table_args__ = (
        CheckConstraint("parent_site_id IS NULL OR parent_site_id <> site_id", name="parent"),
        CheckConstraint("tolerance_m IS NULL OR tolerance_m > 0", name="tolerance_m"),
        Index("ix_inspection_site_profiles_site_type_id", "site_type_id"),
    )

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    site_type_id: Mapped[int] = mapped_column(ForeignKey("inspection_site_types.id"))
    parent_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    tolerance_m: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InspectionPlan(Base):
    """Which sites, how often, in which local time window, by whom (a crew or a technician)."""

    __tablename__ = "inspection_plans"
    __table_args__ = (
        CheckConstraint(f"frequency IN {_in(FREQUENCIES)}", name="frequency"),
        CheckConstraint("(crew_id IS NULL) <> (technician_id IS NULL)", name="assignee"),
        CheckConstraint("weekday IS NULL OR weekday BETWEEN 1 AND 7", name="weekday"),
        CheckConstraint("day_of_month IS NULL OR day_of_month BETWEEN 1 AND 28",
                        name="day_of_month"),
        CheckConstraint("(frequency = 'weekly') = (weekday IS NOT NULL)", name="weekly"),
        CheckConstraint("(frequency = 'monthly') = (day_of_month IS NOT NULL)", name="monthly"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    frequency: Mapped[str] = mapped_column(String(8))
    weekday: Mapped[int | None] = mapped_column(SmallInteger)  # ISO: 1 = Monday
    day_of_month: Mapped[int | None] = mapped_column(SmallInteger)
    window_start: Mapped[time] = mapped_column(Time)  # local time in ``timezone``
    window_end: Mapped[time] = mapped_column(Time)  # <= window_start: the next day
    timezone: Mapped[str] = mapped_column(String(64))
    starts_on: Mapped[date] = mapped_column(Date)
    crew_id: Mapped[int | None] = mapped_column(ForeignKey("crews.id"))
    technician_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))


class PlanSite(Base):
    __tablename__ = "inspection_plan_sites"

    plan_id: Mapped[int] = mapped_column(ForeignKey("inspection_plans.id", ondelete="CASCADE"),
                                         primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)


class InspectionRound(Base):
    """One period of a plan. (plan_id, period_start) is unique: a round exists once however many
    workers generate it."""

    __tablename__ = "inspection_rounds"
    __table_args__ = (
        UniqueConstraint("plan_id", "period_start"),
        CheckConstraint("window_end > window_start", name="window"),
        CheckConstraint(f"outcome IS NULL OR outcome IN {_in(ROUND_OUTCOMES)}", name="outcome"),
        CheckConstraint("(closed_at IS NULL) = (outcome IS NULL)", name="closed"),
        Index("ix_inspection_rounds_open_window_end", "window_end",
              postgresql_where=text("closed_at IS NULL")),
        Index("ix_inspection_rounds_window_start", "window_start"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("inspection_plans.id"))
    period_start: Mapped[date] = mapped_column(Date)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    crew_id: Mapped[int | None] = mapped_column(ForeignKey("crews.id"))
    technician_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_to: Mapped[int] = mapped_column(Integer, default=0)  # handsets queued for
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(12))


class RoundSite(Base):
    """A checkpoint of a round (the plan's sites when the round was generated)."""

    __tablename__ = "inspection_round_sites"

    round_id: Mapped[int] = mapped_column(ForeignKey("inspection_rounds.id", ondelete="CASCADE"),
                                          primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)


class RoundDelivery(Base):
    """A round queued for one handset: (round, device) is the primary key, so every handset gets
    a round's downlink once, whether the generating sweep, the catch-up for handsets registered
    later or the pairing call queued it. ``seq`` is the downlink's seq; NULL when the round was
    too large to send."""

    __tablename__ = "inspection_round_deliveries"

    round_id: Mapped[int] = mapped_column(ForeignKey("inspection_rounds.id", ondelete="CASCADE"),
                                          primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64),
                                           ForeignKey("devices.id", ondelete="CASCADE"),
                                           primary_key=True)
    seq: Mapped[int | None] = mapped_column(Integer)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InspectionAttachment(Base):
    """A photo or signature, content-addressed by its SHA-256 (which the visit record, and so the
    hash chain, carries)."""

    __tablename__ = "inspection_attachments"
    __table_args__ = (
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256"),
        CheckConstraint("content_type IN ('image/png','image/jpeg')", name="content_type"),
    )

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InspectionRecord(Base):
    """A visit: append-only (trigger) and hash-chained per site. ``hash`` is SHA-256 over the
    canonical JSON of the record including ``prev_hash``, the hash of the site's previous record
    (``site_seq`` - 1). Corrections are new records with ``corrects_id``."""

    __tablename__ = "inspection_records"
    __table_args__ = (
        UniqueConstraint("site_id", "site_seq"),
        CheckConstraint(f"evidence IN {_in(EVIDENCE)}", name="evidence"),
        CheckConstraint(f"source IN {_in(RECORD_SOURCES)}", name="source"),
        CheckConstraint("site_seq >= 1", name="site_seq"),
        CheckConstraint("hash ~ '^[0-9a-f]{64}$' AND prev_hash ~ '^[0-9a-f]{64}$'", name="hashes"),
        Index("uq_inspection_records_client_id", "client_id", unique=True,
              postgresql_where=text("client_id IS NOT NULL")),
        Index("ix_inspection_records_round_id", "round_id"),
        Index("ix_inspection_records_technician_started", "technician_id", "started_at"),
        Index("ix_inspection_records_tag_scan_id", "tag_scan_id"),
        Index("ix_inspection_records_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    site_seq: Mapped[int] = mapped_column(Integer)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("inspection_rounds.id"))
    technician_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(String(8))
    client_id: Mapped[UUID | None] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tag_scan_id: Mapped[int | None] = mapped_column(ForeignKey("tag_scans.id"))
    scan_verdict: Mapped[str | None] = mapped_column(String(16))
    position = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=True)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("inspection_checklist_templates.id"))
    values: Mapped[dict[str, Any]] = mapped_column(JSONB)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    evidence: Mapped[str] = mapped_column(String(8))
    flags: Mapped[list[str]] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(Text)
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("inspection_records.id"))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ChainHead(Base):
    """The newest link of each site's chain: the row locked to append (one writer per site at a
    time) and the anchor that makes deleting the newest records detectable."""

    __tablename__ = "inspection_chain_heads"

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    site_seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class InspectionAlert(Base):
    """A checkpoint whose round window closed without a visit: raised once (unique key)."""

    __tablename__ = "inspection_alerts"
    __table_args__ = (
        UniqueConstraint("round_id", "site_id", "kind"),
        CheckConstraint(f"kind IN {_in(ALERT_KINDS)}", name="kind"),
        Index("ix_inspection_alerts_raised_at", "raised_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    round_id: Mapped[int] = mapped_column(ForeignKey("inspection_rounds.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)
