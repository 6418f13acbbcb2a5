"""gis.tracks: simplification with a metric tolerance, length, jump filtering."""

from __future__ import annotations

import pytest

from gis import geo
from gis.errors import InvalidCoordinate, InvalidParameter
from gis.tracks import TrackPoint, drop_implausible_jumps, simplify_track, track_length_m

LAT = 60.17
# Metres per degree near Helsinki, only to lay out test tracks.
M_PER_DEG_LON = geo.distance_m(24.9, LAT, 25.9, LAT)
M_PER_DEG_LAT = geo.distance_m(24.9, LAT - 0.5, 24.9, LAT + 0.5)


def point_at(east_m: float, north_m: float, t_s: float) -> TrackPoint:
    return TrackPoint(24.9 + east_m / M_PER_DEG_LON, LAT + north_m / M_PER_DEG_LAT, t_s)


def zigzag(amplitude_m: float) -> list[TrackPoint]:
    """A track heading east for 1 km, wobbling ± amplitude_m north/south every 50 m."""
    return [
        point_at(50 * i, amplitude_m * (-1) ** i if 0 < i < 20 else 0, 5.0 * i) for i in range(21)
    ]


def test_simplify_removes_points_within_tolerance_and_keeps_endpoints() -> None:
    track = zigzag(2.0)
    simplified = simplify_track(track, tolerance_m=5.0)
    assert simplified == [track[0], track[-1]]
    assert simplified[0] is track[0] and simplified[-1] is track[-1]


def test_simplify_keeps_points_beyond_tolerance() -> None:
    track = zigzag(2.0)
    assert simplify_track(track, tolerance_m=1.0) == track
    assert simplify_track(track, tolerance_m=0) == track


def test_simplify_keeps_a_corner_and_original_timestamps() -> None:
    leg_east = [point_at(10 * i, 0.5 * (i % 2), i) for i in range(11)]  # 100 m east, 0.5 m wobble
    leg_north = [point_at(100, 10 * i, 10 + i) for i in range(1, 11)]  # then 100 m north
    track = leg_east + leg_north
    simplified = simplify_track(track, tolerance_m=3.0)
    assert [p.t_s for p in simplified] == [0, 10, 20]
    assert simplified[1] is track[10]


def test_simplify_short_and_closed_tracks() -> None:
    assert simplify_track([], 10) == []
    two = [point_at(0, 0, 0), point_at(100, 0, 10)]
    assert simplify_track(two, 10) == two
    loop = [
        point_at(0, 0, 0),
        point_at(100, 0, 10),
        point_at(100, 100, 20),
        point_at(0, 100, 30),
        point_at(0, 0, 40),
    ]
    simplified = simplify_track(loop, 5)
    assert simplified[0] is loop[0] and simplified[-1] is loop[-1]
    with pytest.raises(InvalidParameter):
        simplify_track(loop, -1)


def test_track_length_is_geodesic_metres() -> None:
    track = [point_at(0, 0, 0), point_at(300, 0, 30), point_at(300, 400, 70)]
    assert track_length_m(track) == pytest.approx(700, rel=1e-3)
    assert track_length_m(track[:1]) == 0.0


def test_jump_filter_drops_a_spike_but_keeps_the_next_good_fix() -> None:
    track = [point_at(10 * i, 0, i) for i in range(10)]  # 10 m/s
    spike = point_at(5_000, 3_000, 4.5)
    noisy = [*track[:5], spike, *track[5:]]
    assert drop_implausible_jumps(noisy, max_speed_mps=40) == track


def test_jump_filter_threshold_and_ordering() -> None:
    a, b = point_at(0, 0, 0), point_at(100, 0, 2)  # 50 m/s
    assert drop_implausible_jumps([a, b], max_speed_mps=60) == [a, b]
    assert drop_implausible_jumps([a, b], max_speed_mps=40) == [a]
    duplicate_time = point_at(5, 0, 0)
    out_of_order = point_at(10, 0, -5)
    assert drop_implausible_jumps([a, duplicate_time, out_of_order, b], 60) == [a, b]
    assert drop_implausible_jumps([], 40) == []
    with pytest.raises(InvalidParameter):
        drop_implausible_jumps([a, b], max_speed_mps=0)


def test_track_point_validates_coordinates() -> None:
    with pytest.raises(InvalidCoordinate):
        TrackPoint(200.0, 60.0, 0.0)
