from __future__ import annotations

from enum import StrEnum

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, Timestamped


class Role(StrEnum):
    agent = "agent"
    dispatcher = "dispatcher"
    technician = "technician"
    manager = "manager"
    admin = "admin"


class User(Timestamped, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('agent','dispatcher','technician','manager','admin')", name="role"),
        CheckConstraint("language IN ('zh-CN','en')", name="language"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8), default="zh-CN")
    is_active: Mapped[bool] = mapped_column(default=True)
    # E.164; technicians with one get an SMS when a job is assigned to their crew
    phone: Mapped[str | None] = mapped_column(String(20))
