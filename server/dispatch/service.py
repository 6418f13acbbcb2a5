"""Suggesting crews by road ETA and assigning them: the only writer of dispatch_assignments.

Lock order, everywhere: tickets (by id) before crews (by id). Assignment, reassignment,
unassignment and position reports all follow it, so concurrent dispatchers and handsets queue on
row locks instead of deadlocking, and a crew's capacity is checked while its row is locked.
Services never commit; the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gis import routing as gr
from gis.geo import distance_m
from gis.geofence import within_radius_m
from gis.ranking import (
    DEFAULT_DETOUR_FACTOR,
    DEFAULT_FALLBACK_SPEED_MPS,
    Candidate,
    rank_candidates,
)
from server.auth.service import Principal
from server.core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from server.crews import service as crews
from server.crews.schemas import (
    ArrivalOut,
    CrewStatus,
    EtaUpdate,
    FixIn,
    FixResult,
    PositionsOut,
    Skill,
)
from server.devices import work_orders
from server.dispatch import routing
from server.dispatch.schemas import AssignmentOut, Suggestion, Suggestions
from server.dispatch.skills import needed_skill
from server.models import SRID, Assignment, Crew, Role, Ticket, User
from server.notifications import service as notifications
from server.settings import Settings
from server.tickets import service as tickets
from server.tickets.lifecycle import Category, Status, TransitionRefused, check


@dataclass(frozen=True)
class DispatchConfig:
    stale_after: timedelta = timedelta(minutes=10)
    snap_max_m: float = 500.0
    geofence_m: float = 50.0
    max_speed_kmh: float = 250.0
    knn_candidates: int = 64
    auto_assign: frozenset[tuple[str, str]] = frozenset(
        {("repair", "emergency"), ("outage_report", "emergency")})
    fallback_speed_mps: float = DEFAULT_FALLBACK_SPEED_MPS
    detour_factor: float = DEFAULT_DETOUR_FACTOR
    ticket_policy: tickets.Policy = field(default_factory=tickets.Policy)
    sms_timezone: str = "Asia/Shanghai"  # the ETA clock time in the customer's SMS

    @classmethod
    def from_settings(cls, s: Settings) -> DispatchConfig:
        rules = set()
        for item in s.dispatch_auto_assign:
            category, _, priority = item.partition("/")
            rules.add((category.strip(), priority.strip()))
        return cls(stale_after=timedelta(minutes=s.dispatch_stale_after_minutes),
                   snap_max_m=s.dispatch_snap_max_m, geofence_m=s.dispatch_geofence_m,
                   max_speed_kmh=s.dispatch_max_speed_kmh,
                   knn_candidates=s.dispatch_knn_candidates, auto_assign=frozenset(rules),
                   ticket_policy=tickets.Policy.from_settings(s),
                   sms_timezone=s.sms_timezone)


# ---------------------------------------------------------------- suggestions

@dataclass(frozen=True)
class TicketPlace:
    id: int
    category: str
    priority: str
    status: str
    description: str
    lon: float | None
    lat: float | None


def ticket_place(session: Session, ticket_id: int) -> TicketPlace:
    row = session.execute(text(
        "SELECT id, category, priority, status, description, ST_X(location) AS lon, "
        "ST_Y(location) AS lat FROM tickets WHERE id = :id"), {"id": ticket_id}).first()
    if row is None:
        raise NotFound(f"ticket {ticket_id} not found", field="ticket_id")
    return TicketPlace(*row)


# Eligible crews nearest first: the GiST index on geography(crews.position) answers ORDER BY <->
# directly (in metres) and the filters are checked row by row as the index walks outwards.
_ELIGIBLE = """
SELECT c.id, c.name, c.status, c.capacity, c.position_at, ST_X(c.position) AS lon,
       ST_Y(c.position) AS lat, {jobs} AS jobs,
       e.id, e.source, e.target, e.cost, e.reverse_cost, e.length_m, c.snap_fraction,
       c.snap_distance_m
FROM crews c LEFT JOIN road_edges e ON e.id = c.snap_edge_id
WHERE c.active AND c.shift = 'on_shift' AND c.status <> 'offline'
  AND c.position IS NOT NULL AND c.position_at >= :fresh_since
  AND (CAST(:skill AS varchar) IS NULL OR c.skills @> ARRAY[CAST(:skill AS varchar)])
  AND {jobs} < c.capacity
