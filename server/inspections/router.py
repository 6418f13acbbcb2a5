"""HTTP for inspections under /api/v1/inspections. Thin: parse, authorise, call, commit, shape."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from server.auth.deps import get_clock, get_session, get_settings_dep, require
from server.auth.service import Principal
from server.core.clock import Clock
from server.core.errors import InvalidInput
from server.inspections import report, service, texts, views
from server.inspections.schemas import (
    AttachmentOut,
    PlanIn,
    PlanOut,
    PlanPatch,
    ProfileIn,
    ProfileOut,
    RoundOut,
    SiteTypeIn,
    SiteTypeOut,
    TemplateIn,
    TemplateOut,
    VerifyOut,
    VisitIn,
    VisitOut,
)
from server.inspections.service import InspectionConfig
from server.models import Role
from server.settings import Settings

router = APIRouter(prefix="/api/v1/inspections", tags=["inspections"])
MANAGE = require(Role.manager)  # admin is always allowed
READ = require(Role.manager, Role.dispatcher)
FIELD_AND_READ = require(Role.technician, Role.manager, Role.dispatcher)
FIELD = require(Role.technician)


def get_config(settings: Settings = Depends(get_settings_dep)) -> InspectionConfig:
    return InspectionConfig.from_settings(settings)


def _zone(tz: str | None, cfg: InspectionConfig) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    zone = tz or cfg.timezone
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Asia" is a directory: OSError
        raise InvalidInput(f"unknown time zone {zone!r}", field="tz") from None
    return zone


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(f"{field} must include a time zone", field=field)
    return value


# --- site types, checklists, site profiles ---------------------------------------------------------

@router.post("/site-types", response_model=SiteTypeOut, status_code=201)
def create_site_type(body: SiteTypeIn, principal: Principal = Depends(MANAGE),
                     session: Session = Depends(get_session),
                     clock: Clock = Depends(get_clock)) -> SiteTypeOut:
    out = service.create_site_type(session, body, principal, clock.now())
    session.commit()
    return out


@router.get("/site-types", response_model=list[SiteTypeOut])
def list_site_types(_: Principal = Depends(FIELD_AND_READ),
                    session: Session = Depends(get_session)) -> list[SiteTypeOut]:
    return service.list_site_types(session)


@router.get("/site-types/{site_type_id}", response_model=SiteTypeOut)
def get_site_type(site_type_id: int, _: Principal = Depends(FIELD_AND_READ),
                  session: Session = Depends(get_session)) -> SiteTypeOut:
    return service.get_site_type(session, site_type_id)


@router.get("/site-types/{site_type_id}/templates", response_model=list[TemplateOut])
def list_templates(site_type_id: int, _: Principal = Depends(FIELD_AND_READ),
                   session: Session = Depends(get_session)) -> list[TemplateOut]:
    return service.list_templates(session, site_type_id)


@router.post("/site-types/{site_type_id}/templates", response_model=TemplateOut, status_code=201)
def add_template(site_type_id: int, body: TemplateIn, principal: Principal = Depends(MANAGE),
                 session: Session = Depends(get_session),
                 clock: Clock = Depends(get_clock)) -> TemplateOut:
    """A new checklist version (earlier visits keep theirs)."""
    out = service.add_template(session, site_type_id, body, principal, clock.now())
    session.commit()
    return out


@router.put("/sites/{site_id}/profile", response_model=ProfileOut)
def set_profile(site_id: int, body: ProfileIn, _: Principal = Depends(MANAGE),
                session: Session = Depends(get_session),
                clock: Clock = Depends(get_clock)) -> ProfileOut:
    out = service.set_profile(session, site_id, body, clock.now())
    session.commit()
    return out


@router.get("/sites/{site_id}/profile", response_model=ProfileOut)
def get_profile(site_id: int, _: Principal = Depends(FIELD_AND_READ),
                session: Session = Depends(get_session)) -> ProfileOut:
    return service.get_profile(session, site_id)


# --- plans and rounds ----------------------------------------------------------------------------

@router.post("/plans", response_model=PlanOut, status_code=201)
def create_plan(body: PlanIn, principal: Principal = Depends(MANAGE),
                session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
                cfg: InspectionConfig = Depends(get_config)) -> PlanOut:
    out = service.create_plan(session, body, principal, clock.now(), cfg)
    session.commit()
    return out


@router.get("/plans", response_model=list[PlanOut])
def list_plans(active: bool | None = None, _: Principal = Depends(READ),
               session: Session = Depends(get_session)) -> list[PlanOut]:
    return service.list_plans(session, active=active)


@router.get("/plans/{plan_id}", response_model=PlanOut)
def get_plan(plan_id: int, _: Principal = Depends(READ),
             session: Session = Depends(get_session)) -> PlanOut:
    return service.get_plan(session, plan_id)


@router.patch("/plans/{plan_id}", response_model=PlanOut)
def patch_plan(plan_id: int, body: PlanPatch, _: Principal = Depends(MANAGE),
               session: Session = Depends(get_session),
               clock: Clock = Depends(get_clock)) -> PlanOut:
    out = service.set_plan_active(session, plan_id, body.active, clock.now())
    session.commit()
    return out


@router.get("/rounds", response_model=list[RoundOut])
def list_rounds(plan_id: int | None = Query(None, ge=1), since: datetime | None = None,
                until: datetime | None = None, open_only: bool = False,
                limit: int = Query(100, ge=1, le=500),
                principal: Principal = Depends(FIELD_AND_READ),
                session: Session = Depends(get_session),
                clock: Clock = Depends(get_clock)) -> list[RoundOut]:
    """Technicians see their own and their crew's rounds; dispatchers and managers all."""
    return service.list_rounds(session, principal, clock.now(), plan_id=plan_id,
                               since=_aware(since, "since"), until=_aware(until, "until"),
                               open_only=open_only, limit=limit)


