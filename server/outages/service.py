"""Outages: the only writer of the outage tables. Services never commit.

Declaring, confirming, changing the ETR and restoring write an audit event and queue the SMS for
everyone affected in the same transaction, with one INSERT … SELECT over the area
(``notifications.service.OutageRecipients``): no Python loop per customer. Each message is keyed
by outage and revision (``notice``, ``etr-N``, ``restored``, ``planned``), so every customer hears
of each change exactly once however often a request or a job is retried.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from server.auth.service import Principal
from server.core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from server.models import SRID, Outage, OutageEvent, OutageTicket, Ticket, User
from server.models.outages import outage_ref
from server.notifications import service as notifications
from server.notifications.service import OutageRecipients, SmsPolicy
from server.outages import sql
from server.outages.schemas import (
    BufferArea,
    LinkedTicketOut,
    OutageDetail,
    OutageEventOut,
    OutageIn,
    OutageOut,
    OutagePatch,
    OutageStatus,
    OutageTransitionIn,
    OutageType,
    PolygonArea,
    PreviewOut,
    SmsCountsOut,
    StreetsArea,
)
from server.settings import Settings

log = structlog.get_logger()

# (from, to): the moves an outage can make. restored and dismissed are final.
TRANSITIONS: dict[OutageStatus, tuple[OutageStatus, ...]] = {
    OutageStatus.suspected: (OutageStatus.confirmed, OutageStatus.dismissed),
    OutageStatus.confirmed: (OutageStatus.restoring, OutageStatus.restored),
    OutageStatus.restoring: (OutageStatus.restored, OutageStatus.confirmed),
    OutageStatus.restored: (),
    OutageStatus.dismissed: (),
}


@dataclass(frozen=True)
class OutagePolicy:
    """The knobs of the outage domain, from settings."""

    timezone: str = "Asia/Shanghai"
    planned_notice_hours: float = 24.0
    street_buffer_m: float = 30.0
    sms: SmsPolicy = field(default_factory=SmsPolicy)

    @classmethod
    def from_settings(cls, s: Settings) -> OutagePolicy:
        return cls(timezone=s.sms_timezone, planned_notice_hours=s.outage_planned_notice_hours,
                   street_buffer_m=s.outage_street_buffer_m, sms=SmsPolicy.from_settings(s))

    def local(self, when: datetime) -> str:
        """A time as SMS texts show it: month-day hour:minute in the SMS time zone."""
        return when.astimezone(ZoneInfo(self.timezone)).strftime("%m-%d %H:%M")


# -- areas ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AreaSql:
    """An area as SQL expressions over bound parameters: the stored polygon, and for buffers the
    centre and radius that select exactly."""

    area: str
    center: str
    radius: str
    params: dict
    kind: str
    spec: dict


_BUFFER_SEGMENTS = 16  # quarter-circle segments: a 64-gon
# circumscribing the true circle: a 64-gon's edges come within r*cos(pi/64) of the centre
_BUFFER_GROW = 1.0015


def _area_sql(area: PolygonArea | BufferArea | StreetsArea, policy: OutagePolicy) -> AreaSql:
    if isinstance(area, PolygonArea):
        geojson = area.geometry.model_dump()
        return AreaSql("ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(CAST(:geojson AS text)), 4326))",
                       "CAST(NULL AS geometry)", "CAST(NULL AS float8)",
                       {"geojson": json.dumps(geojson)}, "polygon", {"geometry": geojson})
    if isinstance(area, BufferArea):
        point = "ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), 4326)"
        return AreaSql(
            f"ST_Multi(CAST(ST_Buffer(geography({point}), CAST(:radius AS float8) * {_BUFFER_GROW}"
            f" + 1, 'quad_segs={_BUFFER_SEGMENTS}') AS geometry))", point, "CAST(:radius AS float8)",
            {"lon": area.center.lon, "lat": area.center.lat, "radius": area.radius_m}, "buffer",
            {"center": {"lon": area.center.lon, "lat": area.center.lat},
             "radius_m": area.radius_m})
    buffer_m = area.buffer_m or policy.street_buffer_m
    names = sorted({n.strip().lower() for n in area.names})
    edges = ("(SELECT ST_Multi(ST_Union(CAST(ST_Buffer(geography(e.geom), "
             "CAST(:street_buffer AS float8), 'quad_segs=4') AS geometry))) FROM road_edges e "
             "WHERE e.id = ANY(CAST(:edge_ids AS bigint[])) "
             "OR lower(e.name) = ANY(CAST(:names AS text[])))")
    return AreaSql(edges, "CAST(NULL AS geometry)", "CAST(NULL AS float8)",
                   {"edge_ids": sorted(set(area.edge_ids)), "names": names,
                    "street_buffer": buffer_m}, "streets",
                   {"edge_ids": sorted(set(area.edge_ids)), "names": names, "buffer_m": buffer_m})


def _check_streets(session: Session, area: StreetsArea) -> None:
    ids = sorted(set(area.edge_ids))
    names = sorted({n.strip().lower() for n in area.names})
    found = session.execute(text(
        "SELECT COALESCE(array_agg(DISTINCT id) FILTER (WHERE id = ANY(:ids)), '{}'), "
        "COALESCE(array_agg(DISTINCT lower(name)) FILTER (WHERE lower(name) = ANY(:names)), '{}') "
        "FROM road_edges WHERE id = ANY(:ids) OR lower(name) = ANY(:names)"),
        {"ids": ids, "names": names}).one()
    missing_ids = sorted(set(ids) - set(found[0]))
    if missing_ids:
        raise InvalidInput(f"no road edge with id {', '.join(map(str, missing_ids[:10]))}",
                           field="area.edge_ids", code="unknown_street")
    missing_names = sorted(set(names) - set(found[1]))
    if missing_names:
        raise InvalidInput(f"no street named {', '.join(repr(n) for n in missing_names[:10])}",
                           field="area.names", code="unknown_street")


def _validated(session: Session, area: PolygonArea | BufferArea | StreetsArea,
               policy: OutagePolicy) -> AreaSql:
    """The area's SQL once PostGIS agrees it is a valid, non-empty (multi)polygon."""
    if isinstance(area, StreetsArea):
        _check_streets(session, area)
    a = _area_sql(area, policy)
    try:
        with session.begin_nested():
            row = session.execute(text(
                f"SELECT ST_IsValid(g) AS valid, ST_IsValidReason(g) AS reason, "
                f"ST_IsEmpty(g) AS empty FROM (SELECT {a.area} AS g) x"), a.params).one()
    except DBAPIError as exc:  # PostGIS refused to parse it (e.g. an unclosed ring)
        message = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
        raise InvalidInput(f"the area is not a usable polygon: {message}", field="area",
                           code="invalid_area") from None
    if row.empty:
        raise InvalidInput("the area is empty", field="area", code="invalid_area")
    if not row.valid:
        raise InvalidInput(f"the area is not a valid polygon: {row.reason}", field="area",
                           code="invalid_area")
    return a