ORDER BY geography(c.position) <-> geography(ST_SetSRID(ST_MakePoint(:lon, :lat), :srid))
{limit}
""".replace("{jobs}", crews.ACTIVE_JOBS_SQL.format(crew="c.id"))
KNN_SQL = text(_ELIGIBLE.replace("{limit}", "LIMIT :k"))
ALL_ELIGIBLE_SQL = text(_ELIGIBLE.replace("{limit}", ""))


@dataclass
class _Crew:
    id: int
    name: str
    status: str
    capacity: int
    position_at: datetime
    lon: float
    lat: float
    jobs: int
    snap: routing.Snap | None = None  # None: snap it now


def eligible_crews(session: Session, place: TicketPlace, skill: str | None, now: datetime,
                   cfg: DispatchConfig, k: int | None) -> list[_Crew]:
    params = {"fresh_since": now - cfg.stale_after, "skill": skill, "lon": place.lon,
              "lat": place.lat, "srid": SRID, "k": k}
    rows = session.execute(KNN_SQL if k is not None else ALL_ELIGIBLE_SQL, params).all()
    return [_Crew(*r[:8], snap=routing.snap_of((r[5], r[6]), *r[8:], max_m=cfg.snap_max_m))
            for r in rows]


def rank(session: Session, place: TicketPlace, candidates: list[_Crew], cfg: DispatchConfig, *,
         limit: int, road: bool = True, routes: bool = True
         ) -> tuple[list[Suggestion], gr.EdgePosition | None, float | None]:
    """Rank candidates by ETA to the ticket; road ETAs when both ends snap, else estimates."""
    speed = cfg.fallback_speed_mps
    ticket_pos = ticket_snap_m = None
    snaps: dict[int, routing.Snap] = {}
    legs: dict[int, gr.Leg] = {}
    reasons: dict[int, str] = {}
    if road:
        points = {0: (place.lon, place.lat),
                  **{c.id: (c.lon, c.lat) for c in candidates if c.snap is None}}
        snaps = routing.snap(session, points, cfg.snap_max_m)
        snaps.update({c.id: c.snap for c in candidates if c.snap is not None})
        ticket_pos, ticket_snap_m = snaps[0].position, snaps[0].distance_m
    if ticket_pos is not None:
        arrive = [a.vertex for a in gr.arrivals(ticket_pos)]
        depart = [d.vertex for c in candidates if snaps[c.id].position is not None
                  for d in gr.departures(snaps[c.id].position)]
        costs = routing.costs_to(session, arrive, depart)
        for c in candidates:
            pos = snaps[c.id].position
            if pos is None:
                reasons[c.id] = "crew_off_road"
                continue
            leg = gr.best_leg(pos, ticket_pos, costs)
            if leg is None:
                reasons[c.id] = "no_road_route"
                continue
            legs[c.id] = leg
    else:
        reason = "road_routing_off" if not road else "ticket_off_road"
        reasons = {c.id: reason for c in candidates}
    offset = {c.id: (snaps[c.id].distance_m or 0.0) + (ticket_snap_m or 0.0)
              for c in candidates if c.id in legs}
    ranked = rank_candidates(
        place.lon, place.lat,
        [Candidate(c.id, c.lon, c.lat,
                   road_eta_s=legs[c.id].seconds + offset[c.id] / speed if c.id in legs else None)
         for c in candidates],
        fallback_speed_mps=speed, detour_factor=cfg.detour_factor, limit=limit)
    by_id = {c.id: c for c in candidates}
    chosen = [r for r in ranked if r.candidate.id in legs]
    pairs = {(legs[r.candidate.id].depart.vertex, legs[r.candidate.id].arrive.vertex)
             for r in chosen if legs[r.candidate.id].depart is not None}
    graph_paths = routing.paths(session, pairs)
    lines = routing.edge_lines(session, {snaps[r.candidate.id].position.edge_id for r in chosen}
                               | {ticket_pos.edge_id}) if routes and chosen else {}
    out = []
    for r in ranked:
        c = by_id[r.candidate.id]
        road_m = route = None
        if c.id in legs:
            leg = legs[c.id]
            graph_m, pieces = 0.0, []
            if leg.depart is not None:
                pieces, graph_m = graph_paths.get((leg.depart.vertex, leg.arrive.vertex), ([], 0.0))
            road_m = leg.metres_partial + graph_m + offset[c.id]
            if routes:
                route = _route(snaps[c.id], snaps[0], leg, pieces, lines)
        elif routes:
            route = {"type": "LineString", "coordinates": [[c.lon, c.lat], [place.lon, place.lat]]}
        out.append(Suggestion(
            rank=r.rank, crew_id=c.id, crew=c.name, status=c.status, active_jobs=c.jobs,
            capacity=c.capacity, position_at=c.position_at,
            straight_distance_m=round(r.straight_line_m, 1),
            road_distance_m=round(road_m, 1) if road_m is not None else None,
            eta_s=round(r.eta_s, 1), eta_source="road" if c.id in legs else "straight_line",
            fallback_reason=reasons.get(c.id), route=route))
    return out, ticket_pos, ticket_snap_m


def _route(crew: routing.Snap, ticket: routing.Snap, leg: gr.Leg, pieces, lines) -> dict:
    cpos, tpos = crew.position, ticket.position
    crew_line, ticket_line = lines[cpos.edge_id], lines[tpos.edge_id]
    parts = [[(crew.lon, crew.lat)]]
    if leg.depart is None:  # both on one edge
        parts.append(routing.piece(crew_line, cpos.fraction, tpos.fraction))
    else:
        parts.append(routing.piece(crew_line, cpos.fraction,
                                   1.0 if leg.depart.vertex == cpos.target else 0.0))
        parts.extend(pieces)
        parts.append(routing.piece(ticket_line,
                                   1.0 if leg.arrive.vertex == tpos.target else 0.0,
                                   tpos.fraction))
    parts.append([(ticket.lon, ticket.lat)])
    coords = gr.stitch(parts)
    if len(coords) < 2:
        coords = coords * 2
    return {"type": "LineString", "coordinates": [[round(x, 7), round(y, 7)] for x, y in coords]}


_UNSET = object()


def suggest(session: Session, ticket_id: int, now: datetime, cfg: DispatchConfig, *,
            limit: int = 5, skill: Skill | object | None = _UNSET, road: bool = True,
            routes: bool = True, exhaustive: bool = False) -> Suggestions:
    """The top ``limit`` eligible crews for a ticket by ETA. Candidates: the nearest
    ``cfg.knn_candidates`` eligible crews in a straight line (``exhaustive``: all of them)."""
    place = ticket_place(session, ticket_id)
    if place.lon is None:
        raise Conflict(f"ticket {ticket_id} has no location to send a crew to",
                       field="ticket_id", code="no_location")
    if place.status not in ("new", "assigned", "accepted", "en_route"):
        raise Conflict(f"ticket {ticket_id} is {place.status}; nothing to dispatch",
                       field="ticket_id", code="not_dispatchable")
    wanted = needed_skill(place.category, place.description) if skill is _UNSET else skill
    wanted_value = wanted.value if isinstance(wanted, Skill) else None
    k = None if exhaustive else max(cfg.knn_candidates, limit)
    candidates = eligible_crews(session, place, wanted_value, now, cfg, k)
    out, ticket_pos, snap_m = rank(session, place, candidates, cfg, limit=limit, road=road,
                                   routes=routes)
    fallback = None
    if candidates and ticket_pos is None:
        fallback = "road_routing_off" if not road else "ticket_off_road"
    return Suggestions(ticket_id=ticket_id, skill=wanted_value,
                       ticket_snapped=ticket_pos is not None,
                       ticket_snap_distance_m=round(snap_m, 1) if snap_m is not None else None,
                       fallback=fallback, stale_after_s=cfg.stale_after.total_seconds(),
                       candidates_considered=len(candidates), suggestions=out)


# ---------------------------------------------------------------- assignment

def _lock_ticket(session: Session, ticket_id: int, *, skip_locked: bool = False) -> Ticket | None:
    q = select(Ticket).where(Ticket.id == ticket_id).with_for_update(skip_locked=skip_locked)
    ticket = session.scalar(q.execution_options(populate_existing=True))
    if ticket is None and not skip_locked:
        raise NotFound(f"ticket {ticket_id} not found", field="ticket_id")
    return ticket


def _lock_crews(session: Session, ids: set[int]) -> dict[int, Crew]:
    return {i: crews.get(session, i, lock=True) for i in sorted(ids)}


def assigned_crew(session: Session, ticket_id: int) -> int | None:
    """The crew currently holding the ticket, if any."""
    current = _active(session, ticket_id)
    return current.crew_id if current is not None else None


def _active(session: Session, ticket_id: int) -> Assignment | None:
    return session.scalar(select(Assignment).where(Assignment.ticket_id == ticket_id,
                                                   Assignment.ended_at.is_(None))
                          .execution_options(populate_existing=True))


def _move(session: Session, ticket: Ticket, dst: Status, actor: Principal | None, now: datetime,
          cfg: DispatchConfig, note: str | None, data: dict | None) -> None:
    src = Status(ticket.status)
    try:
        check(src, dst, actor.role if actor else Role.admin, Category(ticket.category))
    except TransitionRefused as exc:
        raise InvalidTransition(exc.message, field="ticket_id", code=exc.code) from None
    tickets._apply(session, ticket, src, dst, actor, now, cfg.ticket_policy, note=note, data=data)


def _check_crew(session: Session, crew: Crew, skill: str | None, *, field: str = "crew_id") -> None:
    if not crew.active:
        raise Conflict(f"crew {crew.name} is deactivated", field=field, code="crew_inactive")
    if crew.shift != "on_shift":
        raise Conflict(f"crew {crew.name} is not on shift ({crew.shift})", field=field,
                       code="crew_off_shift")
    if crew.status == CrewStatus.offline.value:
        raise Conflict(f"crew {crew.name} is offline", field=field, code="crew_offline")
    if skill and skill not in (crew.skills or []):
        raise Conflict(f"crew {crew.name} lacks the skill this ticket needs ({skill}); skills: "
                       f"{', '.join(crew.skills or []) or 'none'}", field=field,
                       code="crew_lacks_skill")
    busy = crews.active_jobs(session, crew.id)
    if busy >= crew.capacity:
        raise Conflict(f"crew {crew.name} already holds {busy} of {crew.capacity} jobs",
                       field=field, code="crew_at_capacity")


def _release(session: Session, crew: Crew, now: datetime) -> None:
    if crews.active_jobs(session, crew.id) == 0 and crew.status != CrewStatus.offline.value:
        crew.status = CrewStatus.available.value
        crew.updated_at = now


def _eta_for(session: Session, ticket: Ticket, crew: Crew, skill: str | None, now: datetime,
             cfg: DispatchConfig) -> tuple[int | None, Suggestion | None]:
    """The crew's rank among current suggestions and its ETA now (None without a position)."""
    place = ticket_place(session, ticket.id)
    candidates = eligible_crews(session, place, skill, now, cfg, cfg.knn_candidates)
    ranked, _, _ = rank(session, place, candidates, cfg, limit=len(candidates), routes=False)
    for s in ranked:
        if s.crew_id == crew.id:
            return s.rank, s
    if crew.position is None:
        return None, None
    own, _, _ = rank(session, place, [_crew_row(crew)], cfg, limit=1, routes=False)
    return None, own[0]


