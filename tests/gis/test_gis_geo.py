"""gis.geo: validation, geodesic distance and bearing, local metric projections."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from shapely.geometry import LineString, Point, Polygon

from gis import geo
from gis.errors import GisError, InvalidCoordinate, InvalidGeometry, InvalidParameter

# Helsinki Central Station (main entrance) and the middle of Senate Square.
STATION = (24.94137, 60.17116)
SENATE_SQUARE = (24.95225, 60.16952)


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Independent spherical reference (mean Earth radius); agrees with WGS84 to ~0.5 %."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def test_srid_is_wgs84() -> None:
    assert geo.SRID == 4326


def test_station_to_senate_square_distance() -> None:
    d = geo.distance_m(*STATION, *SENATE_SQUARE)
    assert 600 < d < 660
    assert d == pytest.approx(haversine_m(*STATION, *SENATE_SQUARE), rel=0.005)
    # Treating degrees as metres-at-the-equator would be twice as long at this latitude.
    naive = math.hypot(STATION[0] - SENATE_SQUARE[0], STATION[1] - SENATE_SQUARE[1]) * 111_320
    assert naive > 1.9 * d


def test_distance_matches_wgs84_degree_lengths() -> None:
    assert geo.distance_m(0, 0, 1, 0) == pytest.approx(111_319.49, abs=0.01)
    assert geo.distance_m(0, 0, 0, 1) == pytest.approx(110_574.39, abs=0.01)
    assert geo.distance_m(*STATION, *STATION) == 0.0


def test_distances_vectorised_matches_scalar() -> None:
    points = [SENATE_SQUARE, (25.0, 60.2), STATION]
    many = geo.distances_m(*STATION, points)
    assert many == pytest.approx([geo.distance_m(*STATION, *p) for p in points])
    assert geo.distances_m(*STATION, []) == []


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ((24.94, 60.18), 0.0),
        ((24.95, 60.17), 90.0),
        ((24.94, 60.16), 180.0),
        ((24.93, 60.17), 270.0),
    ],
)
def test_bearing_cardinal_directions(to: tuple[float, float], expected: float) -> None:
    assert geo.initial_bearing_deg(24.94, 60.17, *to) == pytest.approx(expected, abs=0.01)


def test_bearing_is_in_range_and_undefined_for_same_point() -> None:
    bearing = geo.initial_bearing_deg(*SENATE_SQUARE, *STATION)
    assert 0 <= bearing < 360
    assert 270 < bearing < 300  # west-north-west
    with pytest.raises(InvalidParameter):
        geo.initial_bearing_deg(*STATION, *STATION)


@pytest.mark.parametrize(
    ("lon", "lat", "field"),
    [
        (181.0, 60.0, "lon"),
        (-180.5, 60.0, "lon"),
        (24.9, 90.01, "lat"),
        (24.9, -91, "lat"),
        (math.nan, 60.0, "lon"),
        (24.9, math.inf, "lat"),
        ("24.9", 60.0, "lon"),
        (24.9, None, "lat"),
        (True, 60.0, "lon"),
    ],
)
def test_invalid_coordinates_are_rejected(lon: object, lat: object, field: str) -> None:
    with pytest.raises(InvalidCoordinate) as info:
        geo.validate_lon_lat(lon, lat)
    assert info.value.field == field
    assert isinstance(info.value, GisError) and isinstance(info.value, ValueError)
    assert info.value.code == "gis.invalid_coordinate"


def test_validation_accepts_limits_and_ints() -> None:
    assert geo.validate_lon_lat(-180, 90) == (-180.0, 90.0)
    assert geo.validate_lon_lat(180.0, -90.0) == (180.0, -90.0)


def test_distance_rejects_bad_input_with_field_prefix() -> None:
    with pytest.raises(InvalidCoordinate) as info:
        geo.distance_m(24.9, 60.1, 24.9, 95.0)
    assert info.value.field == "to.lat"


def test_validate_geometry() -> None:
    with pytest.raises(InvalidGeometry):
        geo.validate_geometry(Polygon())
    with pytest.raises(InvalidGeometry):
        geo.validate_geometry(LineString([(0, 0), (200, 0)]))
    with pytest.raises(InvalidGeometry):
        geo.validate_geometry(Point(0, math.nan))
    point = Point(24.9, 60.1)
    assert geo.validate_geometry(point) is point


def test_line_length_is_geodesic() -> None:
    coords = [STATION, SENATE_SQUARE, STATION]
    assert geo.line_length_m(coords) == pytest.approx(2 * geo.distance_m(*STATION, *SENATE_SQUARE))
    assert geo.line_length_m([STATION]) == 0.0


def test_local_projection_is_metric_and_round_trips() -> None:
    projection = geo.local_projection([STATION, SENATE_SQUARE])
    x1, y1 = projection.xy(*STATION)
    x2, y2 = projection.xy(*SENATE_SQUARE)
    assert math.hypot(x2 - x1, y2 - y1) == pytest.approx(
        geo.distance_m(*STATION, *SENATE_SQUARE), rel=1e-4
    )
    lon, lat = projection.lonlat(x1, y1)
    assert (lon, lat) == pytest.approx(STATION, abs=1e-9)
    line = LineString([STATION, SENATE_SQUARE])
    back = projection.to_lonlat(projection.to_metric(line))
    assert back.equals_exact(line, 1e-9)


def test_local_projection_centre_handles_antimeridian() -> None:
    projection = geo.local_projection([(179.9, -16.0), (-179.9, -17.0)])
    assert abs(projection.centre_lon) == pytest.approx(180.0, abs=1e-6)
    assert projection.centre_lat == pytest.approx(-16.5)
    with pytest.raises(InvalidParameter):
        geo.local_projection([])


def test_buffer_is_in_metres_at_high_latitude() -> None:
    centre = (15.65, 78.22)  # Longyearbyen: a degree of longitude is only ~22.8 km here
    disc = geo.buffer_m(Point(centre), 100.0, quad_segs=64)
    projection = geo.local_projection_at(*centre)
    assert projection.to_metric(disc).area == pytest.approx(math.pi * 100**2, rel=0.002)
    east_99 = (centre[0] + 99 / 22_800 * 1.0, centre[1])
    assert geo.distance_m(*centre, *east_99) < 100
    assert disc.covers(Point(east_99))
    east_110 = (centre[0] + 0.0048, centre[1])  # ~109 m
    assert not disc.covers(Point(east_110))


def test_gis_imports_no_server_framework_or_orm() -> None:
    code = (
        "import sys, gis.geo, gis.geofence, gis.ranking, gis.tracks, gis.osm, gis.errors\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'server', 'fastapi', 'sqlalchemy', 'geoalchemy2', 'kivy', 'mobile_app'}]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
