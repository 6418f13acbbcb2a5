"""Importing the drivable OSM ways into the pgRouting edge table (the only writer of the road
tables). Replaces the whole network in one transaction, so routing never sees half a graph."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.osm import DrivableWay, ScanProgress, iter_drivable_ways
from gis.routing import split_ways
from server.crews import service as crews
from server.models import SRID

Progress = Callable[[str, int, int | None], None]
"""progress(stage, done, total): total None while unknown."""


@dataclass(frozen=True)
class ImportReport:
    ways: int
    vertices: int
    edges: int
    one_way_edges: int
    components: int


def read_ways(pbf: Path, progress: Progress | None = None) -> list[DrivableWay]:
    def on_scan(p: ScanProgress) -> None:
        if progress:
            progress("reading drivable ways", p.items_yielded,
                     p.items_yielded if p.finished else None)

    return list(iter_drivable_ways(pbf, progress=on_scan, progress_every=2000))


def import_network(session: Session, ways: Iterable[DrivableWay],
                   progress: Progress | None = None, batch: int = 500) -> ImportReport:
    ways = list(ways)
    nodes, segments = split_ways(ways)
    vertex_id = {node: i for i, node in enumerate(sorted(nodes), start=1)}
    session.execute(text("TRUNCATE road_edges, road_vertices RESTART IDENTITY"))
    total = len(nodes) + len(segments)
    done = 0
    rows = [{"id": vid, "osm": node, "lon": nodes[node][0], "lat": nodes[node][1]}
            for node, vid in vertex_id.items()]
    for i in range(0, len(rows), batch):
        session.execute(text(
            "INSERT INTO road_vertices (id, osm_node_id, geom) VALUES "
            "(:id, :osm, ST_SetSRID(ST_MakePoint(:lon, :lat), :srid))"),
            [{**r, "srid": SRID} for r in rows[i:i + batch]])
        done += len(rows[i:i + batch])
        if progress:
            progress("writing the road graph", done, total)
    edge_rows = [{
        "id": i, "source": vertex_id[s.source_node], "target": vertex_id[s.target_node],
        "cost": s.cost_s, "reverse_cost": s.reverse_cost_s, "length_m": s.length_m,
        "speed": s.speed_kmh, "osm_id": s.osm_id, "highway": s.highway[:32],
        "name": s.name[:200] if s.name else None, "oneway": s.oneway,
        "wkt": "LINESTRING(" + ",".join(f"{x!r} {y!r}" for x, y in s.coords) + ")", "srid": SRID,
    } for i, s in enumerate(segments, start=1)]
    for i in range(0, len(edge_rows), batch):
        chunk = edge_rows[i:i + batch]
        session.execute(text(
            "INSERT INTO road_edges (id, source, target, cost, reverse_cost, length_m, speed_kmh, "
            "osm_id, highway, name, oneway, geom) VALUES (:id, :source, :target, :cost, "
            ":reverse_cost, :length_m, :speed, :osm_id, :highway, :name, :oneway, "
            "ST_GeomFromText(:wkt, :srid))"), chunk)
        done += len(chunk)
        if progress:
            progress("writing the road graph", done, total)
    components = session.execute(text(
        "SELECT count(DISTINCT component) FROM pgr_connectedComponents("
        "'SELECT id, source, target, cost, reverse_cost FROM road_edges')")).scalar_one()
    crews.resnap(session)  # edge ids changed: every crew's snap with them
    session.execute(text("ANALYZE road_edges"))
    session.execute(text("ANALYZE road_vertices"))
    return ImportReport(ways=len(ways), vertices=len(nodes), edges=len(segments),
                        one_way_edges=sum(1 for s in segments if s.oneway),
                        components=int(components))


def network_size(session: Session) -> int:
    return int(session.execute(text("SELECT count(*) FROM road_edges")).scalar_one())
