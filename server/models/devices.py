"""Handsets (MQTT devices), the uplink messages received from them, and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base

PRESENCE = ("online", "offline")
MESSAGE_RESULTS = ("accepted", "rejected")
ATTACHMENT_KINDS = ("photo", "signature")


class Device(Base):
    """A technician's handset. ``id`` is also its MQTT username and client id."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("presence IS NULL OR presence IN ('online','offline')", name="presence"),
        CheckConstraint("(resync_stuck_at IS NULL) = (resync_stuck_seq IS NULL)",
                        name="resync_stuck"),
        Index("ix_devices_user_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    presence: Mapped[str | None] = mapped_column(String(8))
    presence_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # downlink: the last seq allocated (server/devices/downlink.py, UPDATE … RETURNING under the
    # row lock) and the highest contiguous seq the handset acknowledged (uplink ``ack``)
    downlink_seq: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    acked_seq: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # set when a resync asked from a seq whose following rows retention already pruned: the
    # handset lost its link state and can never catch up (it must be paired again); cleared by
    # the next ack without such a hole (downlink.record_ack). The seq is the one it asked from.
    resync_stuck_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resync_stuck_seq: Mapped[int | None] = mapped_column(BigInteger)


class DeviceMessage(Base):
    """Every uplink message persisted once, by (device_id, msg_id): redeliveries hit the key."""

    __tablename__ = "device_messages"
    __table_args__ = (
        UniqueConstraint("device_id", "msg_id", name="uq_device_messages_device_id_msg_id"),
        CheckConstraint("result IN ('accepted','rejected')", name="result"),
        # deferred kinds (positions) wait here for the applier (server/devices/applier.py)
        Index("ix_device_messages_unapplied", "id", postgresql_where=text("applied_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    msg_id: Mapped[UUID]
    kind: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    result: Mapped[str] = mapped_column(String(16))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeviceDeadLetter(Base):
    """An uplink payload the bridge could not accept: the raw bytes and why."""

    __tablename__ = "device_dead_letters"
    __table_args__ = (Index("ix_device_dead_letters_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    topic: Mapped[str] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(String(64))  # from the topic; maybe unknown
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class DeviceUplinkSeen(Base):
    """The newest uplink message stored per device, as far as the retention task has read
    ``device_messages`` (server/devices/retention.py): a message's dedup key is kept until the
    device has been heard from long after it."""

    __tablename__ = "device_uplink_seen"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"),
                                           primary_key=True)
    last_message_id: Mapped[int] = mapped_column(BigInteger)
    last_received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeviceDownlink(Base):
    """A server → handset message, sequenced per device and kept: the bridge publishes rows whose
    ``published_at`` is NULL (set again by a resync) and stamps them after the broker's PUBACK."""

    __tablename__ = "device_downlink"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", name="uq_device_downlink_device_id_seq"),
        CheckConstraint("seq >= 1", name="seq"),
        Index("ix_device_downlink_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the full message incl. v and seq
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # bumped by every resync that re-queues the row: a PUBACK for an older publication must not
    # mark the re-queued row as published
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class DeviceAttachment(Base):
    """Photo/signature metadata reported by a handset (uplink ``attachment``); the file itself is
    uploaded over HTTP with the device's credentials (``uploaded_at``; docs/protocol.md)."""

    __tablename__ = "device_attachments"
    __table_args__ = (
        UniqueConstraint("device_id", "msg_id", name="uq_device_attachments_device_id_msg_id"),
        CheckConstraint(f"kind IN {ATTACHMENT_KINDS!r}", name="kind"),
        CheckConstraint("ticket_id IS NOT NULL OR visit_ref IS NOT NULL", name="subject"),
        Index("ix_device_attachments_ticket_id", "ticket_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    msg_id: Mapped[UUID]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    visit_ref: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    mime: Mapped[str] = mapped_column(String(100))
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    uploaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the file