def _affected_sql(kind: str | None, source: str) -> str:
    """Service points inside the area of ``source`` (a relation named o)."""
    return (f"FROM {source} o JOIN service_points sp ON {sql.covers('sp.geom', kind)}")


_COUNTS = """
SELECT count(*) AS service_points, count(DISTINCT sp.customer_id) AS customers,
       count(DISTINCT sp.customer_id) FILTER (WHERE c.sms_consent AND EXISTS (
           SELECT 1 FROM customer_phones p WHERE p.customer_id = c.id AND p.kind = 'mobile'
             AND NOT EXISTS (SELECT 1 FROM sms_opt_outs x WHERE x.e164 = p.e164)))
         AS reachable
{affected} JOIN customers c ON c.id = sp.customer_id
"""


def preview(session: Session, area: PolygonArea | BufferArea | StreetsArea,
            policy: OutagePolicy) -> PreviewOut:
    """How many service points and customers an area covers, before anything is declared."""
    a = _validated(session, area, policy)
    source = f"(SELECT {a.area} AS area, {a.center} AS center, {a.radius} AS radius_m)"
    counts = session.execute(text(_COUNTS.format(affected=_affected_sql(a.kind, source))),
                             a.params).one()
    shape = session.execute(text(
        f"SELECT ST_AsGeoJSON(g, 7) AS geojson, ST_Area(geography(g)) AS m2 "
        f"FROM (SELECT {a.area} AS g) x"), a.params).one()
    return PreviewOut(service_points=counts.service_points, customers=counts.customers,
                      reachable_by_sms=counts.reachable, area=json.loads(shape.geojson),
                      area_m2=round(shape.m2, 1))


_temp_tables = itertools.count(1)


