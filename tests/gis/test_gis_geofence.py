"""gis.geofence: point in area and distances in metres, including at high latitude."""

from __future__ import annotations

import pytest
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from gis import geo
from gis.errors import InvalidCoordinate, InvalidGeometry, InvalidParameter
from gis.geofence import distance_to_geometry_m, point_in_area, within_m, within_radius_m

# Longyearbyen, Svalbard: 0.001 degree of longitude is ~22.8 m, of latitude ~111.6 m.
LYR = (15.65, 78.22)
SQUARE = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
WITH_HOLE = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], holes=[[(4, 4), (6, 4), (6, 6), (4, 6)]])


def test_point_in_area_inside_outside_boundary() -> None:
    assert point_in_area(SQUARE, 0.5, 0.5)
    assert not point_in_area(SQUARE, 1.5, 0.5)
    assert point_in_area(SQUARE, 1.0, 0.5)  # edge counts as inside
    assert point_in_area(SQUARE, 0.0, 0.0)  # so does a vertex


def test_point_in_hole_is_outside_and_multipolygon_parts_count() -> None:
    assert not point_in_area(WITH_HOLE, 5, 5)
    assert point_in_area(WITH_HOLE, 2, 2)
    both = MultiPolygon([SQUARE, Polygon([(5, 5), (6, 5), (6, 6), (5, 6)])])
    assert point_in_area(both, 5.5, 5.5)
    assert not point_in_area(both, 3, 3)


def test_point_in_area_rejects_non_areas_and_bad_points() -> None:
    with pytest.raises(InvalidGeometry):
        point_in_area(LineString([(0, 0), (1, 1)]), 0.5, 0.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidCoordinate):
        point_in_area(SQUARE, 0.5, 100)


def test_radius_is_metres_not_degrees_at_high_latitude() -> None:
    east = (LYR[0] + 0.002, LYR[1])  # ~45.6 m east
    north = (LYR[0], LYR[1] + 0.0004)  # ~44.7 m north
    assert within_radius_m(*LYR, *east, 50)
    assert not within_radius_m(*LYR, *east, 40)
    assert within_radius_m(*LYR, *north, 50)
    assert not within_radius_m(*LYR, *north, 40)


def test_radius_is_inclusive_and_validated() -> None:
    east = (LYR[0] + 0.002, LYR[1])
    exact = geo.distance_m(*LYR, *east)
    assert within_radius_m(*LYR, *east, exact)
    assert within_radius_m(*LYR, *LYR, 0)
    with pytest.raises(InvalidParameter):
        within_radius_m(*LYR, *east, -1)
    with pytest.raises(InvalidParameter):
        within_m(Point(LYR), *east, float("nan"))


def test_distance_to_line_at_high_latitude() -> None:
    meridian = LineString([(LYR[0], LYR[1] - 0.01), (LYR[0], LYR[1] + 0.01)])
    east = (LYR[0] + 0.001, LYR[1])
    expected = geo.distance_m(*east, *LYR)  # foot of the perpendicular, ~22.8 m
    assert 22 < expected < 24
    assert distance_to_geometry_m(meridian, *east) == pytest.approx(expected, rel=0.001)
    assert within_m(meridian, *east, 25)
    assert not within_m(meridian, *east, 20)


def test_distance_to_polygon_is_zero_inside_and_metric_outside() -> None:
    d = 0.001
    fence = Polygon(
        [
            (LYR[0] - d, LYR[1] - d),
            (LYR[0] + d, LYR[1] - d),
            (LYR[0] + d, LYR[1] + d),
            (LYR[0] - d, LYR[1] + d),
        ]
    )
    assert distance_to_geometry_m(fence, *LYR) == 0.0
    outside = (LYR[0] + 3 * d, LYR[1])  # two thousandths of a degree east of the edge: ~45.6 m
    expected = geo.distance_m(LYR[0] + d, LYR[1], *outside)
    assert distance_to_geometry_m(fence, *outside) == pytest.approx(expected, rel=0.001)
    assert within_m(fence, *outside, 50)
    assert not within_m(fence, *outside, 40)


def test_distance_to_point_geometry_is_geodesic() -> None:
    helsinki, tallinn = (24.9384, 60.1699), (24.7536, 59.4370)
    assert distance_to_geometry_m(Point(tallinn), *helsinki) == pytest.approx(
        geo.distance_m(*helsinki, *tallinn)
    )
    assert 80_000 < geo.distance_m(*helsinki, *tallinn) < 83_000


def test_geometry_is_validated() -> None:
    with pytest.raises(InvalidGeometry):
        distance_to_geometry_m(Polygon(), *LYR)
