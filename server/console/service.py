"""Read models of the web console: the dispatch queue, crews on the map, the offline basemap and
the wall screen's summary. One SQL statement each; rows are plain dicts ready for JSON (the same
shape over HTTP and over the live WebSocket, so the page has one code path)."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from server.models.tickets import OPEN_STATUSES

_OPEN = "(" + ",".join(f"'{s}'" for s in OPEN_STATUSES) + ")"

# a ticket row: where it is, where it stands, its nearest running SLA deadline and its crew
_TICKETS = """
SELECT t.id, t.category, t.priority, t.status, t.sla_level, t.address, t.created_at,
       left(t.description, 160) AS summary, ST_X(t.location) AS lon, ST_Y(t.location) AS lat,
       a.crew_id, a.current_eta_s AS eta_s, a.arrived_at, c.clock AS due_clock, c.due_at, c.warn_at
FROM tickets t
LEFT JOIN dispatch_assignments a ON a.ticket_id = t.id AND a.ended_at IS NULL
LEFT JOIN LATERAL (SELECT s.clock, s.due_at, s.warn_at FROM ticket_sla_clocks s
                   WHERE s.ticket_id = t.id AND s.stopped_at IS NULL
                   ORDER BY s.due_at LIMIT 1) c ON true
WHERE {where}
ORDER BY c.due_at NULLS LAST, t.id
LIMIT :limit
"""

_CREWS = """
SELECT c.id, c.name, c.status, c.shift, c.active, c.capacity, c.skills,
       ST_X(c.position) AS lon, ST_Y(c.position) AS lat, c.position_at, c.heading_deg, c.speed_mps
FROM crews c WHERE {where} ORDER BY c.id LIMIT :limit
"""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _ticket(r) -> dict:
    return {"id": r["id"], "number": f"CL-{r['id']:07d}", "category": r["category"],
            "priority": r["priority"], "status": r["status"], "open": r["status"] in OPEN_STATUSES,
            "sla_level": r["sla_level"], "address": r["address"], "summary": r["summary"],
            "lon": None if r["lon"] is None else round(r["lon"], 7),
            "lat": None if r["lat"] is None else round(r["lat"], 7),
            "created_at": _iso(r["created_at"]), "crew_id": r["crew_id"], "eta_s": r["eta_s"],
            "arrived_at": _iso(r["arrived_at"]), "due_clock": r["due_clock"],
            "due_at": _iso(r["due_at"]), "warn_at": _iso(r["warn_at"])}


def queue(session: Session, *, limit: int = 500) -> list[dict]:
    """Open tickets, the nearest SLA deadline first (tickets with no running clock last)."""
    rows = session.execute(text(_TICKETS.format(where=f"t.status IN {_OPEN}")),
                           {"limit": limit}).mappings()
    return [_ticket(r) for r in rows]


def tickets_by_id(session: Session, ids: list[int]) -> list[dict]:
    """The rows of these tickets whatever their status (a closed one tells the page to drop it)."""
    if not ids:
        return []
    rows = session.execute(text(_TICKETS.format(where="t.id = ANY(:ids)")),
                           {"ids": ids, "limit": len(ids)}).mappings()
    return [_ticket(r) for r in rows]


def _crew(r, fresh_since: datetime) -> dict:
    return {"id": r["id"], "name": r["name"], "status": r["status"], "shift": r["shift"],
            "active": r["active"], "capacity": r["capacity"], "skills": list(r["skills"] or []),
            "lon": None if r["lon"] is None else round(r["lon"], 7),
            "lat": None if r["lat"] is None else round(r["lat"], 7),
            "at": _iso(r["position_at"]),
            "heading": None if r["heading_deg"] is None else round(r["heading_deg"]),
            "speed": None if r["speed_mps"] is None else round(r["speed_mps"], 1),
            "stale": r["position_at"] is None or r["position_at"] < fresh_since}


def crews(session: Session, fresh_since: datetime, *, limit: int = 10_000) -> list[dict]:
    """Active crews (with or without a position: the list shows them all)."""
    rows = session.execute(text(_CREWS.format(where="c.active")), {"limit": limit}).mappings()
    return [_crew(r, fresh_since) for r in rows]


# the same rows as _crew(), built by PostgreSQL as one JSON array: the live path sends thousands
# of crews a second and this keeps Python out of the per-row work
_CREWS_JSON = """
SELECT coalesce(jsonb_agg(jsonb_build_object(
    'id', c.id, 'name', c.name, 'status', c.status, 'shift', c.shift, 'active', c.active,
    'capacity', c.capacity, 'skills', c.skills,
    'lon', round(ST_X(c.position)::numeric, 7), 'lat', round(ST_Y(c.position)::numeric, 7),
    'at', c.position_at, 'heading', round(c.heading_deg::numeric),
    'speed', round(c.speed_mps::numeric, 1),
    'stale', c.position_at IS NULL OR c.position_at < :fresh) ORDER BY c.id), '[]')::text