def affected_table(session: Session, outage: Outage) -> tuple[str, int]:
    """Materialise the outage's affected customer ids in a temporary table (dropped at commit)
    and ANALYZE it, so the planner knows whether it is 10 customers or 100,000 and joins their
    phones accordingly (hash joins for a whole district instead of 100,000 index probes).
    Returns the table's name and how many customers it holds."""
    name = f"outage_affected_{outage.id}_{next(_temp_tables)}"
    count = session.execute(text(
        f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS SELECT DISTINCT sp.customer_id AS id "
        f"{_affected_sql(outage.area_kind, 'outages')} WHERE o.id = :outage_id"),
        {"outage_id": outage.id}).rowcount
    session.execute(text(f"ANALYZE {name}"))
    outage.affected_customers = count
    return name, count


def recipients(outage: Outage, table: str | None = None) -> OutageRecipients:
    """Everyone to tell about ``outage``: customers served inside the area (from
    ``affected_table`` when given) and the callers who asked for updates (IVR)."""
    customers = (f"SELECT id FROM {table}" if table else
                 f"SELECT sp.customer_id {_affected_sql(outage.area_kind, 'outages')} "
                 f"WHERE o.id = :outage_id")
    return OutageRecipients(
        customers=customers,
        numbers="SELECT e164, language, customer_id FROM outage_subscriptions "
                "WHERE outage_id = :outage_id",
        params={"outage_id": outage.id})


# -- audit ---------------------------------------------------------------------------------------

def _event(session: Session, outage: Outage, actor: Principal | None, kind: str, now: datetime,
           *, src: str | None = None, dst: str | None = None, data: dict | None = None) -> None:
    session.add(OutageEvent(outage_id=outage.id, at=now, actor_id=actor.id if actor else None,
                            kind=kind, from_status=src, to_status=dst, data=data))


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


# -- notifications -------------------------------------------------------------------------------

def _send_notice(session: Session, outage: Outage, now: datetime, policy: OutagePolicy,
                 table: str | None = None) -> int:
    """The first notice of a confirmed outage, once (guarded by notice_sent_at under the row
    lock, and by the messages' revision key)."""
    if outage.notice_sent_at is not None:
        return 0
    outage.notice_sent_at = now
    return _queue_notice(session, outage, now, policy, table)


def _queue_notice(session: Session, outage: Outage, now: datetime, policy: OutagePolicy,
                  table: str | None = None, reason: str | None = None) -> int:
    """Queue the notice (with the current ETR) for everyone in the area who has not had it: its
    revision key makes it once per number, so after an area change only the newcomers get it."""
    to = recipients(outage, table or affected_table(session, outage)[0])
    if outage.type == OutageType.planned_maintenance.value:
        quiet_until = policy.sms.quiet_until(now)
        # held through quiet hours like any non-urgent text, unless the work starts before then
        urgent = quiet_until is not None and quiet_until >= outage.starts_at
        queued = notifications.on_planned_notice(
            session, outage.ref, to, area=outage.area_name, start=policy.local(outage.starts_at),
            etr=policy.local(outage.etr), now=now, urgent=urgent, revision="planned")
        template = "planned_notice"
    else:
        queued = notifications.on_outage_notice(session, outage.ref, to, area=outage.area_name,
                                                etr=policy.local(outage.etr), now=now,
                                                revision="notice")
        template = "outage_notice"
    _event(session, outage, None, "notified", now, data={
        "template": template, "queued": queued, **({"reason": reason} if reason else {})})
    log.info("outage notice queued", outage=outage.ref, queued=queued)
    return queued


def _notice_due(outage: Outage, now: datetime, policy: OutagePolicy) -> bool:
    if outage.status not in (OutageStatus.confirmed.value, OutageStatus.restoring.value):
        return False
    if outage.type != OutageType.planned_maintenance.value:
        return True
    return outage.starts_at - timedelta(hours=policy.planned_notice_hours) <= now


def send_due_planned_notices(session: Session, now: datetime, policy: OutagePolicy) -> list[int]:
    """The periodic sweep: planned outages whose notice time has come, each exactly once
    (rows locked SKIP LOCKED, marked in the same transaction as their messages)."""
    due = session.scalars(
        select(Outage).where(Outage.type == OutageType.planned_maintenance.value,
                             Outage.status == OutageStatus.confirmed.value,
                             Outage.notice_sent_at.is_(None),
                             Outage.starts_at <= now + timedelta(
                                 hours=policy.planned_notice_hours))
        .order_by(Outage.starts_at).with_for_update(skip_locked=True)).all()
    for outage in due:
        _send_notice(session, outage, now, policy)
    return [o.id for o in due]


# -- commands ------------------------------------------------------------------------------------

