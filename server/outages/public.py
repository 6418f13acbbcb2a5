"""The public outage status (no login): what is out where, with generalised areas and nothing
about customers, and "is there an outage at this point or address?"."""

from __future__ import annotations

import json

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from server.core.errors import NotFound
from server.core.schemas import PointOut
from server.models import ServicePoint
from server.outages import sql
from server.outages.schemas import PublicCheckOut, PublicOutage

_PUBLIC_FIELDS = f"""{sql.ref('o.id')} AS ref, o.type, o.status, o.area_name, o.starts_at, o.etr"""

# Simplified (Douglas-Peucker, topology kept) and rounded: the shape of the area, not the exact
# line between two houses.
_ACTIVE = text(f"""
SELECT {_PUBLIC_FIELDS},
       ST_AsGeoJSON(ST_SimplifyPreserveTopology(o.area, :tolerance), :decimals) AS geojson
FROM outages o WHERE {sql.ACTIVE}
ORDER BY o.starts_at DESC, o.id DESC
""")

_AT = text(f"""
SELECT {_PUBLIC_FIELDS}
FROM outages o, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS here) p
WHERE {sql.ACTIVE} AND {sql.covers('p.here')}
ORDER BY o.starts_at DESC, o.id DESC
""")


def active(session: Session, *, simplify_m: float, decimals: int) -> dict:
    """Confirmed and restoring outages (planned ones included, with their start) as GeoJSON."""
    rows = session.execute(_ACTIVE, {"tolerance": simplify_m / 111_320.0,
                                     "decimals": decimals}).mappings().all()
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": json.loads(r["geojson"]),
         "properties": PublicOutage(**{k: v for k, v in r.items() if k != "geojson"})
         .model_dump(mode="json")} for r in rows]}


def at(session: Session, *, lon: float | None = None, lat: float | None = None,
       address: str | None = None) -> PublicCheckOut:
    """Outages covering a point, or the place of a known service address."""
    if address is not None:
        point = session.execute(
            select(func.ST_X(ServicePoint.geom), func.ST_Y(ServicePoint.geom))
            .where(func.lower(ServicePoint.address) == address.strip().lower())
            .order_by(ServicePoint.id).limit(1)).first()
        if point is None:
            raise NotFound("that address is not a known service address; try a point",
                           field="address", code="unknown_address")
        lon, lat = point
    rows = session.execute(_AT, {"lon": lon, "lat": lat}).mappings().all()
    return PublicCheckOut(point=PointOut(lon=round(lon, 5), lat=round(lat, 5)),
                          outages=[PublicOutage(**r) for r in rows])