def _crew_row(crew: Crew) -> _Crew:
    live = crews.live_position(crew)
    return _Crew(crew.id, crew.name, crew.status, crew.capacity, live.at, live.lon, live.lat, 0)


def _create(session: Session, ticket: Ticket, crew: Crew, actor: Principal | None, now: datetime,
            cfg: DispatchConfig, mode: str, note: str | None) -> Assignment:
    skill = needed_skill(ticket.category, ticket.description)
    skill_value = skill.value if skill else None
    _check_crew(session, crew, skill_value)
    rank_, eta = _eta_for(session, ticket, crew, skill_value, now, cfg)
    stale = _active(session, ticket.id)
    if stale is not None:  # the ticket desk moved it back to new: that assignment is over
        stale.ended_at, stale.end_reason = now, "superseded"
        session.flush()
    a = Assignment(ticket_id=ticket.id, crew_id=crew.id, mode=mode, rank=rank_, skill=skill_value,
                   eta_s=eta.eta_s if eta else None, eta_source=eta.eta_source if eta else None,
                   road_distance_m=eta.road_distance_m if eta else None,
                   current_eta_s=eta.eta_s if eta else None, eta_updated_at=now if eta else None,
                   assigned_by=actor.id if actor else None, assigned_at=now)
    session.add(a)
    _move(session, ticket, Status.assigned, actor, now, cfg, note, {
        "crew_id": crew.id, "crew": crew.name, "mode": mode, "rank": rank_,
        "eta_s": a.eta_s, "eta_source": a.eta_source})
    if crew.status == CrewStatus.available.value:
        crew.status = CrewStatus.assigned.value
    crew.updated_at = now
    session.flush()
    # the customer: "crew assigned, about N minutes"; the crew: "new job" — same transaction
    notifications.on_ticket_assigned(session, ticket.id, a.eta_s, now,
                                     timezone=cfg.sms_timezone, crew_id=crew.id)
    work_orders.on_assigned(session, ticket.id, crew.id, now)  # [devices] the crew's handsets
    return a


