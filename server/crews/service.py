"""Crews and their positions: the only writer of crews, crew_members and crew_positions.

Services never commit; the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from geoalchemy2.shape import to_shape
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gis.geo import distance_m
from server.auth.service import Principal
from server.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.core.schemas import PointOut
from server.crews.schemas import (
    CrewIn,
    CrewOut,
    CrewPatch,
    CrewStateIn,
    CrewStatus,
    FixIn,
    LivePosition,
    MemberOut,
)
from server.dispatch.routing import NEAREST_EDGE
from server.models import SRID, Crew, CrewMember, Role, User

# tickets that occupy a crew: assigned and not yet resolved (a ticket moved back to new, resolved
# or cancelled through the ticket desk frees the crew even before its assignment row is closed)
BUSY = ("assigned", "accepted", "en_route", "on_site")
ACTIVE_JOBS_SQL = (
    "(SELECT count(*) FROM dispatch_assignments a JOIN tickets t ON t.id = a.ticket_id "
    "WHERE a.crew_id = {crew} AND a.ended_at IS NULL "
    "AND t.status IN ('assigned','accepted','en_route','on_site'))")
# a fix may be a little ahead of our clock (handset clocks drift), not minutes
FUTURE_TOLERANCE = timedelta(minutes=2)


_RESNAP = """
UPDATE crews c SET snap_edge_id = s.edge_id, snap_fraction = s.fraction,
       snap_distance_m = s.dist_m
FROM (SELECT c2.id AS crew_id, e.id AS edge_id, e.fraction, e.dist_m FROM crews c2
      {lateral}
      WHERE c2.position IS NOT NULL AND (CAST(:crew AS bigint) IS NULL OR c2.id = :crew)) s
