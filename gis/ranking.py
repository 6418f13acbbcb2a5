"""Ranking of dispatch candidates (crews) for a job site by estimated time of arrival.

A candidate's ETA comes from the road network when the router could give one; otherwise it is
estimated from a distance at a configured speed and the result says so, so the dispatcher sees
which suggestions rest on an estimate.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from gis._checks import real_number
from gis.errors import InvalidParameter
from gis.geo import distances_m, validate_lon_lat

DEFAULT_FALLBACK_SPEED_MPS: float = 30.0 / 3.6
"""Average urban driving speed (30 km/h) used when no road ETA is known."""

DEFAULT_DETOUR_FACTOR: float = 1.3
"""Typical ratio of road distance to straight-line distance in a city street grid."""


class EtaSource(StrEnum):
    """Where a ranked candidate's ETA came from."""

    ROAD = "road"
    """The router's travel time."""
    ROAD_DISTANCE = "road_distance"
    """The router's distance at the fallback speed (no travel time known)."""
    STRAIGHT_LINE = "straight_line"
    """Geodesic distance times the detour factor, at the fallback speed."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A candidate for a job: its id, current lon/lat and, when routed, road ETA and distance."""

    id: Hashable
    lon: float
    lat: float
    road_eta_s: float | None = None
    road_distance_m: float | None = None

    def __post_init__(self) -> None:
        validate_lon_lat(self.lon, self.lat, field_prefix=f"candidate[{self.id!r}].")
        if self.road_eta_s is not None:
            real_number("road_eta_s", self.road_eta_s)
        if self.road_distance_m is not None:
            real_number("road_distance_m", self.road_distance_m)


@dataclass(frozen=True, slots=True)
class RankedCandidate:
    """A candidate with its rank (1 = best), ETA, distances and where the ETA came from."""

    rank: int
    candidate: Candidate
    eta_s: float
    straight_line_m: float
    eta_source: EtaSource

    @property
    def used_fallback(self) -> bool:
        """True when the ETA is an estimate rather than the router's travel time."""
        return self.eta_source is not EtaSource.ROAD

    @property
    def distance_m(self) -> float:
        """Road distance when known, otherwise the straight-line (geodesic) distance."""
        road = self.candidate.road_distance_m
        return road if road is not None else self.straight_line_m


def rank_candidates(
    target_lon: float,
    target_lat: float,
    candidates: Sequence[Candidate],
    *,
    fallback_speed_mps: float = DEFAULT_FALLBACK_SPEED_MPS,
    detour_factor: float = DEFAULT_DETOUR_FACTOR,
    limit: int | None = None,
) -> list[RankedCandidate]:
    """Rank candidates for a target by ETA, best first.

    ETA precedence per candidate: ``road_eta_s``; else ``road_distance_m / fallback_speed_mps``;
    else geodesic distance * ``detour_factor`` / ``fallback_speed_mps`` (the detour factor keeps
    unrouted candidates from looking better than routed ones merely because a straight line is
    shorter than a street). Ties keep straight-line distance, then input order. ``limit`` keeps
    only the first N.
    """
    target_lon, target_lat = validate_lon_lat(target_lon, target_lat, field_prefix="target.")
    speed = real_number("fallback_speed_mps", fallback_speed_mps, inclusive=False)
    detour = real_number("detour_factor", detour_factor, minimum=1.0)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidParameter("limit", limit, "must be a non-negative integer")

    straight = distances_m(target_lon, target_lat, [(c.lon, c.lat) for c in candidates])
    scored: list[tuple[float, float, int, Candidate, EtaSource]] = []
    for index, (candidate, line_m) in enumerate(zip(candidates, straight, strict=True)):
        if candidate.road_eta_s is not None:
            eta, source = candidate.road_eta_s, EtaSource.ROAD
        elif candidate.road_distance_m is not None:
            eta, source = candidate.road_distance_m / speed, EtaSource.ROAD_DISTANCE
        else:
            eta, source = line_m * detour / speed, EtaSource.STRAIGHT_LINE
        scored.append((eta, line_m, index, candidate, source))
    scored.sort(key=lambda item: (item[0], item[1], item[2]))
    if limit is not None:
        scored = scored[:limit]
    return [
        RankedCandidate(rank=i, candidate=c, eta_s=eta, straight_line_m=line_m, eta_source=source)
        for i, (eta, line_m, _, c, source) in enumerate(scored, start=1)
    ]