def assign(session: Session, ticket_id: int, crew_id: int, actor: Principal, now: datetime,
           cfg: DispatchConfig, note: str | None = None) -> Assignment:
    ticket = _lock_ticket(session, ticket_id)
    if ticket.status != Status.new.value:
        current = _active(session, ticket_id)
        if current is not None and ticket.status in crews.BUSY:
            raise Conflict(f"ticket {ticket.number} is already assigned to crew {current.crew_id}; "
                           "reassign it instead (PUT)", field="ticket_id", code="already_assigned")
        raise InvalidTransition(f"ticket {ticket.number} is {ticket.status}; only a new ticket "
                                "can be assigned", field="ticket_id", code="not_assignable")
    if ticket.location is None:
        raise Conflict(f"ticket {ticket.number} has no location", field="ticket_id",
                       code="no_location")
    crew = _lock_crews(session, {crew_id})[crew_id]
    return _create(session, ticket, crew, actor, now, cfg, "manual", note)


def reassign(session: Session, ticket_id: int, crew_id: int, actor: Principal, now: datetime,
             cfg: DispatchConfig, note: str | None = None) -> Assignment:
    ticket = _lock_ticket(session, ticket_id)
    current = _active(session, ticket_id)
    if current is None or ticket.status not in crews.BUSY:
        raise Conflict(f"ticket {ticket.number} has no crew to replace; assign one (POST)",
                       field="ticket_id", code="not_assigned")
    if current.crew_id == crew_id:
        raise Conflict(f"crew {crew_id} already has ticket {ticket.number}", field="crew_id",
                       code="same_crew")
    locked = _lock_crews(session, {crew_id, current.crew_id})
    current.ended_at, current.ended_by, current.end_reason = now, actor.id, "reassigned"
    work_orders.on_withdrawn(session, ticket.id, current.crew_id, "reassigned", now)  # [devices]
    _move(session, ticket, Status.new, actor, now, cfg, note or "reassigned",
          {"crew_id": current.crew_id, "reason": "reassigned"})
    session.flush()
    _release(session, locked[current.crew_id], now)
    return _create(session, ticket, locked[crew_id], actor, now, cfg, "manual", note)


