from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from server.auth.deps import get_clock, get_session, require
from server.auth.service import Principal
from server.core.clock import Clock
from server.core.errors import InvalidInput
from server.crews import service
from server.crews.schemas import (
    CrewIn,
    CrewOut,
    CrewPatch,
    CrewStateIn,
    PositionsIn,
    PositionsOut,
    Shift,
    Skill,
)
from server.dispatch import service as dispatch
from server.dispatch.deps import dispatch_config
from server.models import Role

router = APIRouter(prefix="/api/v1/crews", tags=["crews"])
READERS = (Role.dispatcher, Role.manager, Role.technician)


@router.get("/geojson")
def crews_geojson(bbox: str | None = Query(None, description="min_lon,min_lat,max_lon,max_lat"),
                  _: Principal = Depends(require(Role.dispatcher, Role.manager)),
                  session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
                  cfg: dispatch.DispatchConfig = Depends(dispatch_config)) -> dict:
    """Crews with a position as GeoJSON points (``stale``: older than the freshness limit)."""
    return service.geojson(session, dispatch.validate_bbox(bbox), clock.now() - cfg.stale_after)


@router.post("", response_model=CrewOut, status_code=201)
def create_crew(body: CrewIn, _: Principal = Depends(require(Role.manager)),
                session: Session = Depends(get_session), clock: Clock = Depends(get_clock)):
    crew = service.create(session, body, clock.now())
    session.commit()
    return service.detail(session, [crew])[0]


@router.get("", response_model=list[CrewOut])
def list_crews(active: bool | None = True, shift: Shift | None = None, skill: Skill | None = None,
               after_id: int | None = Query(None, ge=1), limit: int = Query(200, ge=1, le=1000),
               _: Principal = Depends(require(*READERS)),
               session: Session = Depends(get_session)) -> list[CrewOut]:
    return service.detail(session, service.list_crews(
        session, active=active, shift=shift.value if shift else None,
        skill=skill.value if skill else None, limit=limit, after_id=after_id))


@router.get("/{crew_id}", response_model=CrewOut)
def get_crew(crew_id: int, _: Principal = Depends(require(*READERS)),
             session: Session = Depends(get_session)) -> CrewOut:
    return service.detail(session, [service.get(session, crew_id)])[0]


@router.patch("/{crew_id}", response_model=CrewOut)
def patch_crew(crew_id: int, body: CrewPatch, _: Principal = Depends(require(Role.manager)),
               session: Session = Depends(get_session), clock: Clock = Depends(get_clock)):
    crew = service.patch(session, crew_id, body, clock.now())
    session.commit()
    return service.detail(session, [crew])[0]


@router.delete("/{crew_id}", response_model=CrewOut)
def deactivate_crew(crew_id: int, _: Principal = Depends(require(Role.manager)),
                    session: Session = Depends(get_session), clock: Clock = Depends(get_clock)):
    """Deactivate (crews are kept for the history of their assignments and tracks)."""
    crew = service.deactivate(session, crew_id, clock.now())
    session.commit()
    return service.detail(session, [crew])[0]


@router.post("/{crew_id}/state", response_model=CrewOut)
def set_state(crew_id: int, body: CrewStateIn,
              principal: Principal = Depends(require(Role.technician, Role.dispatcher,
                                                     Role.manager)),
              session: Session = Depends(get_session), clock: Clock = Depends(get_clock)):
    """Shift (on_shift, break, off) and field status; technicians only for their own crew."""
    service.get(session, crew_id)
    crew = service.set_state(session, crew_id, body, principal, clock.now())
    session.commit()
    return service.detail(session, [crew])[0]


@router.post("/{crew_id}/positions", response_model=PositionsOut)
def report_positions(crew_id: int, body: PositionsIn,
                     principal: Principal = Depends(require(Role.technician, Role.dispatcher)),
                     session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
                     cfg: dispatch.DispatchConfig = Depends(dispatch_config)) -> PositionsOut:
    """A batch of GPS fixes (oldest or newest first, any order); implausible jumps are flagged."""
    out = dispatch.report_positions(session, crew_id, body.fixes, principal, clock.now(), cfg)
    session.commit()
    return out


@router.get("/{crew_id}/track")
def track(crew_id: int, since: datetime, until: datetime | None = None,
          _: Principal = Depends(require(Role.dispatcher, Role.manager)),
          session: Session = Depends(get_session), clock: Clock = Depends(get_clock)) -> dict:
    """The crew's recorded fixes as a GeoJSON FeatureCollection of points, oldest first."""
    service.get(session, crew_id)
    until = until or clock.now()
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidInput("times need a time zone", field="since")
    if until - since > timedelta(days=7) or until <= since:
        raise InvalidInput("give since < until, at most 7 days apart", field="since")
    rows = service.track(session, crew_id, since, until)
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
        "properties": {"at": r["at"].isoformat(), "accuracy_m": r["accuracy_m"],
                       "heading_deg": r["heading_deg"], "speed_mps": r["speed_mps"],
                       "implausible": r["implausible"]}} for r in rows]}
