from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from server.auth.deps import STAFF_DESK, current_principal, get_clock, get_session, require
from server.auth.service import Principal
from server.core import sqlplan
from server.core.clock import Clock
from server.models import Role
from server.notifications import service as notifications  # [notifications]
from server.tickets import service
from server.tickets.ids import TicketIds
from server.tickets.lifecycle import Category, Status
from server.tickets.schemas import (
    CallbackIn,
    LinkIn,
    TicketCreated,
    TicketIn,
    TicketOut,
    TicketSummary,
    TransitionIn,
)

router = APIRouter(prefix="/api/v1/tickets", tags=["tickets"])
# technicians act on tickets (accept, en route, …); their own job list arrives with dispatch
ACTORS = (*STAFF_DESK, Role.technician)


async def policy(request: Request) -> service.Policy:
    pol = getattr(request.app.state, "ticket_policy", None)
    if pol is None:
        pol = request.app.state.ticket_policy = service.Policy.from_settings(
            request.app.state.settings)
    return pol


def _intake_state(request: Request) -> tuple[TicketIds, notifications.TemplateOverrides]:
    """This process's ticket id block and cached "received" template (one per app)."""
    state = request.app.state
    ids = getattr(state, "ticket_ids", None)
    if ids is None:
        ids = state.ticket_ids = TicketIds(state.settings.ticket_id_block)
    overrides = getattr(state, "receipt_templates", None)
    if overrides is None:
        overrides = state.receipt_templates = notifications.TemplateOverrides(
            notifications.TemplateKey.ticket_received)
    return ids, overrides


@router.post("", response_model=TicketCreated, status_code=201)
async def create_ticket(request: Request, body: TicketIn,
                        principal: Principal = Depends(require(*STAFF_DESK)),
                        clock: Clock = Depends(get_clock),
                        pol: service.Policy = Depends(policy)) -> TicketCreated:
    """The call-center's hot path runs on the event loop, on psycopg's async driver: no thread
    hand-off, no ORM session (docs/benchmarks.md, intake). The rules are the same plan every
    other caller runs on a session. Its writes are one statement, so it runs in autocommit: one
    round trip when the process has ticket ids left and no customer is named."""
    now = clock.now()
    ids, overrides = _intake_state(request)
    async with request.app.state.async_db.connection() as conn:
        ticket, duplicates = await sqlplan.run_async(
            conn, service.create_plan(body, principal, now, pol, ids=ids, overrides=overrides))
    # built from validated parts already: serialised once, not validated again on the way out
    return Response(TicketCreated(ticket=ticket, possible_duplicates=duplicates).model_dump_json(),
                    status_code=201, media_type="application/json")


@router.get("/duplicates", response_model=list[TicketSummary])
def duplicates(category: Category, lon: float = Query(ge=-180, le=180),
               lat: float = Query(ge=-90, le=90),
               _: Principal = Depends(require(*STAFF_DESK)),
               session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
               pol: service.Policy = Depends(policy)) -> list[TicketSummary]:
    """Open tickets of the category near a point, before the agent logs a new one."""
    return service.find_duplicates(session, category=category.value, lon=lon, lat=lat,
                                   now=clock.now(), policy=pol)


@router.get("", response_model=list[TicketSummary])
def list_tickets(status: list[Status] | None = Query(None), category: Category | None = None,
                 customer_id: int | None = Query(None, ge=1),
                 before_id: int | None = Query(None, ge=1), limit: int = Query(50, ge=1, le=500),
                 _: Principal = Depends(require(*STAFF_DESK)),
                 session: Session = Depends(get_session)) -> list[TicketSummary]:
    return [service.summary(t) for t in service.list_tickets(
        session, status=status, category=category, customer_id=customer_id,
        before_id=before_id, limit=limit)]


@router.get("/{ticket_id}", response_model=TicketOut)
def get_ticket(ticket_id: int, _: Principal = Depends(require(*STAFF_DESK)),
               session: Session = Depends(get_session), clock: Clock = Depends(get_clock)):
    return service.detail(session, service.get(session, ticket_id), clock.now())


@router.post("/{ticket_id}/transitions", response_model=TicketOut)
def transition(ticket_id: int, body: TransitionIn,
               principal: Principal = Depends(require(*ACTORS)),
               session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
               pol: service.Policy = Depends(policy)) -> TicketOut:
    now = clock.now()
    ticket = service.transition(session, ticket_id, body, principal, now, pol)
    session.commit()
    return service.detail(session, ticket, now)


@router.post("/{ticket_id}/callback", response_model=TicketOut)
def callback(ticket_id: int, body: CallbackIn,
             principal: Principal = Depends(require(Role.agent, Role.manager)),
             session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
             pol: service.Policy = Depends(policy)) -> TicketOut:
    now = clock.now()
    ticket = service.record_callback(session, ticket_id, body, principal, now, pol)
    session.commit()
    return service.detail(session, ticket, now)


@router.post("/{ticket_id}/links", response_model=TicketOut)
def link(ticket_id: int, body: LinkIn, principal: Principal = Depends(require(*STAFF_DESK)),
         session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
         pol: service.Policy = Depends(policy)) -> TicketOut:
    now = clock.now()
    ticket = service.link_duplicate(session, ticket_id, body, principal, now, pol)
    session.commit()
    return service.detail(session, ticket, now)


__all__ = ["current_principal", "router"]