def unassign(session: Session, ticket_id: int, actor: Principal, now: datetime,
             cfg: DispatchConfig, note: str | None = None) -> Assignment:
    ticket = _lock_ticket(session, ticket_id)
    current = _active(session, ticket_id)
    if current is None or ticket.status not in crews.BUSY:
        raise Conflict(f"ticket {ticket.number} has no crew assigned", field="ticket_id",
                       code="not_assigned")
    crew = _lock_crews(session, {current.crew_id})[current.crew_id]
    _move(session, ticket, Status.new, actor, now, cfg, note,
          {"crew_id": crew.id, "reason": "unassigned"})
    current.ended_at, current.ended_by, current.end_reason = now, actor.id, "unassigned"
    work_orders.on_withdrawn(session, ticket.id, crew.id, "unassigned", now, note)  # [devices]
    session.flush()
    _release(session, crew, now)
    return current


def auto_assign(session: Session, ticket_id: int, now: datetime, cfg: DispatchConfig
                ) -> Assignment | None:
    """Assign the best eligible crew if the ticket's category/priority is under the auto-assign
    policy, it is new and it never had a crew (a dispatcher's unassign is respected)."""
    ticket = _lock_ticket(session, ticket_id, skip_locked=True)
    if (ticket is None or ticket.status != Status.new.value or ticket.location is None
            or (ticket.category, ticket.priority) not in cfg.auto_assign):
        return None
    if session.scalar(select(Assignment.id).where(Assignment.ticket_id == ticket_id).limit(1)):
        return None
    for s in suggest(session, ticket_id, now, cfg, limit=cfg.knn_candidates,
                     routes=False).suggestions:
        crew = _lock_crews(session, {s.crew_id})[s.crew_id]
        try:
            with session.begin_nested():
                return _create(session, ticket, crew, None, now, cfg, "auto",
                               f"auto-assigned by policy {ticket.category}/{ticket.priority}")
        except Conflict:
            continue  # taken meanwhile (capacity) or changed shift: next best
    return None


