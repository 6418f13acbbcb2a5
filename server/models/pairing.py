"""One-time codes that pair a handset with a technician, and the record of wrong guesses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base


class PairingCode(Base):
    """A short code a dispatcher hands to a technician; the handset trades it for credentials.

    Only an HMAC of the code is stored (``code_hash``), so a database dump cannot be used to pair.
    """

    __tablename__ = "device_pairing_codes"
    __table_args__ = (Index("ix_device_pairing_codes_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))


class PairingFailure(Base):
    """A wrong, expired or spent code tried from a client address (for the lockout)."""

    __tablename__ = "device_pairing_failures"
    __table_args__ = (Index("ix_device_pairing_failures_client_at", "client", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
