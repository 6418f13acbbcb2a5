"""Ticket intake and lifecycle: the only place that writes tickets and their audit trail.

Services never commit; the caller (HTTP request, job, CLI) owns the transaction. Every change of
a ticket writes a TicketEvent in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import literal, or_, select, text, tuple_
from sqlalchemy.orm import Session

from server.auth.service import Principal
from server.core import sqlplan
from server.core.errors import Conflict, Forbidden, InvalidInput, InvalidTransition, NotFound
from server.core.schemas import PointOut
from server.core.sqlplan import Plan, Step
from server.customers import phones
from server.devices import work_orders  # [devices]
from server.models import SRID, Role, SlaClock, Ticket, TicketEvent, TicketLink, User
from server.notifications import service as notifications  # [notifications]
from server.outages.absorb import absorb_ctes  # [outages]
from server.settings import Settings
from server.tickets import sla
from server.tickets.ids import TicketIds
from server.tickets.lifecycle import (
    FIELD_CATEGORIES,
    FIRST_CONTACT_CATEGORIES,
    OPEN,
    CallbackOutcome,
    Category,
    RoleRefused,
    Status,
    TransitionRefused,
    check,
    event_kind,
)
from server.tickets.schemas import (
    CallbackIn,
    ClockOut,
    EventOut,
    LinkIn,
    LinkOut,
    TicketIn,
    TicketOut,
    TicketSummary,
    TransitionIn,
)

OPEN_VALUES = tuple(s.value for s in OPEN)


@dataclass(frozen=True)
class Policy:
    """The knobs of intake and SLA, from settings."""

    region: str = "CN"
    duplicate_radius_m: float = 100.0
    duplicate_window_hours: float = 24.0
    sla_warning_fraction: float = 0.8

    @classmethod
    def from_settings(cls, s: Settings) -> Policy:
        return cls(region=s.default_region, duplicate_radius_m=s.duplicate_radius_m,
                   duplicate_window_hours=s.duplicate_window_hours,
                   sla_warning_fraction=s.sla_warning_fraction)


def _event(session: Session, ticket: Ticket, actor: Principal | None, kind: str, now: datetime, *,
           src: str | None = None, dst: str | None = None, note: str | None = None,
           data: dict | None = None) -> None:
    session.add(TicketEvent(ticket_id=ticket.id, at=now, actor_id=actor.id if actor else None,
                            kind=kind, from_status=src, to_status=dst, note=note, data=data))


# Open tickets of a category near a point, nearest first (shared by the duplicate search and by
# the intake statement, which runs it as a CTE in the same round trip as the insert).
_DUPLICATES_SQL = """
SELECT t.id, t.category, t.priority, t.status, t.description, t.address,
       round(ST_X(t.location)::numeric, 7) AS lon, round(ST_Y(t.location)::numeric, 7) AS lat,
       t.created_at, t.sla_level,
       ST_Distance(geography(t.location), geography(p.here)) AS distance_m
FROM (SELECT ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), :srid)
        AS here) p
JOIN tickets t
  ON ST_DWithin(geography(t.location), geography(p.here), :radius)
WHERE t.status IN ('new', 'assigned', 'accepted', 'en_route', 'on_site')
  AND t.category = :category AND t.created_at >= :since
  AND (CAST(:exclude AS bigint) IS NULL OR t.id <> CAST(:exclude AS bigint))
