"""GPS tracks: simplification with a tolerance in metres, length, and jump filtering."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString

from gis._checks import real_number
from gis.geo import distance_m, line_length_m, local_projection, validate_lon_lat

DEFAULT_MAX_SPEED_MPS: float = 55.0
"""About 200 km/h: faster than any service van, slower than a typical GPS multipath jump."""


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """One GPS fix: lon/lat (:data:`gis.geo.SRID`) and ``t_s``, seconds since the Unix epoch."""

    lon: float
    lat: float
    t_s: float

    def __post_init__(self) -> None:
        validate_lon_lat(self.lon, self.lat)
        real_number("t_s", self.t_s, minimum=-math.inf)


def track_length_m(points: Sequence[TrackPoint]) -> float:
    """Geodesic length in metres along the track (0 for fewer than two points)."""
    return line_length_m([(p.lon, p.lat) for p in points])


def simplify_track(points: Sequence[TrackPoint], tolerance_m: float) -> list[TrackPoint]:
    """Douglas-Peucker simplification of a track with a tolerance in metres.

    The track is projected into a local metric projection, simplified there with shapely, and the
    surviving vertices are mapped back to the original :class:`TrackPoint` objects, so timestamps
    and coordinates come through unchanged (no round-trip error). The first and last points are
    always kept; every removed point lies within ``tolerance_m`` of the simplified line.
    """
    tolerance_m = real_number("tolerance_m", tolerance_m)
    if len(points) < 3 or tolerance_m == 0.0:
        return list(points)
    projection = local_projection([(p.lon, p.lat) for p in points])
    metric = projection.to_metric(LineString([(p.lon, p.lat) for p in points]))
    metric_coords = shapely.get_coordinates(metric)
    kept_coords = shapely.get_coordinates(metric.simplify(tolerance_m, preserve_topology=False))

    # Douglas-Peucker keeps a subsequence of the input vertices with their exact coordinates, so
    # a forward scan recovers which original points survived (duplicates resolve to the first).
    kept: list[TrackPoint] = []
    cursor = 0
    for xy in kept_coords:
        while cursor < len(points) and not np.array_equal(metric_coords[cursor], xy):
            cursor += 1
        if cursor == len(points):
            break
        kept.append(points[cursor])
        cursor += 1
    if not kept or kept[-1] is not points[-1]:
        kept.append(points[-1])
    if kept[0] is not points[0]:
        kept.insert(0, points[0])
    return kept


def drop_implausible_jumps(
    points: Sequence[TrackPoint], max_speed_mps: float = DEFAULT_MAX_SPEED_MPS
) -> list[TrackPoint]:
    """Drop fixes that would need a speed above ``max_speed_mps`` to reach from the last kept fix.

    Points must be in time order. The first fix is trusted. A fix whose time is not after the last
    kept fix (duplicate or out of order) is dropped. Because each fix is compared with the last
    *kept* one, a single spike is removed without also discarding the good fix after it.
    """
    max_speed_mps = real_number("max_speed_mps", max_speed_mps, inclusive=False)
    if not points:
        return []
    kept = [points[0]]
    for point in points[1:]:
        last = kept[-1]
        elapsed = point.t_s - last.t_s
        if elapsed <= 0:
            continue
        if distance_m(last.lon, last.lat, point.lon, point.lat) / elapsed <= max_speed_mps:
            kept.append(point)
    return kept
