"""The public outage status (no login): what is out where, with generalised areas and nothing
about customers, and "is there an outage at this point or address?"."""

from __future__ import annotations

import json

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

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
       address: str | None = None, decimals: int) -> PublicCheckOut:
    """Outages covering a point, or the place of a service address.

    Nothing here tells whether an address is a customer's: an address we do not know is
    answered exactly like a known one outside every outage (200, no outages), and the service
    point's coordinates are never returned (``point`` is null for an address). A point the caller
    gave is echoed at the public precision (``decimals``, as the public areas)."""
    if address is not None:
        place = session.execute(
            select(func.ST_X(ServicePoint.geom), func.ST_Y(ServicePoint.geom))
            .where(func.lower(ServicePoint.address) == address.strip().lower())
            .order_by(ServicePoint.id).limit(1)).first()
        if place is None:
            return PublicCheckOut(point=None, outages=[])
        rows = session.execute(_AT, {"lon": place[0], "lat": place[1]}).mappings().all()
        return PublicCheckOut(point=None, outages=[PublicOutage(**r) for r in rows])
    rows = session.execute(_AT, {"lon": lon, "lat": lat}).mappings().all()
    return PublicCheckOut(point=PointOut(lon=round(lon, decimals), lat=round(lat, decimals)),
                          outages=[PublicOutage(**r) for r in rows])