ORDER BY distance_m
LIMIT :limit
"""
_DUPLICATES = text(_DUPLICATES_SQL)


def _summary_row(r) -> TicketSummary:
    return TicketSummary(
        id=r["id"], number=f"CL-{r['id']:07d}", category=r["category"], priority=r["priority"],
        status=r["status"], description=r["description"], address=r["address"],
        location=PointOut(lon=float(r["lon"]), lat=float(r["lat"])),
        created_at=r["created_at"], sla_level=r["sla_level"],
        distance_m=round(r["distance_m"], 1))


def _duplicate_params(*, category: str, lon: float | None, lat: float | None, now: datetime,
                      policy: Policy, exclude_id: int | None = None, limit: int = 10) -> dict:
    return {"lon": lon, "lat": lat, "srid": SRID, "radius": policy.duplicate_radius_m,
            "category": category, "since": now - timedelta(hours=policy.duplicate_window_hours),
            "exclude": exclude_id, "limit": limit}


def find_duplicates(session: Session, *, category: str, lon: float, lat: float, now: datetime,
                    policy: Policy, exclude_id: int | None = None,
                    limit: int = 10) -> list[TicketSummary]:
    """Open tickets of ``category`` within the radius (metres, on the geography type, through
    the partial GiST index on geography(location)) created inside the window, nearest first."""
    rows = session.execute(_DUPLICATES, _duplicate_params(
        category=category, lon=lon, lat=lat, now=now, policy=policy, exclude_id=exclude_id,
        limit=limit)).mappings()
    return [_summary_row(r) for r in rows]


def create(session: Session, data: TicketIn, actor: Principal, now: datetime,
           policy: Policy) -> tuple[TicketOut, list[TicketSummary]]:
    """:func:`create_plan` in the session's transaction (jobs, CLI, demo, tests): a fresh id
    from the sequence, the template overrides read anew."""
    return sqlplan.run(session, create_plan(data, actor, now, policy))


def create_plan(data: TicketIn, actor: Principal, now: datetime, policy: Policy, *,
                ids: TicketIds | None = None,
                overrides: notifications.TemplateOverrides | None = None,
                ) -> Plan[tuple[TicketOut, list[TicketSummary]]]:
    """Log a ticket: place it, write it with its audit event and SLA clocks, queue its
    "received" SMS, link it to an active outage that explains it. Returns the ticket and the open
    tickets nearby it may duplicate. A plan (:mod:`server.core.sqlplan`): the HTTP intake runs it
    on the event loop's async driver, everything else on a session.

    Its only writing step is one statement (so it may run in autocommit): before it, reads (the
    customer, service point or address; a block of ticket ids from ``ids`` when the process has
    none left; the "received" template overrides when ``overrides`` has none cached). The id
    being known, the SMS is rendered here and inserted by the statement; if the staff's template
    changed since it was cached, the statement fails having written nothing, and is tried once
    more with the stored template."""
    if ids is None:
        ids = TicketIds(1)
    if overrides is None:
        overrides = notifications.TemplateOverrides(notifications.TemplateKey.ticket_received)
    customer = None  # row of _CUSTOMER
    lon = lat = None
    address = data.address
    service_point_id = data.service_point_id
    if data.customer_id is not None:
        customer = yield Step(_CUSTOMER, {"id": data.customer_id}, writes=False)
        if customer is None:
            raise InvalidInput(f"customer {data.customer_id} does not exist", field="customer_id")
    if service_point_id is not None:
        sp = yield Step(_SERVICE_POINT, {"id": service_point_id}, writes=False)
        if sp is None:
            raise InvalidInput(f"service point {service_point_id} does not exist",
                               field="service_point_id")
        if customer is not None and sp.customer_id != customer.id:
            raise InvalidInput(f"service point {service_point_id} does not belong to customer "
                               f"{customer.id}", field="service_point_id")
        if customer is None:
            customer = yield Step(_CUSTOMER, {"id": sp.customer_id}, writes=False)
        lon, lat, address = sp.lon, sp.lat, address or sp.address
    elif data.location is not None:
        lon, lat = data.location.lon, data.location.lat
    elif customer is not None and customer.only_sp_id is not None:
        service_point_id, lon, lat = customer.only_sp_id, customer.only_sp_lon, customer.only_sp_lat
        address = address or customer.only_sp_address
    elif address:
        # a caller who is not the account holder names a street address: place it where a known
        # service point has that address (the utility's own address book is the geocoder)
        place = yield Step(_ADDRESS, {"address": address}, writes=False)
        if place is not None:
            lon, lat = place.lon, place.lat
    if lon is None and data.category in FIELD_CATEGORIES:
        hint = (f"the address {address!r} is not a known service address; " if address else "")
        raise InvalidInput(f"a {data.category.value} ticket needs a place: {hint}give "
                           "service_point_id or location", field="location")
    reporter_phone = (phones.normalize(data.reporter_phone, policy.region, field="reporter_phone")
                      if data.reporter_phone else None)
    values = {
        "category": data.category.value, "priority": data.priority.value,
        "channel": data.channel.value, "customer_id": customer.id if customer else None,
        "service_point_id": service_point_id, "lon": lon, "lat": lat, "address": address,
        "description": data.description,
        "reporter_name": data.reporter_name, "reporter_phone": reporter_phone,
        "language": data.language or (customer.language if customer else "zh-CN"),
    }
    ticket_id = yield from ids.take()
    params = {
        **values, **_duplicate_params(category=values["category"], lon=values["lon"],
                                      lat=values["lat"], now=now, policy=policy),
        "ticket_id": ticket_id, "actor": actor.id, "now": now,
        "channel_data": json.dumps({"channel": values["channel"]}),
        "warn_fraction": policy.sla_warning_fraction}
    for attempt in (1, 2):
        # the second time: the statement found the cached text stale, read the stored one
        by_language = yield from overrides.load(refresh=attempt == 2)
        sms = notifications.receipt_params(notifications.TicketRecipient(  # [notifications]
            ticket_id, values["customer_id"], values["language"], values["priority"],
            reporter_phone, customer.sms_mobile if customer else None,
            customer.sms_consent if customer else None, by_language.get(values["language"])))
        # one round trip: duplicates nearby (seen before the insert), the ticket, its audit
        # event with those duplicates, its SLA clocks, its "received" SMS, its outage link
        try:
            row = yield Step(_CREATE_SMS if sms else _CREATE, {**params, **(sms or {})},
                             recover=True)
            break
        except Exception as e:
            if attempt == 2 or sqlplan.sqlstate(e) != notifications.TEMPLATE_CHANGED:
                raise
    duplicates = [_summary_row(r) for r in (row.duplicates or [])]
    event_data = {"channel": values["channel"],
                  "possible_duplicates": [t.id for t in duplicates]}
    ticket = TicketOut(
        id=row.id, number=f"CL-{row.id:07d}", status=Status.new, created_at=now, updated_at=now,
        sla_level=0, location=PointOut(lon=round(lon, 7), lat=round(lat, 7)) if lon is not None else None,
        resolution_code=None, resolution_note=None, resolved_at=None, closed_at=None,
        close_reason=None, callback_outcome=None, callback_at=None, reopen_count=0,
        first_contact_resolution=False,
        **{k: v for k, v in values.items() if k not in ("lon", "lat")},
        sla=[ClockOut(**c, stopped_at=None, warned_at=None, escalated_at=None, state="running")
             for c in row.clocks],
        events=[EventOut(id=row.event_id, at=now, actor=actor.username, kind="created",
                         from_status=None, to_status=Status.new.value, note=None,
                         data=event_data)])
    return ticket, duplicates


# Where a ticket is placed from (intake): the customer, with its service point when it has
# exactly one; a service point; a known service address.
# With what the "received" SMS needs of the customer: its first mobile and its consent.
_CUSTOMER = text("""
SELECT c.id, c.preferred_language AS language, s.id AS only_sp_id, ST_X(s.geom) AS only_sp_lon,
       ST_Y(s.geom) AS only_sp_lat, s.address AS only_sp_address, c.sms_consent,
       (SELECT p.e164 FROM customer_phones p WHERE p.customer_id = c.id AND p.kind = 'mobile'
         ORDER BY p.id LIMIT 1) AS sms_mobile
