"""Schema pieces shared by several domains."""

from __future__ import annotations

import math

from geoalchemy2.elements import WKBElement
from geoalchemy2.shape import from_shape, to_shape
from pydantic import BaseModel, Field, field_validator
from shapely.geometry import Point

from server.models import SRID


class PointIn(BaseModel):
    """A WGS84 position (SRID 4326)."""

    lon: float = Field(ge=-180, le=180, description="longitude, degrees east")
    lat: float = Field(ge=-90, le=90, description="latitude, degrees north")

    @field_validator("lon", "lat")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    def to_wkb(self) -> WKBElement:
        return from_shape(Point(self.lon, self.lat), srid=SRID)


class PointOut(BaseModel):
    lon: float
    lat: float

    @classmethod
    def from_geom(cls, geom: WKBElement | None) -> PointOut | None:
        if geom is None:
            return None
        p = to_shape(geom)
        return cls(lon=round(p.x, 7), lat=round(p.y, 7))
