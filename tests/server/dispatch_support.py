"""Helpers for the crews and dispatch tests: the Helsinki road graph, crews, tickets, a live
server for real concurrent requests, and an independent brute-force router."""

from __future__ import annotations

import heapq
import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import text

from server.devstack import free_port
from tests.support import cli_env

ROOT = Path(__file__).resolve().parents[2]
PBF = ROOT / "var" / "data" / "Helsinki.osm.pbf"


def ensure_pbf() -> Path:
    if not PBF.exists():
        subprocess.run([str(ROOT / "scripts" / "fetch-demo-data.sh"), str(PBF.parent)],
                       check=True, timeout=300)
    return PBF


def import_roads_cli(database_url: str) -> subprocess.CompletedProcess:
    env = cli_env(CREWLINE_DATABASE_URL=database_url, CREWLINE_ENV="test", COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "server.cli", "dispatch", "import-roads",
                           "--pbf", str(ensure_pbf())], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)


def make_crew(api, clock, name: str, lon: float, lat: float, *, skills=("water_main",),
              shift="on_shift", capacity=1, members=()) -> dict:
    r = api.post("manager", "/api/v1/crews", json={
        "name": name, "skills": list(skills), "shift": shift, "capacity": capacity,
        "members": list(members), "vehicle": "van"})
    assert r.status_code == 201, r.text
    crew = r.json()
    if lon is not None:
        r = api.post("dispatcher", f"/api/v1/crews/{crew['id']}/positions", json={
            "fixes": [{"lon": lon, "lat": lat, "at": clock.now().isoformat(), "accuracy_m": 5}]})
        assert r.status_code == 200, r.text
    return crew


def make_ticket(api, lon: float, lat: float, *, category="repair", priority="normal",
                description="水管漏水 / leaking pipe") -> dict:
    r = api.post("agent", "/api/v1/tickets", json={
        "category": category, "priority": priority, "description": description,
        "location": {"lon": lon, "lat": lat}})
    assert r.status_code == 201, r.text
    return r.json()["ticket"]


def point_on_edge(engine, edge_id: int, fraction: float) -> tuple[float, float]:
    with engine.connect() as conn:
        x, y = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_LineInterpolatePoint(geom, :f) AS p "
            "FROM road_edges WHERE id = :id) s"), {"f": fraction, "id": edge_id}).one()
    return float(x), float(y)


def brute_force_etas(engine, ticket: tuple[float, float], crews: dict[int, tuple[float, float]],
                     speed_mps: float = 30 / 3.6) -> dict[int, float]:
    """ETA of every crew by plain Dijkstra on a Python copy of the graph in which each point is
    a node splitting its nearest edge — independent of the server's partial-edge arithmetic."""
    with engine.connect() as conn:
        edges = {r.id: r for r in conn.execute(text(
            "SELECT id, source, target, cost, reverse_cost FROM road_edges"))}
        snaps = {}
        for key, (lon, lat) in {0: ticket, **crews}.items():
            snaps[key] = conn.execute(text(
                "SELECT e.id, ST_LineLocatePoint(e.geom, p.pt) AS f, "
                "ST_Distance(geography(e.geom), geography(p.pt)) AS d "
                "FROM (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p, road_edges e "
                "ORDER BY d LIMIT 1"), {"lon": lon, "lat": lat}).one()
    adj: dict[object, list[tuple[object, float]]] = {}

    def arc(a, b, cost):
        if cost >= 0:
            adj.setdefault(a, []).append((b, cost))

    on_edge: dict[int, list[tuple[float, object]]] = {}
    for key, s in snaps.items():
        on_edge.setdefault(s.id, []).append((s.f, ("p", key)))
    for e in edges.values():
        stops = [(0.0, e.source), *sorted(on_edge.get(e.id, [])), (1.0, e.target)]
        for (f1, n1), (f2, n2) in itertools.pairwise(stops):
            arc(n1, n2, (f2 - f1) * e.cost if e.cost >= 0 else -1)
            arc(n2, n1, (f2 - f1) * e.reverse_cost if e.reverse_cost >= 0 else -1)
    out = {}
    for key in crews:
        dist = {("p", key): 0.0}
        heap = [(0.0, 0, ("p", key))]
        n = 0
        while heap:
            d, _, node = heapq.heappop(heap)
            if node == ("p", 0):
                out[key] = d + (snaps[key].d + snaps[0].d) / speed_mps
                break
            if d > dist.get(node, float("inf")):
                continue
            for nxt, c in adj.get(node, []):
                if d + c < dist.get(nxt, float("inf")):
                    dist[nxt] = d + c
                    n += 1
                    heapq.heappush(heap, (d + c, n, nxt))
    return out


class LiveServer:
    """The test app served by uvicorn in a thread: real sockets, real concurrency, the test's
    injected clock."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("live server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