FROM customers c
LEFT JOIN LATERAL (
  SELECT id, geom, address, count(*) OVER () AS n FROM service_points
  WHERE customer_id = c.id ORDER BY id LIMIT 1) s ON s.n = 1
WHERE c.id = :id
""")
_SERVICE_POINT = text("""
SELECT id, customer_id, ST_X(geom) AS lon, ST_Y(geom) AS lat, address FROM service_points
WHERE id = :id
""")
_ADDRESS = text("""
SELECT ST_X(geom) AS lon, ST_Y(geom) AS lat FROM service_points
WHERE lower(address) = lower(CAST(:address AS varchar)) ORDER BY id LIMIT 1
""")


# Duplicates, the ticket (its id given: server.tickets.ids), its "created" audit event, its SLA
# clocks, its outage link (with both audit events) and — _CREATE_SMS — its "received" SMS in one
# statement. Every CTE sees the snapshot from before the insert: the new ticket is never its own
# duplicate. The outage CTEs take the ticket's category, description and place from the
# INSERT's RETURNING, not from the table.
def _create_sql(sms: bool) -> str:
    sms_cte = f",\nsms AS ({notifications.receipt_cte('t')})" if sms else ""
    return f"""
WITH d AS ({_DUPLICATES_SQL}),
t AS (
  INSERT INTO tickets (id, category, priority, channel, status, customer_id, service_point_id,
      location, address, description, reporter_name, reporter_phone, language, created_by,
      created_at, updated_at, first_contact_resolution, reopen_count, sla_level)
  VALUES (:ticket_id, :category, :priority, :channel, 'new', :customer_id, :service_point_id,
      CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL
           ELSE ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), :srid) END,
      :address, :description, :reporter_name, :reporter_phone, :language, :actor,
      :now, :now, false, 0, 0)
  RETURNING id, category, description, location),
