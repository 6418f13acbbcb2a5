"""Tag registry: inspection points (sites and assets), the tags fixed to them, and every scan."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import SRID, Base, Timestamped

SITE_KINDS = ("site", "asset")
TAG_TYPES = ("type2", "type4", "mifare_classic", "unknown")  # rfid.TagType values
TAG_STATUSES = ("active", "revoked")
VERDICTS = ("verified", "uid_only", "unknown_tag", "revoked", "replayed", "bad_mac", "malformed")
TAG_EVENT_KINDS = ("enrolled", "moved", "revoked")
SCAN_SOURCES = ("http", "mqtt", "cli")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ",".join(f"'{v}'" for v in values) + ")"


class Site(Timestamped, Base):
    """An inspection point: a place (substation, pumping station) or an asset (transformer,
    valve, hydrant) where a tag is fixed. Rounds arrive in a later issue."""

    __tablename__ = "sites"
    __table_args__ = (CheckConstraint(f"kind IN {_in(SITE_KINDS)}", name="kind"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="site")
    location = mapped_column(Geometry("POINT", srid=SRID, spatial_index=True), nullable=False)
    address: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Tag(Base):
    """A tag enrolled to a site. Keys are never stored: SUN tags record only their key version
    (per-tag keys are diversified from the master key of that version)."""

    __tablename__ = "tags"
    __table_args__ = (
        CheckConstraint("uid ~ '^([0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})$'", name="uid"),
        CheckConstraint(f"tag_type IN {_in(TAG_TYPES)}", name="tag_type"),
        CheckConstraint(f"status IN {_in(TAG_STATUSES)}", name="status"),
        CheckConstraint("sun_enabled = (key_version IS NOT NULL)", name="sun_key_version"),
        CheckConstraint("NOT sun_enabled OR (tag_type = 'type4' AND length(uid) = 14)",
                        name="sun_tag"),
        CheckConstraint("last_counter IS NULL OR (sun_enabled AND last_counter BETWEEN 0 AND "
                        "16777215)", name="last_counter"),
        CheckConstraint("(status = 'revoked') = (revoked_at IS NOT NULL)", name="revoked_at"),
        # one active tag per UID; revoked ones stay for the history
        Index("uq_tags_active_uid", "uid", unique=True, postgresql_where=text("status = 'active'")),
        Index("ix_tags_site_id", "site_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uid: Mapped[str] = mapped_column(String(20))
    tag_type: Mapped[str] = mapped_column(String(16))
    sun_enabled: Mapped[bool] = mapped_column(default=False)
    key_version: Mapped[int | None] = mapped_column(Integer)
    last_counter: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="active")
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    enrolled_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


class TagEvent(Base):
    """Append-only history of a tag: enrolled, moved, revoked (who, when, from where to where)."""

    __tablename__ = "tag_events"
    __table_args__ = (
        CheckConstraint(f"kind IN {_in(TAG_EVENT_KINDS)}", name="kind"),
        Index("ix_tag_events_tag_id", "tag_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))
    from_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    to_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    note: Mapped[str | None] = mapped_column(Text)


class TagScan(Base):
    """One scan and its verdict: every scan is stored, accepted or not."""

    __tablename__ = "tag_scans"
    __table_args__ = (
        CheckConstraint(f"verdict IN {_in(VERDICTS)}", name="verdict"),
        CheckConstraint(f"source IN {_in(SCAN_SOURCES)}", name="source"),
        Index("uq_tag_scans_client_id", "client_id", unique=True,
              postgresql_where=text("client_id IS NOT NULL")),
        Index("ix_tag_scans_site_id", "site_id", "id"),
        Index("ix_tag_scans_tag_id", "tag_id", "id"),
        Index("ix_tag_scans_uid", "uid", "id"),
        Index("ix_tag_scans_verdict", "verdict", "id"),
        # scan trails and exception reports select by when the scan happened
        Index("ix_tag_scans_at", text("coalesce(scanned_at, received_at)")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    scanned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(String(8), default="http")
    client_id: Mapped[UUID | None] = mapped_column()
    verdict: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    tag_id: Mapped[int | None] = mapped_column(ForeignKey("tags.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    uid: Mapped[str | None] = mapped_column(String(20))  # canonical UID the verdict is about
    counter: Mapped[int | None] = mapped_column(Integer)
    key_version: Mapped[int | None] = mapped_column(Integer)
    position = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=True)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the parameters as received
