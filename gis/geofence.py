"""Geofences: is a point inside an area, or within N metres of a point or geometry.

Areas and geometries are lon/lat (:data:`gis.geo.SRID`). Inside/outside is decided on the lon/lat
geometry, as PostGIS does for ``geometry(…, 4326)``; anything in metres is computed geodesically
(point to point) or in a :class:`~gis.geo.LocalProjection` centred on the query point (point to
geometry), never on raw degrees.
"""

from __future__ import annotations

from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from gis._checks import real_number
from gis.errors import InvalidGeometry
from gis.geo import distance_m, local_projection_at, validate_geometry, validate_lon_lat

_ORIGIN = Point(0.0, 0.0)


def point_in_area(area: Polygon | MultiPolygon, lon: float, lat: float) -> bool:
    """True when the lon/lat point lies inside ``area`` or on its boundary.

    Holes are outside. Raises :class:`~gis.errors.InvalidGeometry` for non-polygonal areas.
    """
    if not isinstance(area, Polygon | MultiPolygon):
        raise InvalidGeometry(f"area: expected a Polygon or MultiPolygon, got {area.geom_type}")
    validate_geometry(area, field="area")
    lon, lat = validate_lon_lat(lon, lat)
    return bool(area.covers(Point(lon, lat)))


def distance_to_geometry_m(geometry: BaseGeometry, lon: float, lat: float) -> float:
    """Shortest distance in metres from a lon/lat point to a lon/lat geometry (0 when inside).

    A Point target is measured geodesically; other geometries are measured in an azimuthal
    equidistant projection centred on the query point, where distances from the point are exact.
    """
    validate_geometry(geometry)
    lon, lat = validate_lon_lat(lon, lat)
    if isinstance(geometry, Point):
        return distance_m(lon, lat, geometry.x, geometry.y)
    projection = local_projection_at(lon, lat)
    return float(projection.to_metric(geometry).distance(_ORIGIN))


def within_radius_m(
    centre_lon: float, centre_lat: float, lon: float, lat: float, radius_m: float
) -> bool:
    """True when the point is within ``radius_m`` metres (inclusive) of the centre, geodesically."""
    radius_m = real_number("radius_m", radius_m)
    return distance_m(centre_lon, centre_lat, lon, lat) <= radius_m


def within_m(geometry: BaseGeometry, lon: float, lat: float, radius_m: float) -> bool:
    """True when the point lies within ``radius_m`` metres (inclusive) of ``geometry``."""
    radius_m = real_number("radius_m", radius_m)
    return distance_to_geometry_m(geometry, lon, lat) <= radius_m
