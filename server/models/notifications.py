"""SMS notifications: the durable outbox, consent (opt-outs), inbound replies, edited templates."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base

# Our side of a message's life: pending -> sending (claimed, attempt token committed before the
# provider call) -> sent -> delivered | undelivered | failed; suppressed = never sent (consent).
SMS_STATUSES = ("pending", "sending", "sent", "delivered", "undelivered", "failed", "suppressed")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ",".join(f"'{v}'" for v in values) + ")"


class SmsMessage(Base):
    """One outbound SMS, written in the transaction of the event that causes it."""

    __tablename__ = "sms_messages"
    __table_args__ = (
        CheckConstraint(f"status IN {_in(SMS_STATUSES)}", name="status"),
        CheckConstraint("language IN ('zh-CN','en')", name="language"),
        CheckConstraint("encoding IN ('GSM-7','UCS-2')", name="encoding"),
        Index("ix_sms_messages_due", "next_attempt_at", "id",
              postgresql_where=text("status = 'pending'")),
        Index("ix_sms_messages_claimed", "claimed_at",
              postgresql_where=text("status = 'sending'")),
        Index("ix_sms_messages_ticket_id", "ticket_id"),
        Index("ix_sms_messages_to_e164", "to_e164", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    outage_ref: Mapped[str | None] = mapped_column(String(64))
    to_e164: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(8))
    template: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    encoding: Mapped[str] = mapped_column(String(8))
    segments: Mapped[int] = mapped_column(SmallInteger)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    # ticket:<id>|outage:<ref> + template + hash of (to, body): no identical repeat
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    provider_status: Mapped[str | None] = mapped_column(String(24))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    attempt_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    error_code: Mapped[str | None] = mapped_column(String(48))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SmsOptOut(Base):
    """A number that must not get SMS (STOP / 退订 / TD, or the provider said 21610)."""

    __tablename__ = "sms_opt_outs"

    e164: Mapped[str] = mapped_column(String(20), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # keyword | provider
    keyword: Mapped[str | None] = mapped_column(String(32))
    opted_out_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SmsInbound(Base):
    """Every inbound SMS and what was done with it (the consent and survey audit trail)."""

    __tablename__ = "sms_inbound"
    __table_args__ = (Index("ix_sms_inbound_from_e164", "from_e164", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    provider_message_id: Mapped[str] = mapped_column(String(64), unique=True)
    from_e164: Mapped[str] = mapped_column(String(20))
    to_number: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    intent: Mapped[str] = mapped_column(String(24))
    action: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SmsTemplate(Base):
    """A template text edited by staff, overriding the built-in one for (key, language)."""

    __tablename__ = "sms_templates"
    __table_args__ = (
        PrimaryKeyConstraint("key", "language"),
        CheckConstraint("language IN ('zh-CN','en')", name="language"),
    )

    key: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text)
    encoding: Mapped[str] = mapped_column(String(8))
    segments: Mapped[int] = mapped_column(SmallInteger)
    updated_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
