"""Road graph building and travel-time arithmetic for routing on pgRouting-style edge tables.

A graph is built from :class:`gis.osm.DrivableWay` pieces: ways are split at every OSM node shared
by two or more ways (and at their ends), so edges meet only at junctions. Each edge has a travel
cost in seconds in its digitised direction (``cost_s``) and against it (``reverse_cost_s``); a
negative cost means that direction is forbidden (one-way street), as pgRouting expects.

Points that are not on a vertex (a crew mid-block, a ticket at a house) are placed on an edge at
a ``fraction`` of its length (:class:`EdgePosition`); :func:`departures`, :func:`arrivals` and
:func:`same_edge_leg` give the partial-edge costs that make one-way streets count for them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gis._checks import real_number
from gis.errors import InvalidParameter
from gis.geo import LonLat, line_length_m
from gis.osm import DrivableWay

# Free-flow urban speeds by OSM road class (km/h) when a way has no usable maxspeed tag.
DEFAULT_SPEEDS_KMH: dict[str, float] = {
    "motorway": 90.0, "motorway_link": 50.0, "trunk": 70.0, "trunk_link": 40.0,
    "primary": 40.0, "primary_link": 30.0, "secondary": 35.0, "secondary_link": 30.0,
    "tertiary": 30.0, "tertiary_link": 25.0, "unclassified": 25.0, "residential": 25.0,
    "living_street": 10.0, "service": 15.0,
}
FALLBACK_SPEED_KMH: float = 15.0
"""Speed of a class missing from :data:`DEFAULT_SPEEDS_KMH` (footway with motorcar access, …)."""
URBAN_SPEED_FACTOR: float = 0.8
"""A tagged limit is a ceiling, not a travel speed: junctions and traffic take about a fifth."""


def way_speed_kmh(highway: str, maxspeed_kmh: float | None) -> float:
    """Travel speed for a way: 80 % of its tagged limit, else its class default, never above the
    class default for slow classes (a ``service`` road tagged 50 is still a yard)."""
    default = DEFAULT_SPEEDS_KMH.get(highway, FALLBACK_SPEED_KMH)
    if maxspeed_kmh is None:
        return default
    speed = real_number("maxspeed_kmh", maxspeed_kmh, inclusive=False) * URBAN_SPEED_FACTOR
    return min(speed, default) if default <= 15.0 else speed


@dataclass(frozen=True, slots=True)
class RoadSegment:
    """An edge of the graph: from ``source_node`` to ``target_node`` (OSM node ids)."""

    osm_id: int
    highway: str
    name: str | None
    oneway: int
    speed_kmh: float
    source_node: int
    target_node: int
    coords: tuple[LonLat, ...]
    length_m: float
    cost_s: float
    reverse_cost_s: float


def split_ways(ways: Iterable[DrivableWay]) -> tuple[dict[int, LonLat], list[RoadSegment]]:
    """Split ways into junction-to-junction segments; return the vertices (OSM node id → lon/lat)
    and the segments. Zero-length pieces (repeated nodes) are dropped."""
    ways = list(ways)
    uses: dict[int, int] = {}
    for way in ways:
        for node in way.node_ids:
            uses[node] = uses.get(node, 0) + 1
    vertices: dict[int, LonLat] = {}
    segments: list[RoadSegment] = []
    for way in ways:
        speed = way_speed_kmh(way.highway, way.maxspeed_kmh)
        mps = speed / 3.6
        start = 0
        last = len(way.node_ids) - 1
        for i in range(1, last + 1):
            if i != last and uses[way.node_ids[i]] < 2:
                continue
            coords = way.coords[start:i + 1]
            length = line_length_m(coords)
            if length > 0:
                a, b = way.node_ids[start], way.node_ids[i]
                vertices[a], vertices[b] = way.coords[start], way.coords[i]
                seconds = length / mps
                segments.append(RoadSegment(
                    osm_id=way.osm_id, highway=way.highway, name=way.name, oneway=way.oneway,
                    speed_kmh=speed, source_node=a, target_node=b, coords=tuple(coords),
                    length_m=length, cost_s=-1.0 if way.oneway == -1 else seconds,
                    reverse_cost_s=-1.0 if way.oneway == 1 else seconds))
            start = i
    return vertices, segments


@dataclass(frozen=True, slots=True)
class EdgePosition:
    """A point placed on an edge at ``fraction`` (0 = source vertex, 1 = target vertex)."""

    edge_id: int
    source: int
    target: int
    cost_s: float
    reverse_cost_s: float
    length_m: float
    fraction: float

    def __post_init__(self) -> None:
        if not 0.0 <= real_number("fraction", self.fraction) <= 1.0:
            raise InvalidParameter("fraction", self.fraction, "must be within [0, 1]")


@dataclass(frozen=True, slots=True)
class Access:
    """Getting between a point on an edge and one of the edge's vertices."""

    vertex: int
    seconds: float
    metres: float


