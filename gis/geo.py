"""Coordinates, geodesic measurements and metric local projections.

The SRID rule: every coordinate that enters or leaves :mod:`gis` is WGS84 longitude/latitude
(:data:`SRID`, axis order lon, lat). Metres are never computed on raw degrees: distances and
bearings are geodesic on the WGS84 ellipsoid, and planar work in metres (buffers, simplification,
distance to a line) happens in an explicit :class:`LocalProjection`, with results projected back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from numbers import Real

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry.base import BaseGeometry

from gis._checks import real_number
from gis.errors import InvalidCoordinate, InvalidGeometry, InvalidParameter

SRID: int = 4326
"""WGS84 geographic coordinates, lon/lat order. The only SRID the library accepts or returns."""

LonLat = tuple[float, float]

# An immutable ellipsoid description, not state: Geod holds no mutable data between calls.
_WGS84 = Geod(ellps="WGS84")


def validate_lon_lat(lon: object, lat: object, *, field_prefix: str = "") -> LonLat:
    """Check a longitude/latitude pair and return it as floats.

    Raises :class:`~gis.errors.InvalidCoordinate` (``field`` is ``"lon"`` or ``"lat"``, prefixed
    with ``field_prefix``) when a value is not a real number, not finite, or out of range
    (lon in [-180, 180], lat in [-90, 90]).
    """
    checked: list[float] = []
    for name, value, limit in (("lon", lon, 180.0), ("lat", lat, 90.0)):
        field = f"{field_prefix}{name}"
        # bool is an int subclass; True as a coordinate is always a bug upstream.
        if isinstance(value, bool) or not isinstance(value, Real):
            raise InvalidCoordinate(field, value, "not a number")
        number = float(value)
        if not math.isfinite(number):
            raise InvalidCoordinate(field, value, "not finite")
        if not -limit <= number <= limit:
            raise InvalidCoordinate(field, value, f"outside [-{limit:g}, {limit:g}]")
        checked.append(number)
    return checked[0], checked[1]


def validate_geometry(geometry: BaseGeometry, *, field: str = "geometry") -> BaseGeometry:
    """Check that a geometry is non-empty and every coordinate is a valid lon/lat; return it.

    Raises :class:`~gis.errors.InvalidGeometry` otherwise.
    """
    if not isinstance(geometry, BaseGeometry):
        kind = type(geometry).__name__
        raise InvalidGeometry(f"{field}: expected a shapely geometry, got {kind}")
    if geometry.is_empty:
        raise InvalidGeometry(f"{field}: geometry is empty")
    coords = shapely.get_coordinates(geometry)
    if not np.isfinite(coords).all():
        raise InvalidGeometry(f"{field}: coordinates are not finite")
    if (np.abs(coords[:, 0]) > 180).any() or (np.abs(coords[:, 1]) > 90).any():
        raise InvalidGeometry(f"{field}: coordinates outside lon/lat ranges (SRID {SRID})")
    return geometry


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance in metres between two lon/lat points on the WGS84 ellipsoid."""
    lon1, lat1 = validate_lon_lat(lon1, lat1, field_prefix="from.")
    lon2, lat2 = validate_lon_lat(lon2, lat2, field_prefix="to.")
    _, _, dist = _WGS84.inv(lon1, lat1, lon2, lat2)
    return float(dist)


def distances_m(lon: float, lat: float, points: Sequence[LonLat]) -> list[float]:
    """Geodesic distances in metres from one lon/lat point to each of ``points`` (vectorised)."""
    lon, lat = validate_lon_lat(lon, lat, field_prefix="from.")
    if not points:
        return []
    for i, (plon, plat) in enumerate(points):
        validate_lon_lat(plon, plat, field_prefix=f"points[{i}].")
    lons = np.array([p[0] for p in points], dtype=float)
    lats = np.array([p[1] for p in points], dtype=float)
    _, _, dist = _WGS84.inv(np.full_like(lons, lon), np.full_like(lats, lat), lons, lats)
    return [float(d) for d in dist]


