"""Manager views: anomalies on the scan/visit trail, a technician's day as GeoJSON, plan
compliance and the exceptions list. Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gis import routing as gr
from gis.geo import distance_m
from gis.tracks import TrackPoint, simplify_track, track_length_m
from server.core.errors import InvalidInput, NotFound
from server.dispatch import routing
from server.inspections import texts
from server.inspections.evidence import PRESENCE_FLAGS
from server.inspections.service import InspectionConfig, local_day_bounds
from server.models import InspectionPlan, InspectionRound, User

ACCEPTED = ("verified", "uid_only")
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class TrailScan:
    id: int
    actor_id: int
    username: str
    at: datetime
    verdict: str
    site_id: int | None
    lon: float | None
    lat: float | None
    site_lon: float | None
    site_lat: float | None


def _messages(code: str) -> dict[str, str]:
    return {lang: texts.text(code, lang) for lang in texts.LANGUAGES}


def scan_trail(session: Session, since: datetime, until: datetime,
               technician_id: int | None = None) -> list[TrailScan]:
    rows = session.execute(text("""
        SELECT s.id, s.actor_id, u.username, coalesce(s.scanned_at, s.received_at) AS at,
               s.verdict, s.site_id, ST_X(s.position), ST_Y(s.position), ST_X(t.location),
               ST_Y(t.location)
        FROM tag_scans s JOIN users u ON u.id = s.actor_id
        LEFT JOIN sites t ON t.id = s.site_id
        WHERE coalesce(s.scanned_at, s.received_at) >= :since
          AND coalesce(s.scanned_at, s.received_at) < :until
          AND (CAST(:tech AS integer) IS NULL OR s.actor_id = :tech)
        ORDER BY s.actor_id, at, s.id"""), {"since": since, "until": until, "tech": technician_id})
    return [TrailScan(*r) for r in rows]


@dataclass(frozen=True)
class Travel:
    seconds: float
    basis: str  # road | straight_line
    fallback_reason: str | None  # why not by road
    distance_m: float  # straight line between the sites


def travel_times(session: Session, pairs: set[tuple[int, int]],
                 points: dict[int, tuple[float, float]], cfg: InspectionConfig
                 ) -> dict[tuple[int, int], Travel]:
    """Fastest plausible time from site a to site b: by road (pgRouting, as dispatch computes
    ETAs) when both sites snap to the graph, else the straight line at ``max_speed_kmh``."""
    if not pairs:
        return {}
    has_roads = session.scalar(text("SELECT EXISTS (SELECT 1 FROM road_edges)"))
    snaps = routing.snap(session, {s: points[s] for p in pairs for s in p}, cfg.snap_max_m) \
        if has_roads else {}
    arrive, depart = set(), set()
    for a, b in pairs:
        pa, pb = snaps.get(a), snaps.get(b)
        if pa and pb and pa.position and pb.position:
            depart |= {d.vertex for d in gr.departures(pa.position)}
            arrive |= {x.vertex for x in gr.arrivals(pb.position)}
    costs = routing.costs_to(session, sorted(arrive), sorted(depart)) if arrive else {}
    out = {}
    for a, b in pairs:
        straight = distance_m(*points[a], *points[b])
        pa, pb = snaps.get(a), snaps.get(b)
        reason = "no_road_graph" if not has_roads else "site_off_road"
        if pa and pb and pa.position and pb.position:
            leg = gr.best_leg(pa.position, pb.position, costs)
            if leg is not None:
                out[(a, b)] = Travel(leg.seconds, "road", None, straight)
                continue
            reason = "no_road_route"
        out[(a, b)] = Travel(straight / (cfg.max_speed_kmh / 3.6), "straight_line", reason,
                             straight)
    return out


def impossible_travel(session: Session, trail: list[TrailScan], cfg: InspectionConfig
                      ) -> list[dict[str, Any]]:
    """Consecutive accepted scans of one technician at two sites, closer in time than the
    travel between the sites allows (road: below ``travel_fraction`` of the free-flow road
    time; straight line: faster than ``max_speed_kmh``)."""
    pairs: list[tuple[TrailScan, TrailScan]] = []
    last: dict[int, TrailScan] = {}
    for s in trail:
        if s.verdict not in ACCEPTED or s.site_id is None:
            continue
        prev = last.get(s.actor_id)
        if prev is not None and prev.site_id != s.site_id:
            pairs.append((prev, s))
        last[s.actor_id] = s
    points = {s.site_id: (s.site_lon, s.site_lat) for p in pairs for s in p}
    travel = travel_times(session, {(a.site_id, b.site_id) for a, b in pairs}, points, cfg)
    out = []
    for a, b in pairs:
        t = travel[(a.site_id, b.site_id)]
        elapsed = (b.at - a.at).total_seconds()
        allowed = t.seconds * cfg.travel_fraction if t.basis == "road" else t.seconds
        if elapsed < allowed:
            out.append({
                "kind": "impossible_travel", "at": b.at, "technician_id": b.actor_id,
                "technician": b.username, "site_ids": [a.site_id, b.site_id],
                "scan_ids": [a.id, b.id], "visit_ids": [], "round_id": None,
                "details": {"elapsed_s": round(elapsed, 1), "travel_s": round(t.seconds, 1),
                            "min_plausible_s": round(allowed, 1), "basis": t.basis,
                            "fallback_reason": t.fallback_reason,
                            "straight_distance_m": round(t.distance_m, 1)},
                "message": _messages("impossible_travel")})
    return out


def cloned_tag_pattern(trail: list[TrailScan], cfg: InspectionConfig) -> list[dict[str, Any]]:
    """UID-only scans of different sites made from one spot (positions within
    ``clone_radius_m`` of each other) while the sites themselves are farther apart: someone is
    carrying copies of plain tags. Scans are grouped transitively; one anomaly per group."""
    scans = [s for s in trail if s.verdict == "uid_only" and s.lon is not None
             and s.site_id is not None]
    parent = {s.id: s.id for s in scans}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, a in enumerate(scans):
        for b in scans[i + 1:]:
            if a.site_id == b.site_id:
                continue
            if distance_m(a.lon, a.lat, b.lon, b.lat) > cfg.clone_radius_m:
                continue
            if distance_m(a.site_lon, a.site_lat, b.site_lon, b.site_lat) <= 2 * cfg.clone_radius_m:
                continue  # two tags really are that close together
            parent[find(a.id)] = find(b.id)
    groups: dict[int, list[TrailScan]] = {}
    for s in scans:
        groups.setdefault(find(s.id), []).append(s)
    out = []
    for members in groups.values():
        sites = sorted({m.site_id for m in members})
        if len(sites) < 2:
            continue
        members.sort(key=lambda m: (m.at, m.id))
        out.append({
            "kind": "cloned_tag_pattern", "at": members[0].at,
            "technician_id": members[0].actor_id, "technician": members[0].username,
            "site_ids": sites, "scan_ids": [m.id for m in members], "visit_ids": [],
            "round_id": None,
            "details": {"technician_ids": sorted({m.actor_id for m in members}),
                        "spot": {"lon": members[0].lon, "lat": members[0].lat},
                        "radius_m": cfg.clone_radius_m},
            "message": _messages("cloned_tag_pattern")})
    return out


_VISIT_ANOMALIES = (("no_gps", "missing_gps"), ("value_out_of_range", "value_out_of_range"),
                    ("outside_window", "outside_window"))


def visit_anomalies(session: Session, since: datetime, until: datetime,
                    technician_id: int | None = None) -> list[dict[str, Any]]:
    """Missing GPS, values out of range, visits outside the window, and every other flagged
    visit (kind ``flagged_visit`` with its presence reasons)."""
    rows = session.execute(text("""
        SELECT v.id, v.site_id, v.round_id, v.technician_id, u.username, v.started_at, v.flags,
               v.evidence, v."values", v.template_id
        FROM inspection_records v JOIN users u ON u.id = v.technician_id
        WHERE v.started_at >= :since AND v.started_at < :until
          AND (CAST(:tech AS integer) IS NULL OR v.technician_id = :tech)
        ORDER BY v.started_at, v.id"""), {"since": since, "until": until, "tech": technician_id})
    out = []
    for r in rows:
        base = {"at": r.started_at, "technician_id": r.technician_id, "technician": r.username,
                "site_ids": [r.site_id], "scan_ids": [], "visit_ids": [r.id],
                "round_id": r.round_id}
        for flag, kind in _VISIT_ANOMALIES:
            if flag in r.flags:
                out.append({**base, "kind": kind, "details": {"flags": r.flags},
                            "message": _messages(kind)})
        presence = [f for f in r.flags if f in PRESENCE_FLAGS and f != "no_gps"]
        if r.evidence == "flagged" and presence:
            out.append({**base, "kind": "flagged_visit", "details": {"flags": presence},
                        "message": {lang: "; ".join(texts.text(f, lang) for f in presence)
                                    for lang in texts.LANGUAGES}})
    return out


def missed_alerts(session: Session, since: datetime, until: datetime,
                  technician_id: int | None = None) -> list[dict[str, Any]]:
    crew_clause = ""
    if technician_id is not None:
        crew_clause = ("AND (r.technician_id = :tech OR r.crew_id IN "
                       "(SELECT crew_id FROM crew_members WHERE user_id = :tech))")
    rows = session.execute(text(f"""
        SELECT a.id, a.round_id, a.site_id, a.raised_at, r.window_end, r.crew_id,
               r.technician_id, r.plan_id
        FROM inspection_alerts a JOIN inspection_rounds r ON r.id = a.round_id
        WHERE r.window_end >= :since AND r.window_end < :until {crew_clause}
        ORDER BY r.window_end, a.id"""), {"since": since, "until": until, "tech": technician_id})
    return [{"kind": "missed_checkpoint", "at": r.window_end, "technician_id": r.technician_id,
             "technician": None, "site_ids": [r.site_id], "scan_ids": [], "visit_ids": [],
             "round_id": r.round_id, "alert_id": r.id,
             "details": {"plan_id": r.plan_id, "crew_id": r.crew_id, "raised_at": r.raised_at},
             "message": _messages("missed_checkpoint")} for r in rows]


def exceptions(session: Session, since: datetime, until: datetime, cfg: InspectionConfig,
               technician_id: int | None = None) -> list[dict[str, Any]]:
    if until <= since:
        raise InvalidInput("until must be after since", field="until")
    trail = scan_trail(session, since, until, technician_id)
    items = (impossible_travel(session, trail, cfg) + cloned_tag_pattern(trail, cfg)
             + visit_anomalies(session, since, until, technician_id)
             + missed_alerts(session, since, until, technician_id))
    items.sort(key=lambda i: (i["at"], i["kind"]))
    return items


# --- a technician's day --------------------------------------------------------------------------

def _feature(geometry: dict | None, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": props}


def _point(lon: float | None, lat: float | None) -> dict | None:
    if lon is None:
        return None
    return {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]}


def technician_day(session: Session, user_id: int, day: date, zone: str,
                   cfg: InspectionConfig) -> dict[str, Any]:
    """GeoJSON FeatureCollection of one technician's local day: the simplified GPS track
    (their handset's fixes in crew_positions), tag scans, visits and the sites involved; the
    day's anomalies in the collection's ``properties``."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist", field="user_id")
    since, until = local_day_bounds(day, zone)
    fixes = session.execute(text("""
        SELECT ST_X(geom), ST_Y(geom), at FROM crew_positions
        WHERE reported_by = :u AND at >= :since AND at < :until AND NOT implausible
        ORDER BY at, id"""), {"u": user_id, "since": since, "until": until}).all()
    points = [TrackPoint(lon, lat, at.timestamp()) for lon, lat, at in fixes]
    kept = simplify_track(points, cfg.track_tolerance_m)
    features = []
    if len(kept) >= 2:
        features.append(_feature(
            {"type": "LineString", "coordinates": [[round(p.lon, 7), round(p.lat, 7)]
                                                   for p in kept]},
            kind="track", fixes=len(points), kept=len(kept),
            length_m=round(track_length_m(points), 1),
            times=[datetime.fromtimestamp(p.t_s, since.tzinfo).isoformat() for p in kept]))
    elif kept:
        features.append(_feature(_point(kept[0].lon, kept[0].lat), kind="track", fixes=1, kept=1,
                                 length_m=0.0, times=[datetime.fromtimestamp(
                                     kept[0].t_s, since.tzinfo).isoformat()]))
    trail = scan_trail(session, since, until, user_id)
    site_ids = {s.site_id for s in trail if s.site_id is not None}
    for s in trail:
        features.append(_feature(_point(s.lon, s.lat), kind="scan", id=s.id, at=s.at.isoformat(),
                                 verdict=s.verdict, site_id=s.site_id))
    visits = session.execute(text("""
        SELECT id, site_id, round_id, started_at, finished_at, evidence, flags, distance_m,
               ST_X(position), ST_Y(position)
        FROM inspection_records WHERE technician_id = :u AND started_at >= :since
          AND started_at < :until ORDER BY started_at, id"""),
        {"u": user_id, "since": since, "until": until}).all()
    for v in visits:
        site_ids.add(v.site_id)
        features.append(_feature(_point(v[8], v[9]), kind="visit", id=v.id, site_id=v.site_id,
                                 round_id=v.round_id, started_at=v.started_at.isoformat(),
                                 finished_at=v.finished_at.isoformat(), evidence=v.evidence,
                                 flags=v.flags, distance_m=v.distance_m))
    if site_ids:
        for sid, name, lon, lat in session.execute(text(
                "SELECT id, name, ST_X(location), ST_Y(location) FROM sites "
                "WHERE id = ANY(:ids) ORDER BY id"), {"ids": sorted(site_ids)}):
            features.append(_feature(_point(lon, lat), kind="site", id=sid, name=name))
    anomalies = (impossible_travel(session, trail, cfg) + cloned_tag_pattern(trail, cfg)
                 + visit_anomalies(session, since, until, user_id))
    anomalies.sort(key=lambda i: (i["at"], i["kind"]))
    return {"type": "FeatureCollection", "features": features,
            "properties": {"technician_id": user_id, "technician": user.username,
                           "date": day.isoformat(), "timezone": zone,
                           "anomalies": _jsonable(anomalies)}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


# --- plan compliance -----------------------------------------------------------------------------

def compliance(session: Session, date_from: date, date_to: date, now: datetime, *,
               plan_id: int | None = None, crew_id: int | None = None,
               technician_id: int | None = None) -> dict[str, Any]:
    """Per round (= plan × assignee × day of the window, in the plan's zone): checkpoints done,
    late, missed, pending and verified; and totals per plan."""
    from server.inspections.service import _checkpoint_states

    if date_to < date_from:
        raise InvalidInput("date_to is before date_from", field="date_to")
    q = (select(InspectionRound, InspectionPlan.name, InspectionPlan.timezone)
         .join(InspectionPlan, InspectionPlan.id == InspectionRound.plan_id)
         .where(InspectionRound.outcome.is_distinct_from("withdrawn"))  # never due
         .order_by(InspectionRound.window_start, InspectionRound.id))
    for col, val in ((InspectionRound.plan_id, plan_id), (InspectionRound.crew_id, crew_id),
                     (InspectionRound.technician_id, technician_id)):
        if val is not None:
            q = q.where(col == val)
    # a coarse UTC filter (±1 day covers every zone), then the exact local day below
    since, _ = local_day_bounds(date_from, "UTC")
    _, until = local_day_bounds(date_to, "UTC")
    q = q.where(InspectionRound.window_start >= since - _DAY,
                InspectionRound.window_start < until + _DAY)
    rows = [(r, name, tz) for r, name, tz in session.execute(q)
            if date_from <= _local_day(r.window_start, tz) <= date_to]
    states = _checkpoint_states(session, [r for r, _, _ in rows], now)
    out, plans = [], {}
    for r, name, tz in rows:
        cps = states[r.id]
        counts = {k: sum(1 for c in cps if c.state == k) for k in ("done", "late", "missed",
                                                                   "pending")}
        verified = sum(1 for c in cps if c.evidence == "verified")
        row = {"round_id": r.id, "plan_id": r.plan_id, "plan_name": name,
               "crew_id": r.crew_id, "technician_id": r.technician_id,
               "day": _local_day(r.window_start, tz).isoformat(),
               "window_start": r.window_start.isoformat(), "window_end": r.window_end.isoformat(),
               "checkpoints": len(cps), **counts, "verified": verified}
        out.append(row)
        p = plans.setdefault(r.plan_id, {"plan_id": r.plan_id, "plan_name": name, "rounds": 0,
                                         "checkpoints": 0, "done": 0, "late": 0, "missed": 0,
                                         "pending": 0, "verified": 0})
        p["rounds"] += 1
        for k in ("checkpoints", "done", "late", "missed", "pending", "verified"):
            p[k] += row[k]
    for p in plans.values():
        closed = p["checkpoints"] - p["pending"]
        p["on_time_rate"] = round(p["done"] / closed, 4) if closed else None
    return {"date_from": date_from.isoformat(), "date_to": date_to.isoformat(), "rounds": out,
            "plans": list(plans.values())}


def _local_day(at: datetime, zone: str) -> date:
    return at.astimezone(ZoneInfo(zone)).date()