# oldest first: by creation time (ticket ids are not in creation order, server/tickets/ids.py)
_AUTO_DUE = text("""
SELECT t.id FROM tickets t
WHERE t.status = 'new' AND t.location IS NOT NULL AND t.created_at >= :since
  AND (t.category || '/' || t.priority) = ANY(:rules)
  AND NOT EXISTS (SELECT 1 FROM dispatch_assignments a WHERE a.ticket_id = t.id)
ORDER BY t.created_at, t.id LIMIT :limit
""")


def auto_assign_sweep(session: Session, now: datetime, cfg: DispatchConfig, limit: int = 50
                      ) -> list[Assignment]:
    """Auto-assign every due ticket (new, under the policy, never assigned, last 24 h)."""
    rules = [f"{c}/{p}" for c, p in sorted(cfg.auto_assign)]
    if not rules:
        return []
    ids = session.execute(_AUTO_DUE, {"since": now - timedelta(hours=24), "rules": rules,
                                      "limit": limit}).scalars().all()
    done = []
    for ticket_id in ids:
        a = auto_assign(session, ticket_id, now, cfg)
        if a is not None:
            done.append(a)
    return done


def current_assignment(session: Session, ticket_id: int) -> Assignment | None:
    ticket_place(session, ticket_id)
    return _active(session, ticket_id)


def history(session: Session, ticket_id: int) -> list[Assignment]:
    ticket_place(session, ticket_id)
    return list(session.scalars(select(Assignment).where(Assignment.ticket_id == ticket_id)
                                .order_by(Assignment.id)))


def assignment_out(session: Session, a: Assignment, *, route: bool = False,
                   now: datetime | None = None, cfg: DispatchConfig | None = None) -> AssignmentOut:
    crew = session.get(Crew, a.crew_id)
    status = session.scalar(select(Ticket.status).where(Ticket.id == a.ticket_id))
    by = session.scalar(select(User.username).where(User.id == a.assigned_by)) \
        if a.assigned_by else None
    geometry = None
    if route and a.ended_at is None and crew.position is not None and cfg and now:
        place = ticket_place(session, a.ticket_id)
        geometry = rank(session, place, [_crew_row(crew)], cfg, limit=1)[0][0].route
    return AssignmentOut(
        id=a.id, ticket_id=a.ticket_id, ticket_status=status, crew_id=a.crew_id, crew=crew.name,
        mode=a.mode, rank=a.rank, skill=a.skill, eta_s=a.eta_s, eta_source=a.eta_source,
        road_distance_m=a.road_distance_m, assigned_by=by, assigned_at=a.assigned_at,
        current_eta_s=a.current_eta_s, eta_updated_at=a.eta_updated_at, arrived_at=a.arrived_at,
        ended_at=a.ended_at, end_reason=a.end_reason, route=geometry)


# ---------------------------------------------------------------- positions