e AS (
  INSERT INTO ticket_events (ticket_id, at, actor_id, kind, to_status, data)
  SELECT t.id, :now, :actor, 'created', 'new',
         CAST(:channel_data AS jsonb) || jsonb_build_object('possible_duplicates',
           COALESCE((SELECT jsonb_agg(d.id ORDER BY d.distance_m) FROM d), '[]'::jsonb))
  FROM t
  RETURNING id),
c AS (
  INSERT INTO ticket_sla_clocks (ticket_id, clock, cycle, started_at, warn_at, due_at)
  SELECT t.id, c.clock, 0, :now, {sla.CLOCK_TIMES}
  FROM t, {sla.POLICY_CLOCKS_FROM}
  WHERE {sla.POLICY_CLOCKS_WHERE}
  RETURNING clock, cycle, started_at, warn_at, due_at),
{absorb_ctes('t', after='e')}{sms_cte}
SELECT t.id, e.id AS event_id,
       COALESCE((SELECT json_agg(json_build_object('clock', c.clock, 'cycle', c.cycle,
                   'started_at', c.started_at, 'warn_at', c.warn_at, 'due_at', c.due_at)
                   ORDER BY array_position(ARRAY['assign','arrive','resolve'], c.clock::text))
                 FROM c), '[]') AS clocks,
       (SELECT json_agg(d ORDER BY d.distance_m) FROM d) AS duplicates
