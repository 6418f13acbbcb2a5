"""Ticket intake and lifecycle: the only place that writes tickets and their audit trail.

Services never commit; the caller (HTTP request, job, CLI) owns the transaction. Every change of
a ticket writes a TicketEvent in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from geoalchemy2.shape import to_shape
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from server.auth.service import Principal
from server.core.errors import Conflict, Forbidden, InvalidInput, InvalidTransition, NotFound
from server.customers import phones
from server.customers import service as customers
from server.models import SRID, Customer, Role, SlaClock, Ticket, TicketEvent, TicketLink, User
from server.tickets import sla
from server.tickets.lifecycle import (FIELD_CATEGORIES, FIRST_CONTACT_CATEGORIES, OPEN,
                                      CallbackOutcome, Category, RoleRefused, Status,
                                      TransitionRefused, check, event_kind)
from server.tickets.schemas import (CallbackIn, ClockOut, EventOut, LinkIn, LinkOut, TicketIn,
                                    TicketOut, TicketSummary, TransitionIn)
from server.core.schemas import PointOut

OPEN_VALUES = tuple(s.value for s in OPEN)


@dataclass(frozen=True)
class Policy:
    """The knobs of intake and SLA, from settings."""

    region: str = "CN"
    duplicate_radius_m: float = 100.0
    duplicate_window_hours: float = 24.0
    sla_warning_fraction: float = 0.8


def _event(session: Session, ticket: Ticket, actor: Principal | None, kind: str, now: datetime, *,
           src: str | None = None, dst: str | None = None, note: str | None = None,
           data: dict | None = None) -> None:
    session.add(TicketEvent(ticket_id=ticket.id, at=now, actor_id=actor.id if actor else None,
                            kind=kind, from_status=src, to_status=dst, note=note, data=data))


def find_duplicates(session: Session, *, category: str, location, now: datetime, policy: Policy,
                    exclude_id: int | None = None, limit: int = 10) -> list[tuple[Ticket, float]]:
    """Open tickets of ``category`` within the radius (metres, on the geography type) and window."""
    point = to_shape(location)
    # geography(x) is exactly the expression of the partial GiST index (location::geography);
    # CAST(… AS geography(GEOMETRY,-1)) as GeoAlchemy2 renders it would not use that index
    here = func.geography(func.ST_SetSRID(func.ST_MakePoint(point.x, point.y), SRID))
    there = func.geography(Ticket.location)
    distance = func.ST_Distance(there, here).label("distance_m")
    q = (select(Ticket, distance)
         .where(Ticket.status.in_(OPEN_VALUES), Ticket.category == category,
                Ticket.location.is_not(None),
                func.ST_DWithin(there, here, policy.duplicate_radius_m),
                Ticket.created_at >= now - timedelta(hours=policy.duplicate_window_hours))
         .order_by(distance).limit(limit))
    if exclude_id:
        q = q.where(Ticket.id != exclude_id)
    return [(t, float(d)) for t, d in session.execute(q).all()]


def create(session: Session, data: TicketIn, actor: Principal, now: datetime,
           policy: Policy) -> tuple[Ticket, list[tuple[Ticket, float]]]:
    customer: Customer | None = None
    location = None
    address = data.address
    service_point_id = data.service_point_id
    if data.customer_id is not None:
        customer = session.get(Customer, data.customer_id)
        if customer is None:
            raise InvalidInput(f"customer {data.customer_id} does not exist", field="customer_id")
    if service_point_id is not None:
        sp = session.get(customers.ServicePoint, service_point_id)
        if sp is None:
            raise InvalidInput(f"service point {service_point_id} does not exist",
                               field="service_point_id")
        if customer is not None and sp.customer_id != customer.id:
            raise InvalidInput(f"service point {service_point_id} does not belong to customer "
                               f"{customer.id}", field="service_point_id")
        customer = customer or session.get(Customer, sp.customer_id)
        location, address = sp.geom, address or sp.address
    elif data.location is not None:
        location = data.location.to_wkb()
    elif customer is not None and len(customer.service_points) == 1:
        sp = customer.service_points[0]
        service_point_id, location, address = sp.id, sp.geom, address or sp.address
    if location is None and data.category in FIELD_CATEGORIES:
        raise InvalidInput(f"a {data.category.value} ticket needs a place: give service_point_id "
                           "or location", field="location")
    reporter_phone = (phones.normalize(data.reporter_phone, policy.region, field="reporter_phone")
                      if data.reporter_phone else None)
    ticket = Ticket(
        category=data.category.value, priority=data.priority.value, channel=data.channel.value,
        status=Status.new.value, customer_id=customer.id if customer else None,
        service_point_id=service_point_id, location=location, address=address,
        description=data.description, reporter_name=data.reporter_name,
        reporter_phone=reporter_phone,
        language=data.language or (customer.preferred_language if customer else "zh-CN"),
        created_by=actor.id, created_at=now, updated_at=now, reopen_count=0, sla_level=0,
        first_contact_resolution=False)
    duplicates = (find_duplicates(session, category=ticket.category, location=location, now=now,
                                  policy=policy) if location is not None else [])
    session.add(ticket)
    session.flush()
    _event(session, ticket, actor, "created", now, dst=Status.new.value,
           data={"channel": ticket.channel, "possible_duplicates": [t.id for t, _ in duplicates]})
    sla.start_clocks(session, ticket, now, policy.sla_warning_fraction, fresh=True)
    return ticket, duplicates


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
    q = select(Ticket).order_by(Ticket.id.desc()).limit(limit)
    if status:
        q = q.where(Ticket.status.in_([s.value for s in status]))
    if category:
        q = q.where(Ticket.category == category.value)
    if customer_id:
        q = q.where(Ticket.customer_id == customer_id)
    if before_id:
        q = q.where(Ticket.id < before_id)
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