def get(session: Session, outage_id: int, *, lock: bool = False) -> Outage:
    q = select(Outage).where(Outage.id == outage_id)
    if lock:
        q = q.with_for_update()
    outage = session.scalar(q)
    if outage is None:
        raise NotFound(f"outage {outage_id} not found", field="outage_id")
    return outage


def declare(session: Session, data: OutageIn, actor: Principal | None, now: datetime,
            policy: OutagePolicy, *, source: str = "manual") -> Outage:
    """Record an outage; a confirmed one tells every affected customer (planned maintenance: when
    its notice time comes)."""
    starts_at = data.starts_at or now
    if data.etr is not None and data.etr <= starts_at:
        raise InvalidInput("etr must be after starts_at", field="etr")
    if data.status == "confirmed" and data.etr is None:
        raise InvalidInput("a confirmed outage needs an etr (customers are told when supply "
                           "returns)", field="etr", code="etr_required")
    if data.type is OutageType.planned_maintenance and data.status != "confirmed":
        raise InvalidInput("planned maintenance is declared confirmed", field="status")
    a = _validated(session, data.area, policy)
    outage_id = session.execute(text(f"""
        INSERT INTO outages (type, status, source, area_name, description, area_kind, area_spec,
            area, center, radius_m, starts_at, etr, revision, etr_revision, affected_customers,
            created_by, created_at, updated_at)
        VALUES (:type, :status, :source, :area_name, :description, :kind,
            CAST(:spec AS jsonb), {a.area}, {a.center}, {a.radius}, :starts_at, :etr, 1, 0, 0,
            :actor, :now, :now)
        RETURNING id"""), {
        **a.params, "type": data.type.value, "status": data.status, "source": source,
        "area_name": data.area_name, "description": data.description, "kind": a.kind,
        "spec": json.dumps(a.spec), "starts_at": starts_at, "etr": data.etr,
        "actor": actor.id if actor else None, "now": now}).scalar_one()
    outage = get(session, outage_id)
    table, affected = affected_table(session, outage)
    _event(session, outage, actor, "declared", now, dst=outage.status, data={
        "type": outage.type, "area_kind": outage.area_kind, "area_name": outage.area_name,
        "starts_at": _iso(starts_at), "etr": _iso(data.etr), "affected_customers": affected,
        "source": source})
    if _notice_due(outage, now, policy):
        _send_notice(session, outage, now, policy, table)
    return outage


def transition(session: Session, outage_id: int, body: OutageTransitionIn, actor: Principal,
               now: datetime, policy: OutagePolicy) -> Outage:
    outage = get(session, outage_id, lock=True)
    src, dst = OutageStatus(outage.status), body.to
    if dst not in TRANSITIONS[src]:
        allowed = ", ".join(s.value for s in TRANSITIONS[src]) or "nowhere (final)"
        raise InvalidTransition(f"outage {outage.ref} is {src.value}; it can go to {allowed}",
                                field="to")
    if body.etr is not None and body.etr != outage.etr:
        if body.etr <= outage.starts_at:
            raise InvalidInput("etr must be after starts_at", field="etr")
        if outage.notice_sent_at is not None:
            raise InvalidInput("change the ETR of an announced outage with PATCH (customers are "
                               "told of the change)", field="etr")
        outage.etr = body.etr
    if dst is OutageStatus.confirmed and outage.etr is None:
        raise InvalidInput("confirming needs an etr", field="etr", code="etr_required")
    outage.status = dst.value
    outage.revision += 1
    outage.updated_at = now
    data = {"note": body.note} if body.note else None
    if dst in (OutageStatus.restored, OutageStatus.dismissed):
        outage.closed_at = now
    if dst is OutageStatus.restored:
        outage.restored_at = now
    _event(session, outage, actor, dst.value if dst is not OutageStatus.confirmed
           or src is OutageStatus.suspected else "setback", now, src=src.value, dst=dst.value,
           data=data)
    if dst is OutageStatus.restored and outage.notice_sent_at is not None:
        queued = notifications.on_restoration(session, outage.ref, recipients(
                                              outage, affected_table(session, outage)[0]),
                                              area=outage.area_name, now=now,
                                              revision="restored")
        _event(session, outage, None, "notified", now,
               data={"template": "restoration", "queued": queued})
    elif _notice_due(outage, now, policy):
        _send_notice(session, outage, now, policy)
    return outage