FROM crews c WHERE c.id = ANY(:ids)
"""


def crews_json(session: Session, ids: list[int], fresh_since: datetime) -> str:
    """These crews' rows (as :func:`crews` gives them) as a JSON array text."""
    if not ids:
        return "[]"
    return session.execute(text(_CREWS_JSON), {"ids": ids, "fresh": fresh_since}).scalar_one()


# -- the offline basemap: the road graph as vector tiles -------------------------------------------
# Road classes drawn from a zoom level on (small roads only when zoomed in).
ROAD_MIN_ZOOM = {"motorway": 0, "trunk": 0, "primary": 0, "motorway_link": 10, "trunk_link": 10,
                 "primary_link": 11, "secondary": 10, "secondary_link": 12, "tertiary": 11,
                 "tertiary_link": 13, "unclassified": 13, "residential": 13, "living_street": 14,
                 "service": 15}
OTHER_MIN_ZOOM = 15
MIN_ZOOM, MAX_ZOOM = 8, 19

_BASEMAP = """
SELECT coalesce(json_agg(json_build_array(highway, name, coords)), '[]'::json)::text
FROM (SELECT highway, name,
             ST_AsGeoJSON(ST_Simplify(geom, :tol), 6)::json -> 'coordinates' AS coords
      FROM road_edges
      WHERE geom && ST_MakeEnvelope(:x1, :y1, :x2, :y2, 4326)
        AND (highway = ANY(:classes) OR :others)) r
"""


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """A slippy-map tile as (min_lon, min_lat, max_lon, max_lat)."""
    n = 2 ** z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


class TileCache:
    """Rendered tiles by (z, x, y), least recently used dropped; entries live ``ttl`` seconds so a
    re-imported road graph shows within a minute without any signal from the import."""

    def __init__(self, size: int = 4096, ttl: float = 60.0) -> None:
        self.size, self.ttl = size, ttl
        self._data: OrderedDict[tuple, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None or hit[0] < time.monotonic():
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return hit[1]

    def put(self, key: tuple, value: bytes) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + self.ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


def basemap_tile(session: Session, z: int, x: int, y: int) -> bytes:
    """The roads crossing one tile as JSON ``{"roads": [[class, name, [[lon, lat], …]], …]}``,
    simplified to about a pixel at this zoom (a 256-px tile spans 360 / 2^z degrees)."""
    x1, y1, x2, y2 = tile_bounds(z, x, y)
    pad = (x2 - x1) * 0.05  # lines just outside still draw their edge into the tile
    classes = [c for c, zmin in ROAD_MIN_ZOOM.items() if z >= zmin]
    tol = 360 / (256 * 2 ** z) * 0.7
    roads = session.execute(text(_BASEMAP), {
        "tol": tol, "x1": x1 - pad, "y1": y1 - pad, "x2": x2 + pad, "y2": y2 + pad,
        "classes": classes, "others": z >= OTHER_MIN_ZOOM}).scalar_one()
    return f'{{"z":{z},"x":{x},"y":{y},"roads":{roads}}}'.encode()


def road_bounds(session: Session) -> list[float] | None:
    """The road graph's extent [min_lon, min_lat, max_lon, max_lat] (where the map opens)."""
    row = session.execute(text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
        "(SELECT ST_Extent(geom) AS e FROM road_edges) s")).one()
    return None if row[0] is None else [round(v, 6) for v in row]


# -- the wall screen -----------------------------------------------------------------------------
def _table_exists(session: Session, name: str) -> bool:
    return session.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name})