@router.get("/rounds/{round_id}", response_model=RoundOut)
def get_round(round_id: int, principal: Principal = Depends(FIELD_AND_READ),
              session: Session = Depends(get_session),
              clock: Clock = Depends(get_clock)) -> RoundOut:
    return service.get_round(session, round_id, principal, clock.now())


@router.get("/rounds/{round_id}/report", responses={
    200: {"content": {"text/html": {}, "application/pdf": {}, "text/csv": {}}}})
def round_report(round_id: int, format: Literal["html", "pdf", "csv"] = "html",
                 lang: Literal["en", "zh-CN"] = "en", principal: Principal = Depends(READ),
                 session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
                 cfg: InspectionConfig = Depends(get_config)) -> Response:
    """The round's report: HTML (photos and signatures inline), PDF (the HTML printed by
    headless Chromium) or CSV (one row per checkpoint visit)."""
    data = report.report_data(session, round_id, principal, clock.now())
    name = f"round-{round_id}"
    if format == "csv":
        return Response(report.render_csv(data), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    html = report.render_html(data, lang)
    if format == "html":
        return Response(html, media_type="text/html; charset=utf-8")
    return Response(report.render_pdf(html, cfg.chromium), media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})


# --- visits and attachments ----------------------------------------------------------------------

@router.post("/visits", response_model=VisitOut, status_code=201,
             responses={200: {"description": "a resend: the record stored for its client_id"}})
def submit_visit(body: VisitIn, response: Response, principal: Principal = Depends(FIELD),
                 session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
                 cfg: InspectionConfig = Depends(get_config)) -> VisitOut:
    """A technician's visit (the same as the MQTT ``inspection`` uplink): judged, appended to
    the site's hash chain, never changed afterwards (corrections are new visits with
    ``corrects_id``)."""
    out = service.submit_visit(session, body, principal, clock.now(), cfg)
    session.commit()
    if out.duplicate:
        response.status_code = 200
    return out


@router.get("/visits", response_model=list[VisitOut])
def list_visits(site_id: int | None = Query(None, ge=1), round_id: int | None = Query(None, ge=1),
                technician_id: int | None = Query(None, ge=1),
                evidence: Literal["verified", "flagged"] | None = None,
                since: datetime | None = None, until: datetime | None = None,
                before_id: int | None = Query(None, ge=1), limit: int = Query(100, ge=1, le=1000),
                principal: Principal = Depends(FIELD_AND_READ),
                session: Session = Depends(get_session)) -> list[VisitOut]:
    """Newest first. Technicians see only their own."""
    return service.list_visits(session, principal, site_id=site_id, round_id=round_id,
                               technician_id=technician_id, evidence=evidence,
                               since=_aware(since, "since"), until=_aware(until, "until"),
                               before_id=before_id, limit=limit)


