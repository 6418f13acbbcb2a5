"""Outages over HTTP: staff API (dispatchers, managers and admins write; agents read), the public
status (no login, no customer data) and the Twilio Voice webhooks (signature-checked)."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from server.auth.deps import get_clock, get_session, require
from server.auth.service import Principal
from server.core.clock import Clock
from server.core.errors import InvalidInput
from server.models import Role
from server.notifications.router import signed_form
from server.outages import inference, ivr, public, service
from server.outages.schemas import (
    OutageDetail,
    OutageIn,
    OutageOut,
    OutagePatch,
    OutageStatus,
    OutageTransitionIn,
    PreviewIn,
    PreviewOut,
    PublicCheckOut,
    TicketLinkIn,
)
from sms_gateway import is_e164

router = APIRouter(prefix="/api/v1/outages", tags=["outages"])
log = structlog.get_logger()
WRITERS = (Role.dispatcher, Role.manager)
READERS = (Role.agent, Role.dispatcher, Role.manager)


def policy(request: Request) -> service.OutagePolicy:
    pol = getattr(request.app.state, "outage_policy", None)
    if pol is None:
        pol = request.app.state.outage_policy = service.OutagePolicy.from_settings(
            request.app.state.settings)
    return pol


def _bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        parts = tuple(float(p) for p in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or not (-180 <= parts[0] < parts[2] <= 180
                               and -90 <= parts[1] < parts[3] <= 90):
        raise InvalidInput("bbox is min_lon,min_lat,max_lon,max_lat", field="bbox")
    return parts  # type: ignore[return-value]


# -- public (no login) ---------------------------------------------------------------------------

@router.get("/public")
def public_status(request: Request, session: Session = Depends(get_session)) -> dict:
    """Active outages (confirmed, restoring; planned ones with their start) as GeoJSON with
    simplified, rounded areas. No login; nothing about customers."""
    s = request.app.state.settings
    return public.active(session, simplify_m=s.outage_public_simplify_m,
                         decimals=s.outage_public_decimals)


@router.get("/public/check", response_model=PublicCheckOut)
def public_check(request: Request, lon: float | None = Query(None, ge=-180, le=180),
                 lat: float | None = Query(None, ge=-90, le=90),
                 address: str | None = Query(None, min_length=1, max_length=300),
                 session: Session = Depends(get_session)) -> PublicCheckOut:
    """Is there an outage at this point (lon, lat) or address? No login. An unknown address is
    answered like a known one outside every outage: the answer never tells whose it is."""
    if address is None and (lon is None or lat is None):
        raise InvalidInput("give lon and lat, or an address", field="lon" if lon is None
                           else "lat")
    return public.at(session, lon=lon, lat=lat, address=address,
                     decimals=request.app.state.settings.outage_public_decimals)


# -- Twilio Voice (signed, no JWT) ---------------------------------------------------------------

def _twiml(body: str) -> Response:
    return Response(body, media_type="application/xml")


def _caller(form: list[tuple[str, str]]) -> str:
    sender = dict(form).get("From", "")
    if not is_e164(sender):
        # withheld or non-E.164 caller ID: no lookup, the call still reaches an agent
        return ""
    return sender


@router.post("/ivr/voice", response_class=Response)
def ivr_voice(request: Request, form: list[tuple[str, str]] | JSONResponse = Depends(signed_form),
              session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
              pol: service.OutagePolicy = Depends(policy)):
    """Inbound call: announce the caller's outage and ETR, offer SMS updates (press 1), then
    queue the call to an agent. Answers TwiML."""
    if isinstance(form, JSONResponse):
        return form
    settings = request.app.state.settings
    try:
        return _twiml(ivr.answer(session, _caller(form), clock.now(), settings, pol))
    except Exception:  # the caller must reach a person whatever broke here
        log.exception("ivr answer failed; routing the call to an agent")
        return _twiml(ivr.straight_to_agent(settings))


@router.post("/ivr/gather", response_class=Response)
def ivr_gather(request: Request, outage_id: int | None = Query(None, ge=1),
               lang: str = Query("zh-CN", max_length=8),
               form: list[tuple[str, str]] | JSONResponse = Depends(signed_form),
               session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
               pol: service.OutagePolicy = Depends(policy)):
    """The key the caller pressed: 1 subscribes the caller's number to this outage's SMS."""
    if isinstance(form, JSONResponse):
        return form
    if outage_id is None:
        raise InvalidInput("the gather URL names the outage", field="outage_id")
    fields = dict(form)
    settings = request.app.state.settings
    try:
        twiml = ivr.after_gather(session, outage_id, lang, fields.get("Digits", ""),
                                 _caller(form), clock.now(), settings, pol)
        session.commit()
    except Exception:  # e.g. an outage id that no longer exists: still put the caller through
        session.rollback()
        log.exception("ivr gather failed; routing the call to an agent", outage_id=outage_id)
        twiml = ivr.straight_to_agent(settings, lang)
    return _twiml(twiml)


# -- staff ---------------------------------------------------------------------------------------

@router.post("/preview", response_model=PreviewOut)
def preview(body: PreviewIn, _: Principal = Depends(require(*WRITERS)),
            session: Session = Depends(get_session),
            pol: service.OutagePolicy = Depends(policy)) -> PreviewOut:
    """How many service points / customers an area covers (and how many SMS can reach), before
    declaring anything."""
    return service.preview(session, body.area, pol)


@router.get("", response_model=list[OutageOut])
def list_outages(status: list[OutageStatus] | None = Query(None),
                 active: bool = Query(False, description="only suspected, confirmed, restoring"),
                 bbox: str | None = Query(None, description="min_lon,min_lat,max_lon,max_lat"),
                 before_id: int | None = Query(None, ge=1), limit: int = Query(50, ge=1, le=500),
                 _: Principal = Depends(require(*READERS)),
                 session: Session = Depends(get_session)) -> list[OutageOut]:
    statuses = [s.value for s in status] if status else None
    if active:
        statuses = [s for s in ("suspected", "confirmed", "restoring")
                    if statuses is None or s in statuses]
    return service.list_outages(session, statuses=statuses, bbox=_bbox(bbox),
                                before_id=before_id, limit=limit)


@router.get("/geojson")
def outages_geojson(status: list[OutageStatus] | None = Query(None),
                    bbox: str | None = Query(None, description="min_lon,min_lat,max_lon,max_lat"),
                    _: Principal = Depends(require(*READERS)),
                    session: Session = Depends(get_session)) -> dict:
    """Outages (default: open ones) as a GeoJSON FeatureCollection, for the map."""
    statuses = ([s.value for s in status] if status
                else ["suspected", "confirmed", "restoring"])
    return service.geojson(session, service.list_outages(
        session, statuses=statuses, bbox=_bbox(bbox), limit=500))


@router.post("", response_model=OutageDetail, status_code=201)
def declare(body: OutageIn, principal: Principal = Depends(require(*WRITERS)),
            session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
            pol: service.OutagePolicy = Depends(policy)) -> OutageDetail:
    """Declare an outage. Confirmed: every affected customer is texted now (planned maintenance:
    the configured time ahead)."""
    outage = service.declare(session, body, principal, clock.now(), pol)
    session.commit()
    return service.detail(session, outage.id)


@router.post("/infer", response_model=list[OutageOut])
def infer_now(request: Request, _: Principal = Depends(require(*WRITERS)),
              session: Session = Depends(get_session),
              clock: Clock = Depends(get_clock)) -> list[OutageOut]:
    """Run outage inference now (the worker runs it periodically); returns outages raised."""
    result = inference.run(session, clock.now(),
                           inference.InferencePolicy.from_settings(request.app.state.settings))
    session.commit()
    return [service.detail(session, i) for i in result.raised]


@router.get("/{outage_id}", response_model=OutageDetail)
def get_outage(outage_id: int, _: Principal = Depends(require(*READERS)),
               session: Session = Depends(get_session)) -> OutageDetail:
    """An outage with its audit trail, linked tickets and SMS counts."""
    return service.detail(session, outage_id)


@router.patch("/{outage_id}", response_model=OutageDetail)
def update(outage_id: int, body: OutagePatch, principal: Principal = Depends(require(*WRITERS)),
           session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
           pol: service.OutagePolicy = Depends(policy)) -> OutageDetail:
    """Change the ETR (customers already told get exactly one update per change), name or
    description."""
    service.update(session, outage_id, body, principal, clock.now(), pol)
    session.commit()
    return service.detail(session, outage_id)


@router.post("/{outage_id}/transitions", response_model=OutageDetail)
def transition(outage_id: int, body: OutageTransitionIn,
               principal: Principal = Depends(require(*WRITERS)),
               session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
               pol: service.OutagePolicy = Depends(policy)) -> OutageDetail:
    """suspected → confirmed | dismissed; confirmed → restoring | restored; restoring → restored |
    confirmed. 409 invalid_transition otherwise."""
    service.transition(session, outage_id, body, principal, clock.now(), pol)
    session.commit()
    return service.detail(session, outage_id)


@router.post("/{outage_id}/tickets", response_model=OutageDetail, status_code=201)
def link_ticket(outage_id: int, body: TicketLinkIn,
                principal: Principal = Depends(require(*WRITERS)),
                session: Session = Depends(get_session),
                clock: Clock = Depends(get_clock)) -> OutageDetail:
    """Link a ticket to the outage by hand (409 already_linked if it belongs to one)."""
    service.link_ticket(session, outage_id, body.ticket_id, principal, clock.now())
    session.commit()
    return service.detail(session, outage_id)
