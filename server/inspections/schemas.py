"""Wire shapes of the inspections domain (HTTP; the MQTT handler maps its messages onto them)."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, field_validator, model_validator

from server.core.schemas import PointIn, PointOut

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SHA256 = r"^[0-9a-f]{64}$"


def _aware(v: datetime | None) -> datetime | None:
    if v is not None and v.tzinfo is None:
        raise ValueError("must include a time zone (e.g. 2026-01-05T08:00:00Z)")
    return v


class ItemKind(StrEnum):
    number = "number"  # with min/max and a unit
    choice = "choice"  # one of options
    yes_no = "yes_no"
    text = "text"
    photo = "photo"  # an attachment is required
    signature = "signature"  # customer or witness signature (an attachment)


class ChecklistItem(BaseModel):
    key: str = Field(description="stable identifier, a-z 0-9 _")
    label: str = Field(min_length=1, max_length=200, description="English label")
    label_zh: str | None = Field(None, max_length=200, description="中文标签")
    kind: ItemKind
    required: bool = True
    unit: str | None = Field(None, max_length=20)
    min: float | None = None
    max: float | None = None
    options: list[str] | None = Field(None, max_length=50)
    signer: Literal["customer", "witness"] | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not _KEY.match(v):
            raise ValueError("lower-case letters, digits and _, starting with a letter (max 40)")
        return v

    @model_validator(mode="after")
    def _by_kind(self) -> ChecklistItem:
        if self.kind is ItemKind.number:
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"{self.key}: min is above max")
        elif self.min is not None or self.max is not None or self.unit is not None:
            raise ValueError(f"{self.key}: min, max and unit are for number items")
        if self.kind is ItemKind.choice:
            if not self.options or len(set(self.options)) != len(self.options) or len(self.options) < 2:
                raise ValueError(f"{self.key}: a choice needs at least two distinct options")
        elif self.options is not None:
            raise ValueError(f"{self.key}: options are for choice items")
        if self.kind is ItemKind.signature and self.signer is None:
            raise ValueError(f"{self.key}: a signature names its signer (customer or witness)")
        if self.kind is not ItemKind.signature and self.signer is not None:
            raise ValueError(f"{self.key}: signer is for signature items")
        return self


class TemplateIn(BaseModel):
    items: list[ChecklistItem] = Field(min_length=1, max_length=100)

    @field_validator("items")
    @classmethod
    def _unique(cls, items: list[ChecklistItem]) -> list[ChecklistItem]:
        keys = [i.key for i in items]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError(f"duplicate item keys: {', '.join(sorted(dup))}")
        return items


class TemplateOut(BaseModel):
    id: int
    site_type_id: int
    version: int
    items: list[ChecklistItem]
    created_at: datetime


class SiteTypeIn(BaseModel):
    code: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_-]*$")
    name: str = Field(min_length=1, max_length=200)
    items: list[ChecklistItem] = Field(min_length=1, max_length=100,
                                       description="the checklist, version 1")

    _unique = field_validator("items")(TemplateIn._unique.__func__)  # type: ignore[attr-defined]


class SiteTypeOut(BaseModel):
    id: int
    code: str
    name: str
    created_at: datetime
    current: TemplateOut


class ProfileIn(BaseModel):
    site_type_id: int = Field(ge=1)
    parent_site_id: int | None = Field(None, ge=1, description="the site an asset is on")
    tolerance_m: float | None = Field(None, gt=0, le=10_000, description="GPS tolerance of "
                                      "this site (default: CREWLINE_INSPECTION_GPS_TOLERANCE_M)")


class ProfileOut(BaseModel):
    site_id: int
    site_type_id: int
    parent_site_id: int | None
    tolerance_m: float | None
    updated_at: datetime


class Frequency(StrEnum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"


class PlanIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    site_ids: list[int] = Field(min_length=1, max_length=500, description="in visiting order")
    frequency: Frequency
    weekday: int | None = Field(None, ge=1, le=7, description="weekly: ISO weekday, 1 = Monday")
    day_of_month: int | None = Field(None, ge=1, le=28, description="monthly: 1–28")
    window_start: time = Field(description="local time the window opens")
    window_end: time = Field(description="local time it closes (at or before the start: next day)")
    timezone: str | None = Field(None, max_length=64, description="IANA zone (default: settings)")
    starts_on: date
    crew_id: int | None = Field(None, ge=1)
    technician_id: int | None = Field(None, ge=1)

    @field_validator("site_ids")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("has duplicates")
        return v

    @field_validator("window_start", "window_end")
    @classmethod
    def _local(cls, v: time) -> time:
        if v.tzinfo is not None:
            raise ValueError("a local time without a zone (set timezone)")
        return v


class PlanPatch(BaseModel):
    active: bool


class PlanOut(BaseModel):
    id: int
    name: str
    site_ids: list[int]
    frequency: Frequency
    weekday: int | None
    day_of_month: int | None
    window_start: time
    window_end: time
    timezone: str
    starts_on: date
    crew_id: int | None
    technician_id: int | None
    active: bool
    created_at: datetime


class CheckpointOut(BaseModel):
    site_id: int
    name: str
    location: PointOut
    position: int
    state: Literal["done", "late", "pending", "missed", "withdrawn"]
    visit_ids: list[int]
    evidence: str | None  # of the first visit


class RoundOut(BaseModel):
    id: int
    plan_id: int
    plan_name: str
    period_start: date
    window_start: datetime
    window_end: datetime
    crew_id: int | None
    technician_id: int | None
    created_at: datetime
    delivered_to: int
    closed_at: datetime | None
    outcome: str | None
    checkpoints: list[CheckpointOut]


class AttachmentRef(BaseModel):
    item: str = Field(max_length=40, description="the checklist item key (photo / signature)")
    kind: Literal["photo", "signature"]
    sha256: str = Field(pattern=SHA256)
    content_type: Literal["image/png", "image/jpeg"]
    size: int = Field(ge=1, le=50 * 1024 * 1024)
    taken_at: datetime | None = None
    signer_name: str | None = Field(None, max_length=200)

    _aware = field_validator("taken_at")(classmethod(lambda cls, v: _aware(v)))


class VisitIn(BaseModel):
    """One visit as the handset reports it (HTTP body, or the MQTT ``inspection`` uplink)."""

    site_id: int = Field(ge=1)
    round_id: int | None = Field(None, ge=1)
    started_at: datetime
    finished_at: datetime
    tag_scan_id: int | None = Field(None, ge=1, description="the stored scan's id")
    tag_scan_msg_id: UUID | None = Field(None, description="or its client_id (the tag_scan "
                                                           "uplink's msg_id)")
    position: PointIn | None = None
    accuracy_m: float | None = Field(None, ge=0, le=100_000)
    template_version: int | None = Field(None, ge=1, description="default: the current one")
    values: dict[str, Any] = Field(default_factory=dict, max_length=100)
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=30)
    note: str | None = Field(None, max_length=2000)
    corrects_id: int | None = Field(None, ge=1, description="this record corrects that one")
    client_id: UUID | None = Field(None, description="idempotency key")

    _aware = field_validator("started_at", "finished_at")(
        classmethod(lambda cls, v: _aware(v)))

    @field_validator("note")
    @classmethod
    def _no_nul(cls, v: str | None) -> str | None:
        if v is not None and "\x00" in v:
            raise ValueError("must not contain NUL characters")
        return v

    @model_validator(mode="after")
    def _order(self) -> VisitIn:
        if self.finished_at < self.started_at:
            raise ValueError("finished_at is before started_at")
        if self.tag_scan_id is not None and self.tag_scan_msg_id is not None:
            raise ValueError("give tag_scan_id or tag_scan_msg_id, not both")
        return self


class VisitOut(BaseModel):
    id: int
    site_id: int
    site_seq: int
    round_id: int | None
    technician_id: int
    technician: str
    source: str
    client_id: UUID | None
    received_at: datetime
    started_at: datetime
    finished_at: datetime
    tag_scan_id: int | None
    scan_verdict: str | None
    position: PointOut | None
    accuracy_m: float | None
    distance_m: float | None
    template_id: int | None
    template_version: int | None
    values: dict[str, Any]
    attachments: list[dict[str, Any]]
    evidence: Literal["verified", "flagged"]
    flags: list[str]
    note: str | None
    corrects_id: int | None
    prev_hash: str
    hash: str
    duplicate: bool = False


class AttachmentOut(BaseModel):
    sha256: str
    content_type: str
    size: int
    duplicate: bool


class ChainProblem(BaseModel):
    site_id: int
    site_seq: int | None
    record_id: int | None
    problem: Literal["edited", "missing", "reordered", "head_mismatch"]
    detail: str


class VerifyOut(BaseModel):
    ok: bool
    sites: int
    records: int
    problems: list[ChainProblem]