FROM t, e
"""


_CREATE = text(_create_sql(sms=False))
_CREATE_SMS = text(_create_sql(sms=True))


def get(session: Session, ticket_id: int, *, lock: bool = False) -> Ticket:
    q = select(Ticket).where(Ticket.id == ticket_id)
    if lock:
        q = q.with_for_update()
    ticket = session.scalar(q)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found", field="ticket_id")
    return ticket


def transition(session: Session, ticket_id: int, body: TransitionIn, actor: Principal,
               now: datetime, policy: Policy) -> Ticket:
    ticket = get(session, ticket_id, lock=True)
    src, dst = Status(ticket.status), body.to
    try:
        check(src, dst, actor.role, Category(ticket.category))
    except TransitionRefused as exc:
        raise InvalidTransition(exc.message, field="to", code=exc.code) from None
    except RoleRefused as exc:
        raise Forbidden(str(exc), field="to") from None
    if dst is Status.resolved:
        if not body.resolution_code:
            raise InvalidInput("resolving needs a resolution_code", field="resolution_code")
        ticket.resolution_code, ticket.resolution_note = body.resolution_code, body.note
        ticket.resolved_at = now
        ticket.first_contact_resolution = src is Status.new
    if dst is Status.closed:
        needs_callback = not (ticket.first_contact_resolution
                              and Category(ticket.category) in FIRST_CONTACT_CATEGORIES)
        if needs_callback and ticket.callback_outcome is None and not body.reason:
            raise InvalidTransition(
                "a field ticket closes only after a callback (回访): record one with "
                f"POST /api/v1/tickets/{ticket.id}/callback, or give an explicit reason",
                field="reason", code="callback_required")
        ticket.closed_at, ticket.close_reason = now, body.reason
    _apply(session, ticket, src, dst, actor, now, policy, note=body.note or body.reason,
           data={"resolution_code": body.resolution_code} if body.resolution_code else None)
    return ticket


def _apply(session: Session, ticket: Ticket, src: Status, dst: Status, actor: Principal | None,
           now: datetime, policy: Policy, *, note: str | None, data: dict | None = None) -> None:
    kind = event_kind(src, dst)
    ticket.status = dst.value
    ticket.updated_at = now
    _event(session, ticket, actor, kind, now, src=src.value, dst=dst.value, note=note, data=data)
    sla.stop_clocks(session, ticket.id, dst.value, now)
    notifications.on_ticket_event(session, ticket.id, kind, now)  # [notifications] SMS outbox
    work_orders.on_status(session, ticket.id, src.value, dst.value, now)  # [devices] handsets
    if kind == "reopened":
        ticket.reopen_count += 1
        ticket.sla_level = 0
        ticket.resolved_at = ticket.closed_at = ticket.close_reason = None
        ticket.resolution_code = ticket.resolution_note = None
        ticket.callback_outcome = ticket.callback_at = None
        ticket.first_contact_resolution = False
        sla.start_clocks(session, ticket, now, policy.sla_warning_fraction)
    elif kind == "unassigned":
        sla.start_clocks(session, ticket, now, policy.sla_warning_fraction, clocks=("assign",))


def record_callback(session: Session, ticket_id: int, body: CallbackIn, actor: Principal,
                    now: datetime, policy: Policy) -> Ticket:
    ticket = get(session, ticket_id, lock=True)
    if actor.role not in (Role.agent, Role.manager, Role.admin):
        raise Forbidden(f"role {actor.role.value!r} may not record callbacks; allowed: agent, "
                        "manager, admin", field="outcome")
    if ticket.status != Status.resolved.value:
        raise InvalidTransition(f"a callback is recorded on a resolved ticket; this one is "
                                f"{ticket.status}", field="outcome", code="not_resolved")
    ticket.callback_outcome, ticket.callback_at = body.outcome.value, now
    _event(session, ticket, actor, "callback", now, note=body.note,
           data={"outcome": body.outcome.value})
    if body.outcome is CallbackOutcome.satisfied:
        ticket.closed_at = now
        _apply(session, ticket, Status.resolved, Status.closed, actor, now, policy,
               note="closed after a satisfied callback")
    elif body.outcome is CallbackOutcome.dissatisfied:
        _apply(session, ticket, Status.resolved, Status.new, actor, now, policy,
               note="reopened: the customer is not satisfied")
    return ticket


def reopen_on_customer_reply(session: Session, ticket_id: int, now: datetime, policy: Policy,
                             *, note: str) -> bool:
    """The customer answered the "resolved" SMS with N (not solved): a ticket still waiting for
    its callback goes back to the queue, like a dissatisfied callback; a closed or already
    reopened one is left to the desk (the reply stays in its events). Returns whether it did."""
    ticket = get(session, ticket_id, lock=True)
    if ticket.status != Status.resolved.value:
        return False
    _apply(session, ticket, Status.resolved, Status.new, None, now, policy, note=note,
           data={"source": "sms_reply"})
    return True


def link_duplicate(session: Session, ticket_id: int, body: LinkIn, actor: Principal,
                   now: datetime, policy: Policy) -> Ticket:
    """Record that ``ticket_id`` reports the same problem as ``duplicate_of``; a still-new
    duplicate is cancelled so that only the original is worked on."""
    if body.duplicate_of == ticket_id:
        raise InvalidInput("a ticket cannot duplicate itself", field="duplicate_of")
    first, second = sorted((ticket_id, body.duplicate_of))
    locked = {first: get(session, first, lock=True), second: get(session, second, lock=True)}
    ticket, original = locked[ticket_id], locked[body.duplicate_of]
    if original.status in (Status.cancelled.value, Status.closed.value):
        raise InvalidTransition(f"ticket {original.number} is {original.status}; link to an "
                                "open ticket", field="duplicate_of", code="link_target_closed")
    exists = session.scalar(select(TicketLink.id).where(
        or_((TicketLink.ticket_id == ticket.id) & (TicketLink.linked_ticket_id == original.id),
            (TicketLink.ticket_id == original.id) & (TicketLink.linked_ticket_id == ticket.id))))
    if exists:
        raise Conflict(f"{ticket.number} and {original.number} are already linked",
                       field="duplicate_of", code="already_linked")
    session.add(TicketLink(ticket_id=ticket.id, linked_ticket_id=original.id, kind="duplicate_of",
                           created_by=actor.id, created_at=now))
    _event(session, ticket, actor, "linked", now, note=body.note,
           data={"duplicate_of": original.id})
    _event(session, original, actor, "duplicate_reported", now, note=body.note,
           data={"ticket_id": ticket.id, "reporter_phone": ticket.reporter_phone})
    if ticket.status == Status.new.value:
        _apply(session, ticket, Status.new, Status.cancelled, actor, now, policy,
               note=f"duplicate of {original.number}")
    return ticket


def list_tickets(session: Session, *, status: list[Status] | None = None,
                 category: Category | None = None, customer_id: int | None = None,
                 before_id: int | None = None, limit: int = 50) -> list[Ticket]:
    """Newest first, by creation time (ids are not in creation order across server processes:
    server.tickets.ids); ``before_id`` pages on from that ticket."""
    q = select(Ticket).order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)
    if status:
        q = q.where(Ticket.status.in_([s.value for s in status]))
    if category:
        q = q.where(Ticket.category == category.value)
    if customer_id:
        q = q.where(Ticket.customer_id == customer_id)
    if before_id:
        anchor = session.scalar(select(Ticket.created_at).where(Ticket.id == before_id))
        if anchor is None:
            raise NotFound(f"ticket {before_id} not found: before_id pages on from a listed "
                           "ticket", field="before_id")
        q = q.where(tuple_(Ticket.created_at, Ticket.id) < tuple_(literal(anchor), literal(before_id)))
    return list(session.scalars(q))


# -- shaping ---------------------------------------------------------------------------------------
def summary(t: Ticket, distance_m: float | None = None) -> TicketSummary:
    return TicketSummary(
        id=t.id, number=t.number, category=t.category, priority=t.priority, status=t.status,
        description=t.description, address=t.address, location=PointOut.from_geom(t.location),
        created_at=t.created_at, sla_level=t.sla_level,
        distance_m=round(distance_m, 1) if distance_m is not None else None)


def _clock_state(c: SlaClock, now: datetime) -> str:
    if c.stopped_at is not None:
        return "met" if c.stopped_at <= c.due_at else "missed"
    if c.escalated_at is not None or now >= c.due_at:
        return "overdue"
    if c.warned_at is not None or now >= c.warn_at:
        return "warning"
    return "running"


def detail(session: Session, t: Ticket, now: datetime) -> TicketOut:
    events = session.execute(
        select(TicketEvent, User.username).outerjoin(User, User.id == TicketEvent.actor_id)
        .where(TicketEvent.ticket_id == t.id).order_by(TicketEvent.id)).all()
    clocks = session.scalars(select(SlaClock).where(SlaClock.ticket_id == t.id)
                             .order_by(SlaClock.id)).all()
    links = session.scalars(select(TicketLink).where(
        or_(TicketLink.ticket_id == t.id, TicketLink.linked_ticket_id == t.id))
        .order_by(TicketLink.id)).all()
    base = summary(t).model_dump()
    return TicketOut(
        **base, channel=t.channel, customer_id=t.customer_id, service_point_id=t.service_point_id,
        reporter_name=t.reporter_name, reporter_phone=t.reporter_phone, language=t.language,
        updated_at=t.updated_at, resolution_code=t.resolution_code,
        resolution_note=t.resolution_note, resolved_at=t.resolved_at, closed_at=t.closed_at,
        close_reason=t.close_reason, callback_outcome=t.callback_outcome,
        callback_at=t.callback_at, reopen_count=t.reopen_count,
        first_contact_resolution=t.first_contact_resolution,
        sla=[ClockOut(clock=c.clock, cycle=c.cycle, started_at=c.started_at, warn_at=c.warn_at,
                      due_at=c.due_at, stopped_at=c.stopped_at, warned_at=c.warned_at,
                      escalated_at=c.escalated_at, state=_clock_state(c, now)) for c in clocks],
        events=[EventOut(id=e.id, at=e.at, actor=name, kind=e.kind, from_status=e.from_status,
                         to_status=e.to_status, note=e.note, data=e.data) for e, name in events],
        links=[LinkOut(ticket_id=k.ticket_id, linked_ticket_id=k.linked_ticket_id, kind=k.kind,
                       created_at=k.created_at) for k in links],
    )