def report_positions(session: Session, crew_id: int, fixes: list[FixIn], actor: Principal,
                     now: datetime, cfg: DispatchConfig) -> PositionsOut:
    """The position ingest (HTTP today, the MQTT bridge later): history + live position, then
    geofence arrival and ETA refresh for the crew's open assignments."""
    crews.get(session, crew_id)  # 404 before 403
    crews.authorize_crew_actor(session, crew_id, actor)
    # tickets before crews: lock the crew's open tickets first (see the module docstring)
    open_ids = session.execute(text(
        "SELECT a.ticket_id FROM dispatch_assignments a WHERE a.crew_id = :crew "
        "AND a.ended_at IS NULL ORDER BY a.ticket_id"), {"crew": crew_id}).scalars().all()
    locked = {tid: _lock_ticket(session, tid) for tid in open_ids}
    crew = crews.get(session, crew_id, lock=True)
    recorded = crews.record_fixes(session, crew, fixes, actor, now, cfg.max_speed_kmh)
    arrivals: list[ArrivalOut] = []
    updates: list[EtaUpdate] = []
    if any(r.applied for r in recorded):
        live = crews.live_position(crew)
        for tid, ticket in locked.items():
            a = _active(session, tid)
            if a is None or a.crew_id != crew.id or ticket.status not in crews.BUSY:
                continue
            place = ticket_place(session, tid)
            if a.arrived_at is None and within_radius_m(place.lon, place.lat, live.lon,
                                                        live.lat, cfg.geofence_m):
                a.arrived_at, a.current_eta_s, a.eta_updated_at = live.at, 0.0, now
                crew.status = CrewStatus.on_site.value
                tickets._event(session, ticket, actor, "crew_arrived", now, data={
                    "crew_id": crew.id, "assignment_id": a.id, "at": live.at.isoformat(),
                    "distance_m": round(distance_m(place.lon, place.lat, live.lon, live.lat), 1)})
                if ticket.status == Status.en_route.value:
                    _move(session, ticket, Status.on_site, None, now, cfg, "geofence arrival",
                          {"crew_id": crew.id})
                arrivals.append(ArrivalOut(
                    ticket_id=tid, assignment_id=a.id, ticket_status=ticket.status,
                    distance_m=round(distance_m(place.lon, place.lat, live.lon, live.lat), 1)))
            elif a.arrived_at is None:
                s = rank(session, place, [_crew_row(crew)], cfg, limit=1, routes=False)[0][0]
                a.current_eta_s, a.eta_updated_at = s.eta_s, now
                updates.append(EtaUpdate(ticket_id=tid, eta_s=s.eta_s, eta_source=s.eta_source))
        crew.updated_at = now
    session.flush()
    return PositionsOut(
        crew_id=crew.id, accepted=len(recorded),
        implausible=sum(1 for r in recorded if r.implausible),
        # built from typed values: no validation (thousands of fixes per applier call)
        fixes=[FixResult.model_construct(index=r.index, at=r.fix.at, implausible=r.implausible,
                                         applied=r.applied)
               for r in recorded],
        position=crews.live_position(crew), arrivals=arrivals, eta_updates=updates)


def tickets_geojson(session: Session, bbox: tuple[float, float, float, float] | None) -> dict:
    """Open tickets with a location (inside ``bbox``) and their assigned crew, for the map."""
    where = ("t.status IN ('new','assigned','accepted','en_route','on_site') "
             "AND t.location IS NOT NULL")
    params: dict = {"srid": SRID}
    if bbox:
        where += " AND t.location && ST_MakeEnvelope(:x1, :y1, :x2, :y2, :srid)"
        params.update(x1=bbox[0], y1=bbox[1], x2=bbox[2], y2=bbox[3])
    rows = session.execute(text(
        f"SELECT t.id, t.category, t.priority, t.status, t.address, ST_X(t.location) AS lon, "
        f"ST_Y(t.location) AS lat, a.crew_id, a.current_eta_s FROM tickets t "
        f"LEFT JOIN dispatch_assignments a ON a.ticket_id = t.id AND a.ended_at IS NULL "
        f"WHERE {where} ORDER BY t.created_at, t.id LIMIT 5000"), params).mappings()
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature", "id": r["id"],
        "geometry": {"type": "Point", "coordinates": [round(r["lon"], 7), round(r["lat"], 7)]},
        "properties": {"number": f"CL-{r['id']:07d}", "category": r["category"],
                       "priority": r["priority"], "status": r["status"], "address": r["address"],
                       "crew_id": r["crew_id"], "eta_s": r["current_eta_s"]}} for r in rows]}


def validate_bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    if raw is None:
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in raw.split(","))
    except ValueError:
        raise InvalidInput("bbox is min_lon,min_lat,max_lon,max_lat", field="bbox") from None
    if not (-180 <= x1 < x2 <= 180 and -90 <= y1 < y2 <= 90):
        raise InvalidInput("bbox needs min < max within lon/lat ranges", field="bbox")
    return x1, y1, x2, y2
