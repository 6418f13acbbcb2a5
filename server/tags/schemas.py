"""Wire shapes of the tags domain (HTTP now, the MQTT bridge later)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from server.core.schemas import PointIn, PointOut


class SiteKind(StrEnum):
    site = "site"  # a place: substation, pumping station, cabinet
    asset = "asset"  # a piece of equipment: transformer, valve, hydrant


class TagType(StrEnum):
    """rfid.TagType values."""

    type2 = "type2"
    type4 = "type4"
    mifare_classic = "mifare_classic"
    unknown = "unknown"


class TagStatus(StrEnum):
    active = "active"
    revoked = "revoked"


class VerdictName(StrEnum):
    """rfid.Verdict values."""

    verified = "verified"
    uid_only = "uid_only"
    unknown_tag = "unknown_tag"
    revoked = "revoked"
    replayed = "replayed"
    bad_mac = "bad_mac"
    malformed = "malformed"


def _stripped(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


class SiteIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: SiteKind = SiteKind.site
    location: PointIn
    address: str | None = Field(None, max_length=300)

    _strip = field_validator("name", "address")(classmethod(lambda cls, v: _stripped(v)))


class SitePatch(BaseModel):
    """Only the fields sent are changed; ``address: null`` clears the address."""

    name: str | None = Field(None, min_length=1, max_length=200)
    kind: SiteKind | None = None
    location: PointIn | None = None
    address: str | None = Field(None, max_length=300)

    _strip = field_validator("name", "address")(classmethod(lambda cls, v: _stripped(v)))


class SiteOut(BaseModel):
    id: int
    name: str
    kind: SiteKind
    location: PointOut
    address: str | None
    active_tags: int
    created_at: datetime
    updated_at: datetime


class TagEnrollIn(BaseModel):
    uid: str = Field(min_length=1, max_length=64, description="hex, separators allowed")
    tag_type: TagType
    sun_enabled: bool = False
    key_version: int | None = Field(None, ge=0, description="SUN tags; default: the current one")
    site_id: int = Field(ge=1)
    note: str | None = Field(None, max_length=2000)


class RevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)

    _strip = field_validator("reason")(classmethod(lambda cls, v: _stripped(v)))


class MoveIn(BaseModel):
    site_id: int = Field(ge=1)
    note: str | None = Field(None, max_length=2000)


class TagEventOut(BaseModel):
    id: int
    at: datetime
    actor: str
    kind: str
    from_site_id: int | None
    to_site_id: int | None
    note: str | None


class TagOut(BaseModel):
    id: int
    uid: str
    tag_type: TagType
    sun_enabled: bool
    key_version: int | None
    last_counter: int | None
    status: TagStatus
    site_id: int
    enrolled_by: int
    enrolled_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None
    note: str | None


class TagDetail(TagOut):
    events: list[TagEventOut]


class ScanIn(BaseModel):
    """One tag scan as a handset (or a desk reader) reports it.

    Only bounds are checked here: a UID that is no UID or SUN parameters that do not parse still
    produce a stored scan, with the verdict ``malformed``.
    """

    uid: str | None = Field(None, max_length=64, description="UID as read (hex)")
    sun_url: str | None = Field(None, max_length=2048, description="the tag's NDEF URL")
    reader: str | None = Field(None, max_length=100)
    tag_type: str | None = Field(None, max_length=32)
    scanned_at: datetime | None = Field(None, description="handset time of the read (with zone)")
    position: PointIn | None = None
    accuracy_m: float | None = Field(None, ge=0, le=100_000)
    client_id: UUID | None = Field(None, description="idempotency key: a resend returns the "
                                                     "stored verdict")

    @field_validator("scanned_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must include a time zone (e.g. 2026-01-05T08:00:00Z)")
        return v


class ScanOut(BaseModel):
    id: int
    verdict: VerdictName
    accepted: bool
    reason: str
    tag_id: int | None
    site_id: int | None
    uid: str | None
    counter: int | None
    key_version: int | None
    received_at: datetime
    scanned_at: datetime | None
    actor: str
    source: str
    client_id: UUID | None
    position: PointOut | None
    accuracy_m: float | None
    raw: dict[str, Any]
    duplicate: bool = False