def update(session: Session, outage_id: int, body: OutagePatch, actor: Principal,
           now: datetime, policy: OutagePolicy) -> Outage:
    """Change the ETR (announced outages: every customer is told once per change), the area
    (customers newly inside get the notice; nobody else is texted), the name or the
    description."""
    outage = get(session, outage_id, lock=True)
    if outage.status in (OutageStatus.restored.value, OutageStatus.dismissed.value):
        raise Conflict(f"outage {outage.ref} is {outage.status}; it can no longer change",
                       field="status", code="outage_closed")
    changes: dict = {}
    area_changed = False
    if body.area is not None:
        if body.etr is not None and body.etr != outage.etr:
            raise InvalidInput("change the area and the ETR in two requests (newcomers get the "
                               "notice with the ETR of the moment)", field="area")
        a = _validated(session, body.area, policy)
        if a.kind != outage.area_kind or a.spec != outage.area_spec:
            changes["area"] = [{"kind": outage.area_kind, **outage.area_spec},
                               {"kind": a.kind, **a.spec}]
            session.execute(text(f"""
                UPDATE outages SET area = {a.area}, center = {a.center}, radius_m = {a.radius},
                    area_kind = :kind, area_spec = CAST(:spec AS jsonb)
                WHERE id = :id"""), {**a.params, "kind": a.kind, "spec": json.dumps(a.spec),
                                     "id": outage.id})
            session.refresh(outage)
            area_changed = True
            table, affected = affected_table(session, outage)
            changes["area"][1]["affected_customers"] = affected
    if body.area_name is not None and body.area_name != outage.area_name:
        changes["area_name"] = [outage.area_name, body.area_name]
        outage.area_name = body.area_name
    if body.description is not None and body.description != outage.description:
        changes["description"] = [outage.description, body.description]
        outage.description = body.description
    etr_changed = body.etr is not None and body.etr != outage.etr
    if etr_changed:
        if body.etr <= outage.starts_at:
            raise InvalidInput("etr must be after starts_at", field="etr")
        changes["etr"] = [_iso(outage.etr), _iso(body.etr)]
        outage.etr = body.etr
        outage.etr_revision += 1
    if not changes:
        return outage  # nothing changed: no revision, no message (a retried PATCH is a no-op)
    outage.revision += 1
    outage.updated_at = now
    kind = "etr_changed" if etr_changed else "area_changed" if area_changed else "updated"
    _event(session, outage, actor, kind, now,
           data={"changes": changes, "etr_revision": outage.etr_revision,
                 **({"note": body.note} if body.note else {})})
    if area_changed and outage.notice_sent_at is not None:
        _queue_notice(session, outage, now, policy, table, reason="area_changed")
    if etr_changed and outage.notice_sent_at is not None:
        queued = notifications.on_etr_change(
            session, outage.ref, recipients(outage, affected_table(session, outage)[0]),
            area=outage.area_name,
            etr=policy.local(outage.etr), now=now, revision=f"etr-{outage.etr_revision}")
        _event(session, outage, None, "notified", now,
               data={"template": "etr_change", "queued": queued,
                     "etr_revision": outage.etr_revision})
    return outage


def link_ticket(session: Session, outage_id: int, ticket_id: int, actor: Principal,
                now: datetime, *, source: str = "manual") -> None:
    outage = get(session, outage_id, lock=True)
    if session.get(Ticket, ticket_id) is None:
        raise InvalidInput(f"ticket {ticket_id} does not exist", field="ticket_id")
    # One statement, no check-then-insert: a link made meanwhile by absorption or inference
    # (committed, or committing: the insert waits for it) makes this a no-op, answered 409.
    inserted = session.scalar(
        pg_insert(OutageTicket).values(ticket_id=ticket_id, outage_id=outage.id, source=source,
                                       linked_by=actor.id, linked_at=now)
        .on_conflict_do_nothing(index_elements=["ticket_id"]).returning(OutageTicket.ticket_id))
    if inserted is None:
        other = session.scalar(select(OutageTicket.outage_id)
                               .where(OutageTicket.ticket_id == ticket_id))
        raise Conflict(f"ticket {ticket_id} is already linked to outage {outage_ref(other)}",
                       field="ticket_id", code="already_linked")
    _event(session, outage, actor, "ticket_linked", now,
           data={"ticket_id": ticket_id, "source": source})
    session.execute(text(
        "INSERT INTO ticket_events (ticket_id, at, actor_id, kind, data) VALUES (:t, :now, "
        ":actor, 'outage_linked', CAST(:data AS jsonb))"),
        {"t": ticket_id, "now": now, "actor": actor.id,
         "data": json.dumps({"outage_id": outage.id, "ref": outage.ref, "source": source})})