def departures(p: EdgePosition) -> list[Access]:
    """The vertices reachable from the point by driving along its edge, legally."""
    out = []
    if p.cost_s >= 0:
        out.append(Access(p.target, (1 - p.fraction) * p.cost_s, (1 - p.fraction) * p.length_m))
    if p.reverse_cost_s >= 0:
        out.append(Access(p.source, p.fraction * p.reverse_cost_s, p.fraction * p.length_m))
    return out


def arrivals(p: EdgePosition) -> list[Access]:
    """The vertices from which the point is reached by driving along its edge, legally."""
    out = []
    if p.cost_s >= 0:
        out.append(Access(p.source, p.fraction * p.cost_s, p.fraction * p.length_m))
    if p.reverse_cost_s >= 0:
        out.append(Access(p.target, (1 - p.fraction) * p.reverse_cost_s,
                          (1 - p.fraction) * p.length_m))
    return out


def same_edge_leg(origin: EdgePosition, destination: EdgePosition) -> tuple[float, float] | None:
    """(seconds, metres) of driving straight along a shared edge, or None if not possible."""
    if origin.edge_id != destination.edge_id:
        return None
    delta = destination.fraction - origin.fraction
    cost = origin.cost_s if delta >= 0 else origin.reverse_cost_s
    if cost < 0:
        return None
    return abs(delta) * cost, abs(delta) * origin.length_m


@dataclass(frozen=True, slots=True)
class Leg:
    """The best way from an origin point to a destination point: total seconds and metres, and
    the graph vertices it leaves and joins the network by (None when it stays on one edge)."""

    seconds: float
    metres_partial: float
    depart: Access | None
    arrive: Access | None


def best_leg(origin: EdgePosition, destination: EdgePosition,
             vertex_seconds: dict[tuple[int, int], float]) -> Leg | None:
    """Cheapest origin → destination combining partial edges with graph costs
    ``vertex_seconds[(depart_vertex, arrive_vertex)]`` (0 when the vertices coincide). ``metres``
    counts only the partial edges; the caller adds the graph path's length. None: unreachable."""
    best: Leg | None = None
    direct = same_edge_leg(origin, destination)
    if direct is not None:
        best = Leg(direct[0], direct[1], None, None)
    for d in departures(origin):
        for a in arrivals(destination):
            graph = 0.0 if d.vertex == a.vertex else vertex_seconds.get((d.vertex, a.vertex))
            if graph is None:
                continue
            total = d.seconds + graph + a.seconds
            if best is None or total < best.seconds:
                best = Leg(total, d.metres + a.metres, d, a)
    return best


def stitch(pieces: Sequence[Sequence[LonLat]]) -> list[LonLat]:
    """Join polylines end to start into one, dropping repeated points at the joints."""
    out: list[LonLat] = []
    for piece in pieces:
        for point in piece:
            if not out or (round(out[-1][0], 9), round(out[-1][1], 9)) != (
                    round(point[0], 9), round(point[1], 9)):
                out.append((float(point[0]), float(point[1])))
    return out
