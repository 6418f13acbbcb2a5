from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, field_validator

from server.core.schemas import PointIn, PointOut


class Skill(StrEnum):
    water_main = "water_main"
    meter = "meter"
    valve = "valve"
    electrical = "electrical"
    telecom_line = "telecom_line"


class Shift(StrEnum):
    on_shift = "on_shift"
    on_break = "break"
    off = "off"


class CrewStatus(StrEnum):
    available = "available"
    assigned = "assigned"
    en_route = "en_route"
    on_site = "on_site"
    offline = "offline"


class CrewIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    vehicle: str | None = Field(None, max_length=100)
    depot: PointIn | None = None
    skills: list[Skill] = Field(default_factory=list, max_length=len(Skill))
    shift: Shift = Shift.off
    capacity: int = Field(1, ge=1, le=20, description="jobs the crew may hold at once")
    members: list[int] = Field(default_factory=list, max_length=20,
                               description="user ids of technicians")


class CrewPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    vehicle: str | None = Field(None, max_length=100)
    depot: PointIn | None = None
    skills: list[Skill] | None = Field(None, max_length=len(Skill))
    capacity: int | None = Field(None, ge=1, le=20)
    members: list[int] | None = Field(None, max_length=20)


class CrewStateIn(BaseModel):
    """Shift and/or field status, reported by the crew's technicians or a dispatcher."""

    shift: Shift | None = None
    status: CrewStatus | None = None


class FixIn(BaseModel):
    """One GPS fix."""

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    at: datetime = Field(description="when the fix was taken (ISO 8601 with a time zone)")
    accuracy_m: float | None = Field(None, ge=0, le=10_000)
    heading_deg: float | None = Field(None, ge=0, lt=360)
    speed_mps: float | None = Field(None, ge=0, le=150)

    @field_validator("lon", "lat", "accuracy_m", "heading_deg", "speed_mps")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @field_validator("at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-01-05T08:00:00Z)")
        return v


class PositionsIn(BaseModel):
    fixes: list[FixIn] = Field(min_length=1, max_length=500)


class MemberOut(BaseModel):
    user_id: int
    username: str
    full_name: str


class LivePosition(BaseModel):
    lon: float
    lat: float
    at: datetime
    accuracy_m: float | None
    heading_deg: float | None
    speed_mps: float | None


class CrewOut(BaseModel):
    id: int
    name: str
    vehicle: str | None
    depot: PointOut | None
    skills: list[str]
    shift: str
    status: str
    capacity: int
    active: bool
    active_jobs: int
    members: list[MemberOut]
    position: LivePosition | None


class FixResult(BaseModel):
    index: int
    at: datetime
    implausible: bool
    applied: bool = Field(description="became the live position")


class ArrivalOut(BaseModel):
    ticket_id: int
    assignment_id: int
    distance_m: float
    ticket_status: str


class EtaUpdate(BaseModel):
    ticket_id: int
    eta_s: float | None
    eta_source: str | None


class PositionsOut(BaseModel):
    crew_id: int
    accepted: int
    implausible: int
    fixes: list[FixResult]
    position: LivePosition | None
    arrivals: list[ArrivalOut]
    eta_updates: list[EtaUpdate]