# -- reading -------------------------------------------------------------------------------------

_LIST = text(f"""
SELECT o.id, ST_AsGeoJSON(o.area, 7) AS geojson,
       (SELECT count(*) FROM outage_tickets ot WHERE ot.outage_id = o.id) AS linked
FROM outages o
WHERE (CAST(:statuses AS text[]) IS NULL OR o.status = ANY(CAST(:statuses AS text[])))
  AND (CAST(:bbox AS float8[]) IS NULL OR o.area && ST_MakeEnvelope(
       (CAST(:bbox AS float8[]))[1], (CAST(:bbox AS float8[]))[2],
       (CAST(:bbox AS float8[]))[3], (CAST(:bbox AS float8[]))[4], {SRID}))
  AND (CAST(:before_id AS bigint) IS NULL OR o.id < CAST(:before_id AS bigint))
ORDER BY o.id DESC LIMIT :limit
""")


def _out(session: Session, o: Outage, geojson: str, linked: int) -> dict:
    return dict(
        id=o.id, ref=o.ref, type=o.type, status=o.status, source=o.source,
        area_name=o.area_name, description=o.description, area_kind=o.area_kind,
        area_spec=o.area_spec, area=json.loads(geojson), starts_at=o.starts_at, etr=o.etr,
        restored_at=o.restored_at, closed_at=o.closed_at, notice_sent_at=o.notice_sent_at,
        revision=o.revision, etr_revision=o.etr_revision, created_at=o.created_at,
        updated_at=o.updated_at, affected_customers=o.affected_customers,
        linked_tickets=linked, allowed_transitions=list(TRANSITIONS[OutageStatus(o.status)]))


def list_outages(session: Session, *, statuses: list[str] | None = None,
                 bbox: tuple[float, float, float, float] | None = None,
                 before_id: int | None = None, limit: int = 50) -> list[OutageOut]:
    rows = session.execute(_LIST, {"statuses": statuses, "bbox": list(bbox) if bbox else None,
                                   "before_id": before_id, "limit": limit}).all()
    outages = {o.id: o for o in session.scalars(
        select(Outage).where(Outage.id.in_([r.id for r in rows])))}
    return [OutageOut(**_out(session, outages[r.id], r.geojson, r.linked)) for r in rows]


def detail(session: Session, outage_id: int) -> OutageDetail:
    o = get(session, outage_id)
    geojson = session.execute(text("SELECT ST_AsGeoJSON(area, 7) FROM outages WHERE id = :id"),
                              {"id": o.id}).scalar_one()
    events = session.execute(
        select(OutageEvent, User.username).outerjoin(User, User.id == OutageEvent.actor_id)
        .where(OutageEvent.outage_id == o.id).order_by(OutageEvent.id)).all()
    tickets = session.execute(text("""
        SELECT ot.ticket_id, ot.source, ot.linked_at, t.category, t.status,
               ST_X(t.location) AS lon, ST_Y(t.location) AS lat
        FROM outage_tickets ot JOIN tickets t ON t.id = ot.ticket_id
        WHERE ot.outage_id = :id ORDER BY ot.ticket_id"""), {"id": o.id}).all()
    sms = session.execute(text("""
        SELECT template, status, count(*) AS n FROM sms_messages WHERE outage_ref = :ref
        GROUP BY template, status ORDER BY template, status"""), {"ref": o.ref}).all()
    return OutageDetail(
        **_out(session, o, geojson, len(tickets)),
        events=[OutageEventOut(id=e.id, at=e.at, actor=name, kind=e.kind,
                               from_status=e.from_status, to_status=e.to_status, data=e.data)
                for e, name in events],
        tickets=[LinkedTicketOut(
            ticket_id=t.ticket_id, number=f"CL-{t.ticket_id:07d}", category=t.category,
            status=t.status, source=t.source, linked_at=t.linked_at,
            location=None if t.lon is None else {"lon": round(t.lon, 7), "lat": round(t.lat, 7)})
            for t in tickets],
        sms=[SmsCountsOut(template=s.template, status=s.status, count=s.n) for s in sms])


def geojson(session: Session, outages: list[OutageOut]) -> dict:
    """A FeatureCollection for maps (the console's outage layer)."""
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": o.id, "geometry": o.area,
         "properties": {k: v for k, v in o.model_dump(mode="json").items() if k != "area"}}
        for o in outages]}