WHERE c.id = s.crew_id
""".replace("{lateral}", NEAREST_EDGE.format(pt="c2.position"))


def resnap(session: Session, crew_id: int | None = None) -> None:
    """Recompute where crews' live positions join the road graph (one crew, or all after the
    graph was replaced)."""
    session.execute(text("UPDATE crews SET snap_edge_id = NULL, snap_fraction = NULL, "
                         "snap_distance_m = NULL WHERE CAST(:crew AS bigint) IS NULL "
                         "OR id = :crew"), {"crew": crew_id})
    session.execute(text(_RESNAP), {"crew": crew_id})


def active_jobs(session: Session, crew_id: int) -> int:
    return int(session.execute(text("SELECT " + ACTIVE_JOBS_SQL.format(crew=":crew")),
                               {"crew": crew_id}).scalar_one())


def get(session: Session, crew_id: int, *, lock: bool = False, field: str = "crew_id") -> Crew:
    q = select(Crew).where(Crew.id == crew_id)
    if lock:
        q = q.with_for_update().execution_options(populate_existing=True)
    crew = session.scalar(q)
    if crew is None:
        raise NotFound(f"crew {crew_id} not found", field=field)
    return crew


def crew_of(session: Session, user_id: int) -> int | None:
    return session.scalar(select(CrewMember.crew_id).where(CrewMember.user_id == user_id))


def authorize_crew_actor(session: Session, crew_id: int, actor: Principal) -> None:
    """Technicians act only for their own crew; dispatchers, managers and admins for any."""
    if actor.role is Role.technician and crew_of(session, actor.id) != crew_id:
        raise Forbidden(f"technician {actor.username!r} is not a member of crew {crew_id}",
                        field="crew_id")


def _set_members(session: Session, crew: Crew, user_ids: list[int]) -> None:
    if len(set(user_ids)) != len(user_ids):
        raise InvalidInput("members lists a user twice", field="members")
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}
    for i, uid in enumerate(user_ids):
        user = users.get(uid)
        if user is None:
            raise InvalidInput(f"user {uid} does not exist", field=f"members.{i}")
        if user.role != Role.technician.value:
            raise InvalidInput(f"user {user.username!r} is a {user.role}; crews are made of "
                               "technicians", field=f"members.{i}")
    others = session.execute(select(CrewMember.user_id, CrewMember.crew_id).where(
        CrewMember.user_id.in_(user_ids), CrewMember.crew_id != crew.id)).all()
    if others:
        uid, cid = others[0]
        raise Conflict(f"user {users[uid].username!r} already belongs to crew {cid}",
                       field="members", code="member_in_other_crew")
    session.execute(delete(CrewMember).where(CrewMember.crew_id == crew.id))
    for uid in user_ids:
        session.add(CrewMember(crew_id=crew.id, user_id=uid))


def create(session: Session, data: CrewIn, now: datetime) -> Crew:
    if session.scalar(select(Crew.id).where(Crew.name == data.name)):
        raise Conflict(f"a crew named {data.name!r} exists", field="name", code="duplicate_name")
    crew = Crew(name=data.name, vehicle=data.vehicle,
                depot=data.depot.to_wkb() if data.depot else None,
                skills=sorted({s.value for s in data.skills}), shift=data.shift.value,
                status=CrewStatus.available.value, capacity=data.capacity, active=True,
                updated_at=now)
    session.add(crew)
    try:
        session.flush()
    except IntegrityError:  # a concurrent create with the same name
        raise Conflict(f"a crew named {data.name!r} exists", field="name",
                       code="duplicate_name") from None
    _set_members(session, crew, data.members)
    session.flush()
    return crew


def patch(session: Session, crew_id: int, data: CrewPatch, now: datetime) -> Crew:
    crew = get(session, crew_id, lock=True)
    fields = data.model_fields_set
    if "name" in fields and data.name and data.name != crew.name:
        if session.scalar(select(Crew.id).where(Crew.name == data.name)):
            raise Conflict(f"a crew named {data.name!r} exists", field="name",
                           code="duplicate_name")
        crew.name = data.name
    if "vehicle" in fields:
        crew.vehicle = data.vehicle
    if "depot" in fields:
        crew.depot = data.depot.to_wkb() if data.depot else None
    if "skills" in fields and data.skills is not None:
        crew.skills = sorted({s.value for s in data.skills})
    if "capacity" in fields and data.capacity is not None:
        busy = active_jobs(session, crew.id)
        if data.capacity < busy:
            raise Conflict(f"crew {crew.name} holds {busy} jobs; capacity cannot go below that",
                           field="capacity", code="capacity_below_jobs")
        crew.capacity = data.capacity
    if "members" in fields and data.members is not None:
        _set_members(session, crew, data.members)
    crew.updated_at = now
    session.flush()
    return crew


def set_state(session: Session, crew_id: int, data: CrewStateIn, actor: Principal,
              now: datetime) -> Crew:
    authorize_crew_actor(session, crew_id, actor)
    if data.shift is None and data.status is None:
        raise InvalidInput("give shift, status or both", field="shift")
    crew = get(session, crew_id, lock=True)
    if not crew.active:
        raise Conflict(f"crew {crew.name} is deactivated", field="crew_id", code="crew_inactive")
    if data.shift is not None:
        crew.shift = data.shift.value
    if data.status is not None:
        crew.status = data.status.value
    crew.updated_at = now
    return crew


def deactivate(session: Session, crew_id: int, now: datetime) -> Crew:
    crew = get(session, crew_id, lock=True)
    busy = active_jobs(session, crew.id)
    if busy:
        raise Conflict(f"crew {crew.name} holds {busy} open jobs; unassign or reassign them first",
                       field="crew_id", code="crew_busy")
    crew.active, crew.shift, crew.status, crew.updated_at = False, "off", "offline", now
    session.execute(delete(CrewMember).where(CrewMember.crew_id == crew.id))
    return crew


def list_crews(session: Session, *, active: bool | None = True, shift: str | None = None,
               skill: str | None = None, limit: int = 200, after_id: int | None = None
               ) -> list[Crew]:
    q = select(Crew).order_by(Crew.id).limit(limit)
    if active is not None:
        q = q.where(Crew.active.is_(active))
    if shift:
        q = q.where(Crew.shift == shift)
    if skill:
        q = q.where(Crew.skills.contains([skill]))
    if after_id:
        q = q.where(Crew.id > after_id)
    return list(session.scalars(q))


def live_position(crew: Crew) -> LivePosition | None:
    if crew.position is None or crew.position_at is None:
        return None
    p = to_shape(crew.position)
    return LivePosition(lon=round(p.x, 7), lat=round(p.y, 7), at=crew.position_at,
                        accuracy_m=crew.accuracy_m, heading_deg=crew.heading_deg,
                        speed_mps=crew.speed_mps)


def detail(session: Session, crews: list[Crew]) -> list[CrewOut]:
    ids = [c.id for c in crews]
    if not ids:
        return []
    members: dict[int, list[MemberOut]] = {}
    for cid, uid, username, full_name in session.execute(
            select(CrewMember.crew_id, User.id, User.username, User.full_name)
            .join(User, User.id == CrewMember.user_id).where(CrewMember.crew_id.in_(ids))
            .order_by(User.id)):
        members.setdefault(cid, []).append(MemberOut(user_id=uid, username=username,
                                                      full_name=full_name))
    jobs = dict(session.execute(text(
        "SELECT a.crew_id, count(*) FROM dispatch_assignments a "
        "JOIN tickets t ON t.id = a.ticket_id "
        "WHERE a.crew_id = ANY(:ids) AND a.ended_at IS NULL "
        "AND t.status IN ('assigned','accepted','en_route','on_site') GROUP BY a.crew_id"),
        {"ids": ids}).all())
    return [CrewOut(id=c.id, name=c.name, vehicle=c.vehicle, depot=PointOut.from_geom(c.depot),
                    skills=list(c.skills or []), shift=c.shift, status=c.status,
                    capacity=c.capacity, active=c.active, active_jobs=int(jobs.get(c.id, 0)),
                    members=members.get(c.id, []), position=live_position(c)) for c in crews]


@dataclass(frozen=True)
class RecordedFix:
    index: int
    fix: FixIn
    implausible: bool
    applied: bool


def record_fixes(session: Session, crew: Crew, fixes: list[FixIn], actor: Principal | None,
                 now: datetime, max_speed_kmh: float) -> list[RecordedFix]:
    """Store every fix in the history; flag (never drop) a fix that would need more than
    ``max_speed_kmh`` from the last plausible one; move the live position to the newest plausible
    fix. ``crew`` must be locked by the caller (so concurrent batches judge jumps in order)."""
    for i, fix in enumerate(fixes):
        if fix.at > now + FUTURE_TOLERANCE:
            raise InvalidInput(f"fix taken at {fix.at.isoformat()} is in the future (server time "
                               f"{now.isoformat()})", field=f"fixes.{i}.at")
    max_mps = max_speed_kmh / 3.6
    last = None
    if crew.position is not None and crew.position_at is not None:
        p = to_shape(crew.position)
        last = (p.x, p.y, crew.position_at)
    results: list[RecordedFix] = []
    rows = []
    newest: FixIn | None = None
    for i, fix in sorted(enumerate(fixes), key=lambda item: item[1].at):
        implausible = False
        if last is not None:
            elapsed = (fix.at - last[2]).total_seconds()
            metres = distance_m(last[0], last[1], fix.lon, fix.lat)
            if elapsed > 0:
                implausible = metres / elapsed > max_mps
            elif elapsed == 0:
                implausible = metres > 1.0  # two places at the same instant
            else:
                implausible = False  # an older fix, kept for the track only
        applied = not implausible and (last is None or fix.at > last[2])
        if applied:
            last = (fix.lon, fix.lat, fix.at)
            newest = fix
        results.append(RecordedFix(i, fix, implausible, applied))
        rows.append((fix.at, float(fix.lon), float(fix.lat), _float(fix.accuracy_m),
                     _float(fix.heading_deg), _float(fix.speed_mps), implausible))
    # one statement for the batch (a column per array): a handset's merged uplink is hundreds of
    # fixes, and a statement per row cost PostgreSQL more than everything else the bridge does
    columns = list(zip(*rows, strict=True)) if rows else [[]] * 7
    session.execute(_INSERT_FIXES, {
        "crew": crew.id, "received": now, "srid": SRID, "by": actor.id if actor else None,
        **{name: list(col) for name, col in zip(
            ("at", "lon", "lat", "acc", "heading", "speed", "implausible"), columns, strict=True)}})
    if newest is not None:
        session.execute(update(Crew).where(Crew.id == crew.id).values(
            position=func.ST_SetSRID(func.ST_MakePoint(newest.lon, newest.lat), SRID),
            position_at=newest.at, accuracy_m=newest.accuracy_m, heading_deg=newest.heading_deg,
            speed_mps=newest.speed_mps, updated_at=now).execution_options(
                synchronize_session=False))
        resnap(session, crew.id)
        session.refresh(crew)
    return sorted(results, key=lambda r: r.index)


def _float(x: float | None) -> float | None:
    return None if x is None else float(x)  # an array holds one type: no int among the floats


_INSERT_FIXES = text("""
INSERT INTO crew_positions (crew_id, at, received_at, geom, accuracy_m, heading_deg, speed_mps,
    implausible, reported_by)