def summary(session: Session, now: datetime, tz: str, fresh_since: datetime) -> dict:
    """Everything the wall screen shows, for the local day of ``tz``."""
    local = now.astimezone(ZoneInfo(tz))
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    since = day_start.astimezone(now.tzinfo)
    p = {"now": now, "since": since, "fresh": fresh_since}

    by_cat_status: dict[str, dict[str, int]] = {}
    for cat, status, n in session.execute(text(
            f"SELECT category, status, count(*) FROM tickets WHERE status IN {_OPEN} "
            f"GROUP BY 1, 2")):
        by_cat_status.setdefault(cat, {})[status] = n
    created, resolved = session.execute(text(
        "SELECT count(*) FILTER (WHERE created_at >= :since), "
        "count(*) FILTER (WHERE resolved_at >= :since) FROM tickets "
        "WHERE created_at >= :since OR resolved_at >= :since"), p).one()
    sla = session.execute(text(
        f"""SELECT count(DISTINCT s.ticket_id) FILTER (WHERE s.due_at <= :now),
                   count(DISTINCT s.ticket_id) FILTER (WHERE s.warn_at <= :now AND s.due_at > :now)
            FROM ticket_sla_clocks s JOIN tickets t ON t.id = s.ticket_id
            WHERE s.stopped_at IS NULL AND t.status IN {_OPEN}"""), p).one()
    missed_today = session.scalar(text(
        "SELECT count(*) FROM ticket_sla_clocks WHERE due_at >= :since AND due_at <= :now "
        "AND (stopped_at IS NULL OR stopped_at > due_at)"), p)
    crews_by_status = {s: n for s, n in session.execute(text(
        "SELECT status, count(*) FROM crews WHERE active GROUP BY 1"))}
    crews_by_shift = {s: n for s, n in session.execute(text(
        "SELECT shift, count(*) FROM crews WHERE active GROUP BY 1"))}
    stale = session.scalar(text(
        "SELECT count(*) FROM crews WHERE active AND shift = 'on_shift' "
        "AND (position_at IS NULL OR position_at < :fresh)"), p)
    sms = {s: n for s, n in session.execute(text(
        "SELECT status, count(*) FROM sms_messages WHERE created_at >= :since GROUP BY 1"), p)}
    out = {
        "at": now.isoformat(), "day_start": since.isoformat(), "timezone": tz,
        "tickets": {"open_by_category_status": by_cat_status,
                    "open": sum(sum(v.values()) for v in by_cat_status.values()),
                    "created_today": created, "resolved_today": resolved},
        "sla": {"breached_open": sla[0], "warning_open": sla[1], "missed_today": missed_today},
        "crews": {"by_status": crews_by_status, "by_shift": crews_by_shift,
                  "stale_on_shift": stale},
        "sms": {"by_status": sms,
                "sent": sum(sms.get(s, 0) for s in ("sent", "delivered", "undelivered")),
                "delivered": sms.get("delivered", 0),
                "failed": sms.get("failed", 0) + sms.get("undelivered", 0)},
        "inspections": _optional(session, "inspection_rounds", _inspections, p),
        "outages": _optional(session, "outage_tickets", _outages, p),
    }
    return out


def _optional(session: Session, table: str, fn, params: dict) -> dict | None:
    """A figure of another domain: None while its tables are not in this database (or its
    schema is not what this query expects: the wall screen shows the rest)."""
    if not _table_exists(session, table):
        return None
    try:
        with session.begin_nested():
            return fn(session, params)
    except SQLAlchemyError:
        return None


def _inspections(session: Session, p: dict) -> dict:
    rounds = session.execute(text(
        "SELECT count(*), count(*) FILTER (WHERE outcome = 'complete'), "
        "count(*) FILTER (WHERE outcome = 'incomplete'), count(*) FILTER (WHERE closed_at IS NULL) "
        "FROM inspection_rounds WHERE window_start < :now AND window_end >= :since"), p).one()
    visits = {e: n for e, n in session.execute(text(
        "SELECT evidence, count(*) FROM inspection_records WHERE finished_at >= :since "
        "GROUP BY 1"), p)}
    return {"rounds": rounds[0], "complete": rounds[1], "incomplete": rounds[2], "open": rounds[3],
            "visits": sum(visits.values()), "verified": visits.get("verified", 0),
            "flagged": visits.get("flagged", 0)}


def _outages(session: Session, p: dict) -> dict:
    by_status = {st: n for st, n in session.execute(text(
        "SELECT status, count(*) FROM outages WHERE status IN ('suspected','confirmed','restoring') "
        "GROUP BY 1"))}
    absorbed = {src: n for src, n in session.execute(text(
        "SELECT source, count(*) FROM outage_tickets WHERE linked_at >= :since GROUP BY 1"), p)}
    restored = session.scalar(text(
        "SELECT count(*) FROM outages WHERE restored_at >= :since"), p)
    return {"open_by_status": by_status, "open": sum(by_status.values()),
            "calls_absorbed_today": sum(absorbed.values()), "absorbed_by_source": absorbed,
            "restored_today": restored}


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
