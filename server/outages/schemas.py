"""Outages: request and response models. Areas go in and come out as GeoJSON (RFC 7946, WGS84)."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from server.core.schemas import PointIn, PointOut


class OutageType(StrEnum):  # their names in zh-CN and en: server/outages/words.py
    water_outage = "water_outage"                # 停水 (unplanned)
    low_pressure = "low_pressure"                # 水压降低
    emergency_repair = "emergency_repair"        # 抢修停水
    planned_maintenance = "planned_maintenance"  # 计划检修停水


class OutageStatus(StrEnum):
    suspected = "suspected"
    confirmed = "confirmed"
    restoring = "restoring"
    restored = "restored"
    dismissed = "dismissed"


def _check_ring_coordinates(value: Any, depth: int) -> None:
    if depth == 0:
        if (not isinstance(value, list | tuple) or len(value) < 2
                or not all(isinstance(c, int | float) and math.isfinite(c) for c in value[:2])):
            raise ValueError("a position is [lon, lat] with finite numbers")
        lon, lat = value[0], value[1]
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(f"position [{lon}, {lat}] is outside WGS84 bounds")
        return
    if not isinstance(value, list) or not value:
        raise ValueError("coordinates are nested lists of [lon, lat] positions")
    for item in value:
        _check_ring_coordinates(item, depth - 1)


class GeoJsonPolygon(BaseModel):
    """A GeoJSON Polygon or MultiPolygon in WGS84; holes are inner rings. Edges are straight
    lines in longitude/latitude (RFC 7946), which is how selection treats them."""

    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any]

    @model_validator(mode="after")
    def _shape(self) -> GeoJsonPolygon:
        _check_ring_coordinates(self.coordinates, 2 if self.type == "Polygon" else 3)
        return self


class PolygonArea(BaseModel):
    kind: Literal["polygon"]
    geometry: GeoJsonPolygon


class BufferArea(BaseModel):
    kind: Literal["buffer"]
    center: PointIn
    radius_m: float = Field(gt=0, le=50_000, description="metres on the ellipsoid")


class StreetsArea(BaseModel):
    kind: Literal["streets"]
    edge_ids: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list, max_length=5000)
    names: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=100, description="street names (case-insensitive)")
    buffer_m: float | None = Field(None, gt=0, le=1000,
                                   description="metres each side (default: settings)")

    @model_validator(mode="after")
    def _some_street(self) -> StreetsArea:
        if not self.edge_ids and not self.names:
            raise ValueError("give edge_ids or names of the streets")
        return self


AreaIn = Annotated[PolygonArea | BufferArea | StreetsArea, Field(discriminator="kind")]


class PreviewIn(BaseModel):
    area: AreaIn


class PreviewOut(BaseModel):
    service_points: int
    customers: int
    reachable_by_sms: int = Field(description="customers with a mobile, consent and no opt-out")
    area: dict[str, Any] = Field(description="the area as GeoJSON geometry")
    area_m2: float


class OutageIn(BaseModel):
    type: OutageType
    area_name: str = Field(min_length=1, max_length=100,
                           description="how customers know the place; SMS cut it to 20 chars")
    description: str | None = Field(None, max_length=4000)
    area: AreaIn
    status: Literal["suspected", "confirmed"] = "confirmed"
    starts_at: AwareDatetime | None = Field(None, description="default: now")
    etr: AwareDatetime | None = Field(None, description="estimated restoration time")


class OutagePatch(BaseModel):
    etr: AwareDatetime | None = None
    area: AreaIn | None = Field(None, description="a new area: customers newly inside get the "
                                                 "notice, nobody else is texted")
    area_name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=4000)
    note: str | None = Field(None, max_length=2000)


class OutageTransitionIn(BaseModel):
    to: OutageStatus
    etr: AwareDatetime | None = Field(None, description="confirming: the ETR if none is set yet")
    note: str | None = Field(None, max_length=2000)


class TicketLinkIn(BaseModel):
    ticket_id: int = Field(ge=1)


class OutageEventOut(BaseModel):
    id: int
    at: datetime
    actor: str | None
    kind: str
    from_status: str | None
    to_status: str | None
    data: dict[str, Any] | None


class LinkedTicketOut(BaseModel):
    ticket_id: int
    number: str
    category: str
    status: str
    source: str
    linked_at: datetime
    location: PointOut | None


class SmsCountsOut(BaseModel):
    template: str
    status: str
    count: int


class OutageOut(BaseModel):
    id: int
    ref: str
    type: OutageType
    status: OutageStatus
    source: str
    area_name: str
    description: str | None
    area_kind: str
    area_spec: dict[str, Any]
    area: dict[str, Any]
    starts_at: datetime
    etr: datetime | None
    restored_at: datetime | None
    closed_at: datetime | None
    notice_sent_at: datetime | None
    revision: int
    etr_revision: int
    created_at: datetime
    updated_at: datetime
    affected_customers: int
    linked_tickets: int
    allowed_transitions: list[OutageStatus]


class OutageDetail(OutageOut):
    events: list[OutageEventOut]
    tickets: list[LinkedTicketOut]
    sms: list[SmsCountsOut]


class OutageHint(BaseModel):
    """What the caller-ID lookup tells the agent about a customer's place."""

    id: int
    ref: str
    type: OutageType
    status: OutageStatus
    area_name: str
    starts_at: datetime
    etr: datetime | None
    service_point_id: int
    hint: dict[str, str] = Field(description="zh-CN and en: 'inside outage X, ETR …'")


class PublicOutage(BaseModel):
    ref: str
    type: OutageType
    status: OutageStatus
    area_name: str
    starts_at: datetime
    etr: datetime | None


class PublicCheckOut(BaseModel):
    point: PointOut | None = Field(description="the point asked about, at the public precision; "
                                               "null when an address was asked about")
    outages: list[PublicOutage]