def initial_bearing_deg(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Initial geodesic bearing from point 1 to point 2, degrees clockwise from north in [0, 360).

    Raises :class:`~gis.errors.InvalidParameter` when the points coincide (no defined bearing).
    """
    lon1, lat1 = validate_lon_lat(lon1, lat1, field_prefix="from.")
    lon2, lat2 = validate_lon_lat(lon2, lat2, field_prefix="to.")
    azimuth, _, dist = _WGS84.inv(lon1, lat1, lon2, lat2)
    if dist == 0.0:
        raise InvalidParameter("to", (lon2, lat2), "coincides with the origin; bearing undefined")
    bearing = float(azimuth) % 360.0
    # -0.0 % 360 == 0.0 but tiny negative values can round to exactly 360.0.
    return 0.0 if bearing >= 360.0 else bearing


def line_length_m(coords: Sequence[LonLat]) -> float:
    """Geodesic length in metres of a polyline given as lon/lat pairs (0 for fewer than 2)."""
    for i, (lon, lat) in enumerate(coords):
        validate_lon_lat(lon, lat, field_prefix=f"coords[{i}].")
    if len(coords) < 2:
        return 0.0
    return float(_WGS84.line_length([c[0] for c in coords], [c[1] for c in coords]))


@dataclass(frozen=True)
class LocalProjection:
    """An azimuthal equidistant projection in metres centred on ``(centre_lon, centre_lat)``.

    Distances from the centre are exact; elsewhere the scale error grows with the square of the
    distance from the centre (about 0.004 % at 100 km), which is what makes it suitable for
    buffers, simplification and point-to-line distances over a city-sized area.
    """

    centre_lon: float
    centre_lat: float
    crs: CRS
    _forward: Transformer
    _inverse: Transformer

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        """Project one lon/lat point to metric x/y."""
        x, y = self._forward.transform(lon, lat)
        return float(x), float(y)

    def lonlat(self, x: float, y: float) -> LonLat:
        """Unproject one metric x/y point back to lon/lat."""
        lon, lat = self._inverse.transform(x, y)
        return float(lon), float(lat)

    def to_metric(self, geometry: BaseGeometry) -> BaseGeometry:
        """Project a lon/lat geometry into this projection's metres."""
        return shapely.transform(geometry, self._forward_array)

    def to_lonlat(self, geometry: BaseGeometry) -> BaseGeometry:
        """Unproject a geometry in this projection's metres back to lon/lat."""
        return shapely.transform(geometry, self._inverse_array)

    def _forward_array(self, coords: np.ndarray) -> np.ndarray:
        x, y = self._forward.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    def _inverse_array(self, coords: np.ndarray) -> np.ndarray:
        lon, lat = self._inverse.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])


def local_projection_at(lon: float, lat: float) -> LocalProjection:
    """Build a metric :class:`LocalProjection` centred on one lon/lat point."""
    lon, lat = validate_lon_lat(lon, lat, field_prefix="centre.")
    crs = CRS.from_proj4(
        f"+proj=aeqd +lat_0={lat!r} +lon_0={lon!r} +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
    )
    geographic = CRS.from_epsg(SRID)
    return LocalProjection(
        centre_lon=lon,
        centre_lat=lat,
        crs=crs,
        _forward=Transformer.from_crs(geographic, crs, always_xy=True),
        _inverse=Transformer.from_crs(crs, geographic, always_xy=True),
    )


def local_projection(points: Iterable[LonLat] | BaseGeometry) -> LocalProjection:
    """Build a metric :class:`LocalProjection` centred on a set of lon/lat points or a geometry.

    The centre is the middle of the latitude range and the circular mean of the longitudes, so a
    set of points straddling the antimeridian is centred correctly.
    """
    if isinstance(points, BaseGeometry):
        coords = shapely.get_coordinates(validate_geometry(points))
    else:
        pairs = [
            validate_lon_lat(lon, lat, field_prefix=f"points[{i}].")
            for i, (lon, lat) in enumerate(points)
        ]
        if not pairs:
            raise InvalidParameter("points", pairs, "need at least one point")
        coords = np.array(pairs, dtype=float)
    lons = np.radians(coords[:, 0])
    centre_lon = math.degrees(math.atan2(float(np.sin(lons).mean()), float(np.cos(lons).mean())))
    centre_lat = (float(coords[:, 1].min()) + float(coords[:, 1].max())) / 2.0
    return local_projection_at(centre_lon, centre_lat)


def buffer_m(geometry: BaseGeometry, distance_m: float, *, quad_segs: int = 16) -> BaseGeometry:
    """Buffer a lon/lat geometry by ``distance_m`` metres; the result is lon/lat again.

    The buffer is computed in a :class:`LocalProjection` centred on the geometry.
    """
    validate_geometry(geometry)
    distance_m = real_number("distance_m", distance_m, minimum=-math.inf)
    projection = local_projection(geometry)
    buffered = projection.to_metric(geometry).buffer(distance_m, quad_segs=quad_segs)
    return projection.to_lonlat(buffered)
