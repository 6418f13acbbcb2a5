from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from server.auth.deps import get_clock, get_session, require
from server.auth.service import Principal
from server.core.clock import Clock
from server.core.errors import InvalidInput
from server.crews.schemas import Skill
from server.dispatch import service
from server.dispatch.deps import dispatch_config
from server.dispatch.schemas import AssignIn, AssignmentOut, Suggestions
from server.models import Role

router = APIRouter(prefix="/api/v1", tags=["dispatch"])
DISPATCH = (Role.dispatcher, Role.manager)


@router.get("/tickets/{ticket_id}/suggestions", response_model=Suggestions)
def suggestions(ticket_id: int, limit: int = Query(5, ge=1, le=50),
                skill: str | None = Query(
                    None, description="override the skill derived from the ticket: one of "
                                      + ", ".join(s.value for s in Skill) + ", or 'any'"),
                road: bool = Query(True, description="false: straight-line estimates only"),
                _: Principal = Depends(require(*DISPATCH)),
                session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
                cfg: service.DispatchConfig = Depends(dispatch_config)) -> Suggestions:
    kw = {}
    if skill is not None:
        if skill != "any" and skill not in Skill.__members__:
            raise InvalidInput(f"unknown skill {skill!r}; use one of "
                               + ", ".join(s.value for s in Skill) + " or 'any'", field="skill")
        kw["skill"] = None if skill == "any" else Skill(skill)
    return service.suggest(session, ticket_id, clock.now(), cfg, limit=limit, road=road, **kw)


@router.get("/tickets/{ticket_id}/assignment", response_model=AssignmentOut | None)
def current(ticket_id: int,
            _: Principal = Depends(require(Role.dispatcher, Role.manager, Role.technician)),
            session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
            cfg: service.DispatchConfig = Depends(dispatch_config)) -> AssignmentOut | None:
    """The ticket's current assignment with the crew's route from where it is now (or null)."""
    a = service.current_assignment(session, ticket_id)
    return service.assignment_out(session, a, route=True, now=clock.now(), cfg=cfg) if a else None


@router.get("/tickets/{ticket_id}/assignments", response_model=list[AssignmentOut])
def assignments(ticket_id: int, _: Principal = Depends(require(*DISPATCH)),
                session: Session = Depends(get_session)) -> list[AssignmentOut]:
    return [service.assignment_out(session, a) for a in service.history(session, ticket_id)]


@router.post("/tickets/{ticket_id}/assignment", response_model=AssignmentOut, status_code=201)
def assign(ticket_id: int, body: AssignIn, principal: Principal = Depends(require(*DISPATCH)),
           session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
           cfg: service.DispatchConfig = Depends(dispatch_config)) -> AssignmentOut:
    a = service.assign(session, ticket_id, body.crew_id, principal, clock.now(), cfg, body.note)
    session.commit()
    return service.assignment_out(session, a)


@router.put("/tickets/{ticket_id}/assignment", response_model=AssignmentOut)
def reassign(ticket_id: int, body: AssignIn, principal: Principal = Depends(require(*DISPATCH)),
             session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
             cfg: service.DispatchConfig = Depends(dispatch_config)) -> AssignmentOut:
    a = service.reassign(session, ticket_id, body.crew_id, principal, clock.now(), cfg, body.note)
    session.commit()
    return service.assignment_out(session, a)


@router.delete("/tickets/{ticket_id}/assignment", response_model=AssignmentOut)
def unassign(ticket_id: int, principal: Principal = Depends(require(*DISPATCH)),
             session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
             cfg: service.DispatchConfig = Depends(dispatch_config)) -> AssignmentOut:
    """End the ticket's assignment; the ticket goes back to new and its assign clock restarts."""
    a = service.unassign(session, ticket_id, principal, clock.now(), cfg)
    session.commit()
    return service.assignment_out(session, a)


@router.get("/dispatch/tickets/geojson")
def tickets_geojson(bbox: str | None = Query(None, description="min_lon,min_lat,max_lon,max_lat"),
                    _: Principal = Depends(require(*DISPATCH)),
                    session: Session = Depends(get_session)) -> dict:
    """Open tickets with a location, their crew and current ETA, as GeoJSON points."""
    return service.tickets_geojson(session, service.validate_bbox(bbox))
