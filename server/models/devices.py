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
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base

PRESENCE = ("online", "offline")
MESSAGE_RESULTS = ("accepted", "rejected")


class Device(Base):
    """A technician's handset. ``id`` is also its MQTT username and client id."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("presence IS NULL OR presence IN ('online','offline')", name="presence"),
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


class DeviceMessage(Base):
    """Every uplink message persisted once, by (device_id, msg_id): redeliveries hit the key."""

    __tablename__ = "device_messages"
    __table_args__ = (
        UniqueConstraint("device_id", "msg_id", name="uq_device_messages_device_id_msg_id"),
        CheckConstraint("result IN ('accepted','rejected')", name="result"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    msg_id: Mapped[UUID]
    kind: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    result: Mapped[str] = mapped_column(String(16))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


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