SELECT :crew, f.at, :received, ST_SetSRID(ST_MakePoint(f.lon, f.lat), :srid), f.acc, f.heading,
       f.speed, f.implausible, :by
FROM unnest(CAST(:at AS timestamptz[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]),
            CAST(:acc AS float8[]), CAST(:heading AS float8[]), CAST(:speed AS float8[]),
            CAST(:implausible AS boolean[])) AS f(at, lon, lat, acc, heading, speed, implausible)
""")


def track(session: Session, crew_id: int, since: datetime, until: datetime,
          limit: int = 5000) -> list[dict]:
    rows = session.execute(text(
        "SELECT at, ST_X(geom) AS lon, ST_Y(geom) AS lat, accuracy_m, heading_deg, speed_mps, "
        "implausible FROM crew_positions WHERE crew_id = :crew AND at >= :since AND at < :until "
        "ORDER BY at LIMIT :limit"), {"crew": crew_id, "since": since, "until": until,
                                      "limit": limit}).mappings()
    return [dict(r) for r in rows]


def geojson(session: Session, bbox: tuple[float, float, float, float] | None,
            fresh_since: datetime) -> dict:
    """Active crews with a position (inside ``bbox`` when given) as a FeatureCollection."""
    where = "c.active AND c.position IS NOT NULL"
    params: dict = {"fresh": fresh_since, "srid": SRID}
    if bbox:
        where += " AND c.position && ST_MakeEnvelope(:x1, :y1, :x2, :y2, :srid)"
        params.update(x1=bbox[0], y1=bbox[1], x2=bbox[2], y2=bbox[3])
    rows = session.execute(text(
        f"SELECT c.id, c.name, c.shift, c.status, c.capacity, c.skills, c.position_at, "
        f"ST_X(c.position) AS lon, ST_Y(c.position) AS lat, c.position_at >= :fresh AS fresh, "
        f"{ACTIVE_JOBS_SQL.format(crew='c.id')} AS jobs FROM crews c WHERE {where} "
        f"ORDER BY c.id LIMIT 5000"), params).mappings()
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature", "id": r["id"],
        "geometry": {"type": "Point", "coordinates": [round(r["lon"], 7), round(r["lat"], 7)]},
        "properties": {"name": r["name"], "shift": r["shift"], "status": r["status"],
                       "capacity": r["capacity"], "active_jobs": r["jobs"],
                       "skills": list(r["skills"] or []),
                       "position_at": r["position_at"].isoformat(),
                       "stale": not r["fresh"]}} for r in rows]}