@router.get("/visits/{visit_id}", response_model=VisitOut)
def get_visit(visit_id: int, principal: Principal = Depends(FIELD_AND_READ),
              session: Session = Depends(get_session)) -> VisitOut:
    return service.get_visit(session, visit_id, principal)


@router.post("/attachments", response_model=AttachmentOut, status_code=201,
             responses={200: {"description": "these bytes were stored before"}})
async def upload_attachment(request: Request, response: Response,
                            principal: Principal = Depends(FIELD),
                            session: Session = Depends(get_session),
                            clock: Clock = Depends(get_clock),
                            cfg: InspectionConfig = Depends(get_config)) -> AttachmentOut:
    """The raw bytes of a photo or signature (Content-Type image/png or image/jpeg); a visit
    refers to it by the SHA-256 returned here. A body over the limit is refused (413) as soon as
    it is known to be: from Content-Length, or when the streamed body passes the limit."""
    data = await _read_capped(request, cfg.attachment_max_bytes)

    def store() -> AttachmentOut:  # blocking I/O: in the thread pool, not on the event loop
        out = service.store_attachment(session, data, request.headers.get("content-type", ""),
                                       principal, clock.now(), cfg)
        session.commit()
        return out

    out = await run_in_threadpool(store)
    if out.duplicate:
        response.status_code = 200
    return out


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise service.too_large(int(declared), limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise service.too_large(None, limit)
    return bytes(body)


@router.get("/attachments/{sha256}")
def get_attachment(sha256: str, _: Principal = Depends(FIELD_AND_READ),
                   session: Session = Depends(get_session)) -> Response:
    a = service.get_attachment(session, sha256)
    return Response(a.data, media_type=a.content_type)


# --- manager views -------------------------------------------------------------------------------

@router.get("/technicians/{user_id}/day")
def technician_day(user_id: int, date: date, tz: str | None = Query(None, max_length=64),
                   _: Principal = Depends(READ), session: Session = Depends(get_session),
                   cfg: InspectionConfig = Depends(get_config)) -> dict[str, Any]:
    """GeoJSON FeatureCollection: the simplified GPS track, scans, visits and sites of one
    technician's local day; the day's anomalies in ``properties.anomalies``."""
    return views.technician_day(session, user_id, date, _zone(tz, cfg), cfg)


@router.get("/compliance")
def compliance(date_from: date, date_to: date, plan_id: int | None = Query(None, ge=1),
               crew_id: int | None = Query(None, ge=1),
               technician_id: int | None = Query(None, ge=1), _: Principal = Depends(READ),
               session: Session = Depends(get_session),
               clock: Clock = Depends(get_clock)) -> dict[str, Any]:
    """Per round (plan × team or technician × day): checkpoints done, late, missed, pending,
    verified; totals per plan."""
    if (date_to - date_from).days > 366:
        raise InvalidInput("at most a year at a time", field="date_to")
    return views.compliance(session, date_from, date_to, clock.now(), plan_id=plan_id,
                            crew_id=crew_id, technician_id=technician_id)


@router.get("/exceptions")
def exceptions(since: datetime, until: datetime, technician_id: int | None = Query(None, ge=1),
               _: Principal = Depends(READ), session: Session = Depends(get_session),
               cfg: InspectionConfig = Depends(get_config)) -> list[dict[str, Any]]:
    """Anomalies (impossible travel, cloned-tag pattern, missing GPS, values out of range,
    visits outside the window), other flagged visits and missed-checkpoint alerts, by time."""
    since, until = _aware(since, "since"), _aware(until, "until")  # type: ignore[assignment]
    if (until - since).days > 31:
        raise InvalidInput("at most 31 days at a time", field="until")
    return jsonable_encoder(views.exceptions(session, since, until, cfg, technician_id))


@router.get("/verify", response_model=VerifyOut)
def verify(site_id: int | None = Query(None, ge=1), _: Principal = Depends(READ),
           session: Session = Depends(get_session)) -> VerifyOut:
    """Recompute the hash chains: any edited, deleted or reordered record is reported."""
    return service.verify_chains(session, site_id)


@router.get("/reasons")
def reasons(_: Principal = Depends(FIELD_AND_READ)) -> dict[str, dict[str, str]]:
    """Every flag, anomaly and state code with its English and Chinese text."""
    return {code: {"en": en, "zh-CN": zh} for code, (en, zh) in texts.REASONS.items()}
