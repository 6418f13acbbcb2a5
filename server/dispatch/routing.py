"""Routing queries on the pgRouting edge table: snapping points to edges, travel costs from many
crews to one place, and the paths of the chosen few. Pure arithmetic lives in gis.routing.

Costs to one ticket are computed on the reversed graph (costs swapped), so a single Dijkstra from
the ticket's edge ends reaches every candidate: one-to-many instead of one search per crew.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from shapely.geometry import LineString
from shapely.ops import substring
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.geo import LonLat
from gis.routing import EdgePosition
from server.models import SRID

EDGES_SQL = "SELECT id, source, target, cost, reverse_cost FROM road_edges"
REVERSED_EDGES_SQL = ("SELECT id, source, target, reverse_cost AS cost, cost AS reverse_cost "
                      "FROM road_edges")


@dataclass(frozen=True)
class Snap:
    """Where a point joins the road graph (None position: farther than the snapping limit)."""

    lon: float
    lat: float
    position: EdgePosition | None
    distance_m: float | None
    edge_geojson: str | None = None  # the snapped edge, for cutting the route's first/last piece


# The nearest edge to a point ``{pt}`` in metres: the geography index gives the nearest few on the
# sphere, the spheroid decides among them.
NEAREST_EDGE = """
CROSS JOIN LATERAL (
  SELECT n.*, ST_Distance(geography(n.geom), geography({pt})) AS dist_m,
         ST_LineLocatePoint(n.geom, {pt}) AS fraction
  FROM (SELECT id, source, target, cost, reverse_cost, length_m, geom FROM road_edges
        ORDER BY geography(geom) <-> geography({pt}) LIMIT 4) n
  ORDER BY dist_m LIMIT 1) e"""

_SNAP = text("""
SELECT p.key, e.id, e.source, e.target, e.cost, e.reverse_cost, e.length_m, e.fraction,
       e.dist_m, ST_AsGeoJSON(e.geom, 7) AS g
FROM (SELECT key, ST_SetSRID(ST_MakePoint(lon, lat), :srid) AS pt
      FROM unnest(CAST(:keys AS bigint[]), CAST(:lons AS float8[]), CAST(:lats AS float8[]))
           AS u(key, lon, lat)) p
""" + NEAREST_EDGE.format(pt="p.pt"))


def snap(session: Session, points: dict[int, LonLat], max_m: float) -> dict[int, Snap]:
    """Snap each keyed lon/lat point to the nearest edge within ``max_m`` metres."""
    if not points:
        return {}
    keys = list(points)
    rows = session.execute(_SNAP, {"keys": keys, "lons": [points[k][0] for k in keys],
                                   "lats": [points[k][1] for k in keys], "srid": SRID}).all()
    out = {k: Snap(points[k][0], points[k][1], None, None) for k in keys}
    for key, *edge, g in rows:
        out[key] = snap_of(points[key], *edge, max_m=max_m, geojson=g)
    return out


def snap_of(point: LonLat, edge_id: int | None, source: int | None, target: int | None,
            cost: float | None, reverse_cost: float | None, length_m: float | None,
            fraction: float | None, dist: float | None, *, max_m: float,
            geojson: str | None = None) -> Snap:
    """A Snap from an edge row (all None: the point was never snapped)."""
    if edge_id is None or dist is None:
        return Snap(point[0], point[1], None, None)
    position = None
    if dist <= max_m:
        position = EdgePosition(edge_id=edge_id, source=source, target=target, cost_s=cost,
                                reverse_cost_s=reverse_cost, length_m=length_m,
                                fraction=min(max(float(fraction), 0.0), 1.0))
    return Snap(point[0], point[1], position, float(dist), geojson)


def edge_lines(session: Session, ids: set[int]) -> dict[int, LineString]:
    if not ids:
        return {}
    rows = session.execute(text("SELECT id, ST_AsGeoJSON(geom, 7) FROM road_edges "
                                "WHERE id = ANY(:ids)"), {"ids": sorted(ids)}).all()
    return {i: LineString(json.loads(g)["coordinates"]) for i, g in rows}


_COSTS = text("""
SELECT start_vid, end_vid, agg_cost
FROM pgr_dijkstraCost(:edges, CAST(:starts AS bigint[]), CAST(:ends AS bigint[]), true)
""")


def costs_to(session: Session, arrive: list[int], depart: list[int]
             ) -> dict[tuple[int, int], float]:
    """Seconds from each departure vertex to each arrival vertex: {(depart, arrive): s}."""
    if not arrive or not depart:
        return {}
    rows = session.execute(_COSTS, {"edges": REVERSED_EDGES_SQL, "starts": sorted(set(arrive)),
                                    "ends": sorted(set(depart))}).all()
    return {(d, a): float(cost) for a, d, cost in rows}


_PATHS = text("""
SELECT p.start_vid, p.end_vid, e.length_m,
       ST_AsGeoJSON(CASE WHEN e.target = p.node THEN e.geom ELSE ST_Reverse(e.geom) END, 7) AS g
FROM pgr_dijkstra(:edges, CAST(:starts AS bigint[]), CAST(:ends AS bigint[]), true) p
JOIN road_edges e ON e.id = p.edge
ORDER BY p.start_vid, p.end_vid, p.path_seq DESC
""")


def paths(session: Session, pairs: set[tuple[int, int]]
          ) -> dict[tuple[int, int], tuple[list[list[LonLat]], float]]:
    """For each (depart, arrive) pair: the edge polylines in driving order and their metres."""
    pairs = {(d, a) for d, a in pairs if d != a}
    if not pairs:
        return {}
    rows = session.execute(_PATHS, {"edges": REVERSED_EDGES_SQL,
                                    "starts": sorted({a for _, a in pairs}),
                                    "ends": sorted({d for d, _ in pairs})}).all()
    out: dict[tuple[int, int], tuple[list[list[LonLat]], float]] = {}
    for a, d, length_m, geojson in rows:
        if (d, a) not in pairs:
            continue
        pieces, metres = out.get((d, a), ([], 0.0))
        pieces.append([tuple(c) for c in json.loads(geojson)["coordinates"]])
        out[(d, a)] = (pieces, metres + float(length_m))
    return out


def piece(line: LineString, start: float, end: float) -> list[LonLat]:
    """The part of an edge between two fractions, in travel order (start may exceed end)."""
    if start == end:
        p = line.interpolate(start, normalized=True)
        return [(p.x, p.y)]
    part = substring(line, start, end, normalized=True)
    coords = list(part.coords) if part.geom_type == "LineString" else [part.coords[0]]
    return [(float(x), float(y)) for x, y in coords]
