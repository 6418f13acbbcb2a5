from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import SRID, Base, Timestamped


class Customer(Timestamped, Base):
    __tablename__ = "customers"
    __table_args__ = (CheckConstraint("preferred_language IN ('zh-CN','en')", name="language"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_no: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    preferred_language: Mapped[str] = mapped_column(String(8), default="zh-CN")
    sms_consent: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now())

    phones: Mapped[list[CustomerPhone]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="CustomerPhone.id")
    service_points: Mapped[list[ServicePoint]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="ServicePoint.id")


class CustomerPhone(Base):
    __tablename__ = "customer_phones"
    __table_args__ = (
        UniqueConstraint("customer_id", "e164"),
        Index("ix_customer_phones_e164", "e164"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    e164: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(16), default="mobile")

    customer: Mapped[Customer] = relationship(back_populates="phones")


class ServicePoint(Timestamped, Base):
    __tablename__ = "service_points"
    __table_args__ = (
        UniqueConstraint("customer_id", "address"),
        # tickets placed by a street address the caller names (tickets.service.create)
        Index("ix_service_points_address_lower", func.lower(text("address"))),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(300))
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=True), nullable=False)
    external_ref: Mapped[str | None] = mapped_column(String(64))

    customer: Mapped[Customer] = relationship(back_populates="service_points")
