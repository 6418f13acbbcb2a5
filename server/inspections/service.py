"""Inspections: the only writer of the inspection_* tables. Services never commit.

* site types and their checklist versions, site profiles (type, parent site, GPS tolerance);
* plans, and rounds generated from them exactly once per period (unique (plan, period) +
  ``ON CONFLICT DO NOTHING``; only the inserting transaction delivers the round to handsets),
  up to ``inspection_rounds_ahead_hours`` before their window opens;
* round deliveries: each (round, handset) once (``inspection_round_deliveries``), also to
  handsets registered after the round was generated;
* visits: judged (evidence.py) and appended to the site's hash chain (chain.py) under a lock on
  the site's chain head;
* the missed-checkpoint sweep: closes rounds whose window ended, raising each alert once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from sqlalchemy import Row, and_, case, exists, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from gis.geo import distance_m
from mobile_app.link import protocol
from server.auth.service import Principal
from server.core.errors import Conflict, CrewlineError, Forbidden, InvalidInput, NotFound
from server.core.schemas import PointOut
from server.crews.service import crew_of
from server.inspections import chain, schedule
from server.inspections.evidence import Rules, ScanFacts, check_value_types, judge_visit
from server.inspections.schemas import (
    AttachmentOut,
    CheckpointOut,
    PlanIn,
    PlanOut,
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
from server.models import (
    SRID,
    ChainHead,
    ChecklistTemplate,
    Crew,
    Device,
    InspectionAlert,
    InspectionAttachment,
    InspectionPlan,
    InspectionRecord,
    InspectionRound,
    PlanSite,
    Role,
    RoundSite,
    Site,
    SiteProfile,
    SiteType,
    TagScan,
    User,
)
from server.models.inspections import RoundDelivery
from server.settings import Settings

log = structlog.get_logger()
READERS = (Role.manager, Role.dispatcher, Role.admin)  # see every round, visit and report
FUTURE_SLACK = timedelta(minutes=5)  # handset clocks drift; beyond this a visit time is refused


@dataclass(frozen=True)
class InspectionConfig:
    timezone: str = "Asia/Shanghai"
    tolerance_m: float = 50.0
    accept_uid_only: bool = False
    scan_max_gap: timedelta = timedelta(minutes=30)
    max_speed_kmh: float = 80.0
    travel_fraction: float = 0.6
    clone_radius_m: float = 30.0
    track_tolerance_m: float = 10.0
    snap_max_m: float = 500.0
    chromium: str = "/usr/bin/chromium"
    attachment_max_bytes: int = 2 * 1024 * 1024

    @classmethod
    def from_settings(cls, s: Settings) -> InspectionConfig:
        return cls(timezone=s.inspection_timezone, tolerance_m=s.inspection_gps_tolerance_m,
                   accept_uid_only=s.inspection_accept_uid_only,
                   scan_max_gap=timedelta(minutes=s.inspection_scan_max_gap_minutes),
                   max_speed_kmh=s.inspection_max_speed_kmh,
                   travel_fraction=s.inspection_travel_fraction,
                   clone_radius_m=s.inspection_clone_radius_m,
                   track_tolerance_m=s.inspection_track_tolerance_m,
                   snap_max_m=s.dispatch_snap_max_m, chromium=s.inspection_chromium,
                   attachment_max_bytes=s.inspection_attachment_max_bytes)


class TagScanPending(CrewlineError):
    """The visit names a scan the server has not stored (yet): over MQTT the scan may still be
    on its way, so the handler lets the handset resend instead of rejecting for good."""

    status_code = 409
    code = "tag_scan_pending"


# --- site types and checklists ------------------------------------------------------------------

def _template_out(t: ChecklistTemplate) -> TemplateOut:
    return TemplateOut(id=t.id, site_type_id=t.site_type_id, version=t.version, items=t.items,
                       created_at=t.created_at)


def _items_json(items) -> list[dict[str, Any]]:
    return [i.model_dump(mode="json", exclude_none=True) for i in items]


def _current_template(session: Session, site_type_id: int) -> ChecklistTemplate | None:
    return session.scalars(select(ChecklistTemplate)
                           .where(ChecklistTemplate.site_type_id == site_type_id)
                           .order_by(ChecklistTemplate.version.desc()).limit(1)).first()


def _site_type_out(session: Session, st: SiteType) -> SiteTypeOut:
    current = _current_template(session, st.id)
    assert current is not None
    return SiteTypeOut(id=st.id, code=st.code, name=st.name, created_at=st.created_at,
                       current=_template_out(current))


def create_site_type(session: Session, data: SiteTypeIn, actor: Principal,
                     now: datetime) -> SiteTypeOut:
    type_id = session.scalar(
        pg_insert(SiteType).values(code=data.code, name=data.name, created_at=now)
        .on_conflict_do_nothing(index_elements=["code"]).returning(SiteType.id))
    if type_id is None:
        raise Conflict(f"site type {data.code!r} exists; add a checklist version to it instead",
                       field="code", code="site_type_exists")
    session.add(ChecklistTemplate(site_type_id=type_id, version=1, items=_items_json(data.items),
                                  created_at=now, created_by=actor.id))
    session.flush()
    return _site_type_out(session, session.get(SiteType, type_id))  # type: ignore[arg-type]


def add_template(session: Session, site_type_id: int, data: TemplateIn, actor: Principal,
                 now: datetime) -> TemplateOut:
    """A new checklist version; visits keep the version they were filled in against."""
    st = session.scalars(select(SiteType).where(SiteType.id == site_type_id)
                         .with_for_update()).first()  # one new version at a time
    if st is None:
        raise NotFound(f"site type {site_type_id} does not exist", field="site_type_id")
    current = _current_template(session, site_type_id)
    template = ChecklistTemplate(site_type_id=site_type_id,
                                 version=(current.version if current else 0) + 1,
                                 items=_items_json(data.items), created_at=now,
                                 created_by=actor.id)
    session.add(template)
    session.flush()
    return _template_out(template)


def list_site_types(session: Session) -> list[SiteTypeOut]:
    return [_site_type_out(session, st)
            for st in session.scalars(select(SiteType).order_by(SiteType.id))]


def get_site_type(session: Session, site_type_id: int) -> SiteTypeOut:
    st = session.get(SiteType, site_type_id)
    if st is None:
        raise NotFound(f"site type {site_type_id} does not exist", field="site_type_id")
    return _site_type_out(session, st)


def list_templates(session: Session, site_type_id: int) -> list[TemplateOut]:
    get_site_type(session, site_type_id)
    return [_template_out(t) for t in session.scalars(
        select(ChecklistTemplate).where(ChecklistTemplate.site_type_id == site_type_id)
        .order_by(ChecklistTemplate.version))]


# --- site profiles -------------------------------------------------------------------------------

def _profile_out(p: SiteProfile) -> ProfileOut:
    return ProfileOut(site_id=p.site_id, site_type_id=p.site_type_id,
                      parent_site_id=p.parent_site_id, tolerance_m=p.tolerance_m,
                      updated_at=p.updated_at)


def set_profile(session: Session, site_id: int, data: ProfileIn, now: datetime) -> ProfileOut:
    if session.get(Site, site_id) is None:
        raise NotFound(f"site {site_id} does not exist", field="site_id")
    if session.get(SiteType, data.site_type_id) is None:
        raise InvalidInput(f"site type {data.site_type_id} does not exist", field="site_type_id")
    if data.parent_site_id is not None:
        if data.parent_site_id == site_id:
            raise InvalidInput("a site cannot sit on itself", field="parent_site_id")
        if session.get(Site, data.parent_site_id) is None:
            raise InvalidInput(f"site {data.parent_site_id} does not exist",
                               field="parent_site_id")
    values = dict(site_type_id=data.site_type_id, parent_site_id=data.parent_site_id,
                  tolerance_m=data.tolerance_m, updated_at=now)
    session.execute(pg_insert(SiteProfile).values(site_id=site_id, **values)
                    .on_conflict_do_update(index_elements=["site_id"], set_=values))
    session.flush()
    profile = session.get(SiteProfile, site_id)
    session.refresh(profile)
    return _profile_out(profile)  # type: ignore[arg-type]


def get_profile(session: Session, site_id: int) -> ProfileOut:
    p = session.get(SiteProfile, site_id)
    if p is None:
        raise NotFound(f"site {site_id} has no inspection profile", field="site_id")
    return _profile_out(p)


# --- plans ---------------------------------------------------------------------------------------

def _plan_out(session: Session, plan: InspectionPlan) -> PlanOut:
    sites = session.scalars(select(PlanSite.site_id).where(PlanSite.plan_id == plan.id)
                            .order_by(PlanSite.position)).all()
    return PlanOut(id=plan.id, name=plan.name, site_ids=list(sites), frequency=plan.frequency,
                   weekday=plan.weekday, day_of_month=plan.day_of_month,
                   window_start=plan.window_start, window_end=plan.window_end,
                   timezone=plan.timezone, starts_on=plan.starts_on, crew_id=plan.crew_id,
                   technician_id=plan.technician_id, active=plan.active,
                   created_at=plan.created_at)


def create_plan(session: Session, data: PlanIn, actor: Principal, now: datetime,
                cfg: InspectionConfig) -> PlanOut:
    zone = data.timezone or cfg.timezone
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Asia" is a directory: OSError
        raise InvalidInput(f"unknown time zone {zone!r} (use an IANA name such as "
                           "Asia/Shanghai)", field="timezone") from None
    if (data.crew_id is None) == (data.technician_id is None):
        raise InvalidInput("give exactly one of crew_id and technician_id",
                           field="technician_id" if data.technician_id is None else "crew_id")
    if (data.frequency.value == "weekly") != (data.weekday is not None):
        raise InvalidInput("weekday (1 = Monday … 7) is required for weekly plans and only for "
                           "them", field="weekday")
    if (data.frequency.value == "monthly") != (data.day_of_month is not None):
        raise InvalidInput("day_of_month (1–28) is required for monthly plans and only for them",
                           field="day_of_month")
    if data.window_start == data.window_end:
        raise InvalidInput("the window is empty: window_end equals window_start",
                           field="window_end")
    found = set(session.scalars(select(Site.id).where(Site.id.in_(data.site_ids))))
    missing = [s for s in data.site_ids if s not in found]
    if missing:
        raise InvalidInput(f"sites do not exist: {', '.join(map(str, missing))}",
                           field="site_ids")
    if data.crew_id is not None:
        crew = session.get(Crew, data.crew_id)
        if crew is None or not crew.active:
            raise InvalidInput(f"crew {data.crew_id} does not exist or is inactive",
                               field="crew_id")
    else:
        user = session.get(User, data.technician_id)
        if user is None or user.role != Role.technician.value or not user.is_active:
            raise InvalidInput(f"user {data.technician_id} is not an active technician",
                               field="technician_id")
    _check_message_size(session, data.name, data.site_ids)
    plan = InspectionPlan(name=data.name, frequency=data.frequency.value, weekday=data.weekday,
                          day_of_month=data.day_of_month, window_start=data.window_start,
                          window_end=data.window_end, timezone=zone, starts_on=data.starts_on,
                          crew_id=data.crew_id, technician_id=data.technician_id, active=True,
                          created_at=now, created_by=actor.id)
    session.add(plan)
    session.flush()
    session.add_all(PlanSite(plan_id=plan.id, site_id=s, position=i)
                    for i, s in enumerate(data.site_ids, start=1))
    session.flush()
    return _plan_out(session, plan)


def get_plan(session: Session, plan_id: int) -> PlanOut:
    plan = session.get(InspectionPlan, plan_id)
    if plan is None:
        raise NotFound(f"plan {plan_id} does not exist", field="plan_id")
    return _plan_out(session, plan)


def list_plans(session: Session, *, active: bool | None = None) -> list[PlanOut]:
    q = select(InspectionPlan).order_by(InspectionPlan.id)
    if active is not None:
        q = q.where(InspectionPlan.active == active)
    return [_plan_out(session, p) for p in session.scalars(q)]


def set_plan_active(session: Session, plan_id: int, active: bool, now: datetime) -> PlanOut:
    """Deactivating a plan stops new rounds and withdraws those made ahead whose window has not
    opened yet (closed as ``withdrawn``: no missed-checkpoint alerts for them), telling each
    handset that was sent one with a ``round_cancel`` in this transaction. A round already under
    way is finished and closed as usual. Only the transaction that closes a round tells the
    handsets, so deactivating twice queues nothing more."""
    # FOR UPDATE conflicts with the FOR SHARE that generate_rounds holds on the plans it makes
    # rounds of: a generation under way commits first and the withdrawal below sees its rounds
    # (a new snapshot per statement), or it waits for us and skips the plan
    plan = session.scalars(select(InspectionPlan).where(InspectionPlan.id == plan_id)
                           .with_for_update()
                           .execution_options(populate_existing=True)).first()
    if plan is None:
        raise NotFound(f"plan {plan_id} does not exist", field="plan_id")
    plan.active = active
    if not active:
        # rounds locked in id order, as deliver_pending locks them: a delivery racing this
        # withdrawal either commits first (and its handset gets the cancel below) or sees the
        # round closed (and sends nothing)
        upcoming = session.scalars(
            select(InspectionRound.id)
            .where(InspectionRound.plan_id == plan_id, InspectionRound.closed_at.is_(None),
                   InspectionRound.window_start > now)
            .order_by(InspectionRound.id).with_for_update()).all()
        withdrawn = session.scalars(
            update(InspectionRound)
            .where(InspectionRound.id.in_(upcoming), InspectionRound.closed_at.is_(None))
            .values(closed_at=now, outcome="withdrawn")
            .returning(InspectionRound.id)).all() if upcoming else []
        _cancel_on_handsets(session, list(withdrawn), "plan_deactivated", now)
    session.flush()
    return _plan_out(session, plan)


def _cancel_on_handsets(session: Session, round_ids: list[int], reason: str,
                        now: datetime) -> int:
    """Queue a ``round_cancel`` (mobile_app/link/schemas/down.round_cancel.json) to every handset
    the rounds were sent to (``inspection_round_deliveries`` with a seq; a round too large to send
    was never on the handset), once per (round, handset), devices locked in id order like every
    other multi-device enqueue. A revoked handset never connects again: skipped. Returns how many
    messages were queued."""
    from server.devices import downlink

    if not round_ids:
        return 0
    pairs = session.execute(
        select(RoundDelivery.device_id, RoundDelivery.round_id)
        .join(Device, Device.id == RoundDelivery.device_id)
        .where(RoundDelivery.round_id.in_(round_ids), RoundDelivery.seq.is_not(None),
               Device.revoked_at.is_(None))
        .order_by(RoundDelivery.device_id, RoundDelivery.round_id)).all()
    queued = 0
    for device_id, round_id in pairs:
        try:
            downlink.enqueue(session, device_id, "round_cancel",
                             {"round_id": round_id, "reason": reason}, now)
        except Conflict:  # revoked since the query
            continue
        queued += 1
    if queued:
        log.info("inspection rounds withdrawn on handsets", rounds=round_ids, messages=queued)
    return queued


# --- rounds --------------------------------------------------------------------------------------

def generate_rounds(session: Session, now: datetime, *,
                    ahead: timedelta = timedelta(0)) -> list[int]:
    """Create the rounds of every active plan that lacks them: the current period's, and each
    later period's whose window opens within ``ahead`` of ``now`` (handsets carry tomorrow's
    round before they go offline). Returns the new rounds' ids. Safe to run concurrently and
    repeatedly: (plan_id, period_start) is unique and only the transaction whose INSERT wins adds
    checkpoints and queues the downlink.

    Safe against a concurrent deactivation too: the plans that lack a round are locked
    ``FOR SHARE`` — all of them, in id order, before any round, checkpoint or handset is
    touched — and kept only if still active once locked. ``set_plan_active`` locks its plan
    ``FOR UPDATE``, which conflicts: a deactivation that came first makes us wait and skip the
    plan (READ COMMITTED re-checks ``active`` on the committed row); one that comes later waits
    for this transaction and its withdrawal sees (and cancels) the rounds made here. Lock order:
    plans, then devices (as the deactivation: plan, rounds, devices)."""
    due: dict[int, list[schedule.Window]] = {}
    for plan in session.scalars(select(InspectionPlan).where(InspectionPlan.active)
                                .order_by(InspectionPlan.id)):
        zone = ZoneInfo(plan.timezone)
        due[plan.id] = [
            w for w in schedule.due_windows(plan.frequency, now, ahead, plan.window_start,
                                            plan.window_end, plan.timezone, weekday=plan.weekday,
                                            day_of_month=plan.day_of_month)
            # not before the plan starts; no round whose window closed before the plan existed
            if w.start.astimezone(zone).date() >= plan.starts_on and w.end > plan.created_at]
    if due:  # the rounds already made (the usual case) need no lock
        have = {(p, d) for p, d in session.execute(
            select(InspectionRound.plan_id, InspectionRound.period_start)
            .where(InspectionRound.plan_id.in_(list(due)),
                   InspectionRound.period_start.in_({w.period_start for ws in due.values()
                                                     for w in ws})))}
        due = {p: todo for p, ws in due.items()
               if (todo := [w for w in ws if (p, w.period_start) not in have])}
    created = []
    locked = session.scalars(
        select(InspectionPlan).where(InspectionPlan.id.in_(list(due)), InspectionPlan.active)
        .order_by(InspectionPlan.id).with_for_update(read=True)
        .execution_options(populate_existing=True)).all() if due else []
    for plan in locked:
        if not plan.active:  # deactivated while we read (the WHERE already re-checks it)
            continue
        for w in due[plan.id]:
            round_id = _insert_round(session, plan, w, now)
            if round_id is not None:
                created.append(round_id)
    session.flush()
    return created


def _insert_round(session: Session, plan: InspectionPlan, w: schedule.Window,
                  now: datetime) -> int | None:
    """The round of this plan and period, if this transaction is the one that makes it."""
    round_id = session.scalar(
        pg_insert(InspectionRound).values(
            plan_id=plan.id, period_start=w.period_start, window_start=w.start,
            window_end=w.end, crew_id=plan.crew_id, technician_id=plan.technician_id,
            created_at=now, delivered_to=0)
        .on_conflict_do_nothing(index_elements=["plan_id", "period_start"])
        .returning(InspectionRound.id))
    if round_id is None:
        return None
    session.execute(text(
        "INSERT INTO inspection_round_sites (round_id, site_id, position) "
        "SELECT :r, site_id, position FROM inspection_plan_sites WHERE plan_id = :p"),
        {"r": round_id, "p": plan.id})
    rnd = session.get(InspectionRound, round_id)
    rnd.delivered_to = deliver_round(session, rnd, plan, now)  # type: ignore[union-attr]
    return round_id


def _round_sites(session: Session, site_ids: list[int]) -> tuple[list[dict], list[dict]]:
    """The ``sites`` and ``templates`` of a round message for sites in this order."""
    rows = {r[0]: r for r in session.execute(
        select(Site.id, Site.name, Site.kind, Site.address, func.ST_X(Site.location),
               func.ST_Y(Site.location), SiteProfile.site_type_id)
        .outerjoin(SiteProfile, SiteProfile.site_id == Site.id)
        .where(Site.id.in_(site_ids))).all()}
    templates: dict[int, ChecklistTemplate] = {}
    sites = []
    for position, site_id in enumerate(site_ids, start=1):
        _, name, kind, address, lon, lat, type_id = rows[site_id]
        template = None
        if type_id is not None:
            if type_id not in templates:
                templates[type_id] = _current_template(session, type_id)  # type: ignore[assignment]
            template = templates[type_id]
        sites.append({"site_id": site_id, "position": position, "name": name, "kind": kind,
                      "address": address, "location": {"lon": round(lon, 7), "lat": round(lat, 7)},
                      "template_id": template.id if template else None})
    return sites, [{"id": t.id, "site_type_id": t.site_type_id, "version": t.version,
                    "items": t.items} for t in templates.values()]


def round_message(session: Session, rnd: InspectionRound, plan: InspectionPlan) -> dict[str, Any]:
    """The ``round`` downlink body (mobile_app/link/schemas/down.round.json, without v/seq)."""
    site_ids = list(session.scalars(select(RoundSite.site_id).where(RoundSite.round_id == rnd.id)
                                    .order_by(RoundSite.position)))
    sites, templates = _round_sites(session, site_ids)
    return {"round_id": rnd.id, "plan_id": plan.id, "plan_name": plan.name,
            "period_start": rnd.period_start.isoformat(),
            "window_start": rnd.window_start.isoformat(), "window_end": rnd.window_end.isoformat(),
            "timezone": plan.timezone, "sites": sites, "templates": templates}


def _message_size(body: dict[str, Any]) -> int:
    probe = {"v": 1, "seq": 2**31, **body}
    return len(json.dumps(probe, separators=(",", ":"), ensure_ascii=False).encode())


def _check_message_size(session: Session, name: str, site_ids: list[int]) -> None:
    """A plan whose round would not fit one MQTT message (protocol.MAX_PAYLOAD) is refused
    when it is made, not discovered by the worker at every period."""
    sites, templates = _round_sites(session, site_ids)
    probe = {"round_id": 2**62, "plan_id": 2**62, "plan_name": name,
             "period_start": "2026-01-01", "window_start": "2026-01-01T00:00:00+00:00",
             "window_end": "2026-01-01T00:00:00+00:00", "timezone": "x" * 64, "sites": sites,
             "templates": templates}
    size = _message_size(probe)
    if size > protocol.MAX_PAYLOAD - 1024:
        raise InvalidInput(f"a round of these sites is {size} bytes, more than one handset "
                           f"message holds ({protocol.MAX_PAYLOAD}); split the plan",
                           field="site_ids", code="plan_too_large")


def _round_body(session: Session, rnd: InspectionRound, plan: InspectionPlan
                ) -> dict[str, Any] | None:
    """The round's downlink body, or None when it no longer fits one message (its checklists
    grew after the plan was made): such a round is kept but not sent; handsets read it over
    HTTP."""
    body = round_message(session, rnd, plan)
    size = _message_size(body)
    if size > protocol.MAX_PAYLOAD - 1024:
        log.error("inspection round too large for MQTT", round_id=rnd.id, plan_id=plan.id,
                  size=size)
        return None
    return body


def deliver_round(session: Session, rnd: InspectionRound, plan: InspectionPlan,
                  now: datetime) -> int:
    """Queue a new round for the assignee's handsets in this transaction (the devices outbox)
    and record each delivery; returns how many handsets it was queued for."""
    from server.devices import downlink

    body = _round_body(session, rnd, plan)
    queued: list[tuple[str, int | None]]
    if body is None:  # recorded as not sent, so the deliver step does not try again
        queued = [(d, None) for d in (
            downlink.active_devices_of_crew(session, rnd.crew_id) if rnd.crew_id is not None
            else downlink.active_devices_of_user(session, rnd.technician_id))]  # type: ignore[arg-type]
    elif rnd.crew_id is not None:
        queued = list(downlink.enqueue_for_crew(session, rnd.crew_id, "round", body, now))
    else:
        queued = list(downlink.enqueue_for_user(session, rnd.technician_id, "round", body,  # type: ignore[arg-type]
                                                now))
    if queued:  # a new round: nobody else can have recorded these yet
        session.execute(pg_insert(RoundDelivery).values(
            [{"round_id": rnd.id, "device_id": d, "seq": seq, "queued_at": now}
             for d, seq in queued]).on_conflict_do_nothing())
    return sum(seq is not None for _, seq in queued)


# open or upcoming rounds × the handsets of their technician or crew that have not been sent them
_UNDELIVERED = """
SELECT r.id AS round_id, d.id AS device_id FROM inspection_rounds r
JOIN devices d ON d.revoked_at IS NULL AND (d.user_id = r.technician_id OR EXISTS (
    SELECT 1 FROM crew_members m JOIN users u ON u.id = m.user_id
    WHERE m.crew_id = r.crew_id AND m.user_id = d.user_id AND u.is_active))
WHERE r.closed_at IS NULL AND r.window_end > :now
  AND NOT EXISTS (SELECT 1 FROM inspection_round_deliveries x
                  WHERE x.round_id = r.id AND x.device_id = d.id)
  {device}
ORDER BY d.id, r.window_start, r.id
LIMIT :limit"""


def deliver_pending(session: Session, now: datetime, *, device_id: str | None = None,
                    limit: int = 500) -> int:
    """Queue every open or upcoming round to the handsets of its technician (or crew) that have
    not had it — a handset registered, or a technician who joined the crew, after the round was
    generated. Each (round, handset) is claimed with ``INSERT … ON CONFLICT DO NOTHING`` on the
    deliveries' primary key before the message is queued, so concurrent sweeps, the pairing call
    and the generating transaction send it once. Returns how many messages were queued."""
    from server.devices import downlink

    params: dict[str, Any] = {"now": now, "limit": limit}
    if device_id is not None:
        params["device"] = device_id
    pairs = session.execute(text(_UNDELIVERED.format(
        device="AND d.id = :device" if device_id is not None else "")), params).all()
    # the rounds locked (id order, like a withdrawal) and still open: one withdrawn since the
    # query is not sent; a withdrawal waiting on this lock sees our deliveries and cancels them
    still_open = set(session.scalars(
        select(InspectionRound.id)
        .where(InspectionRound.id.in_(sorted({r for r, _ in pairs})),
               InspectionRound.closed_at.is_(None))
        .order_by(InspectionRound.id).with_for_update(key_share=True))) \
        if pairs else set()
    pairs = [(r, d) for r, d in pairs if r in still_open]
    bodies: dict[int, dict[str, Any] | None] = {}
    counts: dict[int, int] = {}
    for round_id, dev in pairs:  # device by device, each one's rounds in window order
        claimed = session.scalar(
            pg_insert(RoundDelivery).values(round_id=round_id, device_id=dev, seq=None,
                                            queued_at=now)
            .on_conflict_do_nothing().returning(RoundDelivery.round_id))
        if claimed is None:
            continue  # another transaction sent it
        if round_id not in bodies:
            rnd = session.get(InspectionRound, round_id)
            bodies[round_id] = _round_body(session, rnd, session.get(InspectionPlan,  # type: ignore[arg-type]
                                                                     rnd.plan_id))  # type: ignore[union-attr]
        body = bodies[round_id]
        if body is None:
            continue  # too large: recorded as not sent (seq NULL)
        try:
            seq = downlink.enqueue(session, dev, "round", body, now)
        except Conflict:  # revoked since the query: it will never connect again
            continue
        session.execute(update(RoundDelivery).where(RoundDelivery.round_id == round_id,
                                                    RoundDelivery.device_id == dev)
                        .values(seq=seq))
        counts[round_id] = counts.get(round_id, 0) + 1
    for round_id in sorted(counts):  # round rows last, in id order
        session.execute(update(InspectionRound).where(InspectionRound.id == round_id)
                        .values(delivered_to=InspectionRound.delivered_to + counts[round_id]))
    session.flush()
    return sum(counts.values())


def deliver_to_device(session: Session, device_id: str, now: datetime) -> int:
    """A newly paired handset's open and upcoming rounds, queued in the pairing transaction (in
    a savepoint: a failure here never fails the pairing; the rounds sweep catches up)."""
    try:
        with session.begin_nested():
            return deliver_pending(session, now, device_id=device_id)
    except Exception:
        log.exception("inspection rounds not queued for the new handset", device_id=device_id)
        return 0


def _checkpoint_states(session: Session, rounds: list[InspectionRound], now: datetime
                       ) -> dict[int, list[CheckpointOut]]:
    if not rounds:
        return {}
    ids = [r.id for r in rounds]
    by_id = {r.id: r for r in rounds}
    sites = session.execute(
        select(RoundSite.round_id, RoundSite.site_id, RoundSite.position, Site.name,
               func.ST_X(Site.location), func.ST_Y(Site.location))
        .join(Site, Site.id == RoundSite.site_id)
        .where(RoundSite.round_id.in_(ids)).order_by(RoundSite.round_id, RoundSite.position)).all()
    visits = session.execute(
        select(InspectionRecord.round_id, InspectionRecord.site_id, InspectionRecord.id,
               InspectionRecord.started_at, InspectionRecord.evidence)
        .where(InspectionRecord.round_id.in_(ids)).order_by(InspectionRecord.started_at,
                                                            InspectionRecord.id)).all()
    seen: dict[tuple[int, int], list[Row]] = {}
    for v in visits:
        seen.setdefault((v.round_id, v.site_id), []).append(v)
    out: dict[int, list[CheckpointOut]] = {i: [] for i in ids}
    for round_id, site_id, position, name, lon, lat in sites:
        rnd = by_id[round_id]
        vs = seen.get((round_id, site_id), [])
        if vs:
            state = "late" if vs[0].started_at > rnd.window_end else "done"
        else:
            state = ("withdrawn" if rnd.outcome == "withdrawn" else "missed"
                     if (rnd.closed_at is not None or now >= rnd.window_end) else "pending")
        out[round_id].append(CheckpointOut(
            site_id=site_id, name=name, location=PointOut(lon=round(lon, 7), lat=round(lat, 7)),
            position=position, state=state, visit_ids=[v.id for v in vs],
            evidence=vs[0].evidence if vs else None))
    return out


def _round_outs(session: Session, rounds: list[InspectionRound], now: datetime) -> list[RoundOut]:
    names = dict(session.execute(select(InspectionPlan.id, InspectionPlan.name).where(
        InspectionPlan.id.in_({r.plan_id for r in rounds}))).all()) if rounds else {}
    states = _checkpoint_states(session, rounds, now)
    return [RoundOut(id=r.id, plan_id=r.plan_id, plan_name=names[r.plan_id],
                     period_start=r.period_start, window_start=r.window_start,
                     window_end=r.window_end, crew_id=r.crew_id, technician_id=r.technician_id,
                     created_at=r.created_at, delivered_to=r.delivered_to, closed_at=r.closed_at,
                     outcome=r.outcome, checkpoints=states[r.id]) for r in rounds]


def _visible_to(actor: Principal, session: Session):
    """SQL condition: rounds the actor may see (technicians: theirs or their crew's)."""
    if actor.role in READERS:
        return True
    crew_id = crew_of(session, actor.id)
    cond = InspectionRound.technician_id == actor.id
    if crew_id is not None:
        cond = or_(cond, InspectionRound.crew_id == crew_id)
    return cond


def get_round(session: Session, round_id: int, actor: Principal, now: datetime) -> RoundOut:
    rnd = session.get(InspectionRound, round_id)
    if rnd is None:
        raise NotFound(f"round {round_id} does not exist", field="round_id")
    allowed = session.scalar(select(exists().where(InspectionRound.id == round_id,
                                                   _visible_to(actor, session))))
    if not allowed:
        raise Forbidden(f"round {round_id} is not assigned to {actor.username}", field="round_id",
                        code="not_your_round")
    return _round_outs(session, [rnd], now)[0]


def list_rounds(session: Session, actor: Principal, now: datetime, *, plan_id: int | None = None,
                since: datetime | None = None, until: datetime | None = None,
                open_only: bool = False, limit: int = 100) -> list[RoundOut]:
    q = (select(InspectionRound).where(_visible_to(actor, session))
         .order_by(InspectionRound.window_start.desc(), InspectionRound.id.desc()).limit(limit))
    if plan_id:
        q = q.where(InspectionRound.plan_id == plan_id)
    if since:
        q = q.where(InspectionRound.window_end > since)
    if until:
        q = q.where(InspectionRound.window_start < until)
    if open_only:
        q = q.where(InspectionRound.closed_at.is_(None))
    return _round_outs(session, list(session.scalars(q)), now)


@dataclass(frozen=True)
class SweepResult:
    closed: int
    alerts: int


def close_due_rounds(session: Session, now: datetime, limit: int = 200) -> SweepResult:
    """Close rounds whose window has ended and raise a ``missed_checkpoint`` alert for each site
    without a visit by then. Rows are taken with SKIP LOCKED and the alert key is unique, so
    concurrent or repeated sweeps raise each alert once."""
    rounds = session.scalars(
        select(InspectionRound)
        .where(InspectionRound.closed_at.is_(None), InspectionRound.window_end <= now)
        .order_by(InspectionRound.window_end).limit(limit)
        .with_for_update(skip_locked=True)).all()
    alerts = 0
    for rnd in rounds:
        missing = session.execute(text("""
            SELECT rs.site_id FROM inspection_round_sites rs
            WHERE rs.round_id = :r AND NOT EXISTS (
              SELECT 1 FROM inspection_records v WHERE v.round_id = rs.round_id
                AND v.site_id = rs.site_id AND v.started_at <= :end)
            ORDER BY rs.position"""), {"r": rnd.id, "end": rnd.window_end}).scalars().all()
        for site_id in missing:
            inserted = session.scalar(
                pg_insert(InspectionAlert).values(
                    kind="missed_checkpoint", round_id=rnd.id, site_id=site_id, raised_at=now,
                    details={"plan_id": rnd.plan_id, "window_start": rnd.window_start.isoformat(),
                             "window_end": rnd.window_end.isoformat(), "crew_id": rnd.crew_id,
                             "technician_id": rnd.technician_id})
                .on_conflict_do_nothing(index_elements=["round_id", "site_id", "kind"])
                .returning(InspectionAlert.id))
            alerts += inserted is not None
        rnd.closed_at = now
        rnd.outcome = "incomplete" if missing else "complete"
    session.flush()
    return SweepResult(len(rounds), alerts)


# --- attachments ---------------------------------------------------------------------------------

_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}


class PayloadTooLarge(CrewlineError):
    status_code = 413
    code = "too_large"


def too_large(size: int | None, limit: int) -> PayloadTooLarge:
    said = f"is {size} bytes" if size is not None else "is larger"
    return PayloadTooLarge(f"the image {said}; at most {limit} bytes are accepted", field="body")


def store_attachment(session: Session, data: bytes, content_type: str, actor: Principal,
                     now: datetime, cfg: InspectionConfig) -> AttachmentOut:
    """Store a photo or signature by its SHA-256 (idempotent: the same bytes twice are one row)."""
    content_type = (content_type or "").split(";")[0].strip().lower()
    if content_type not in _MAGIC:
        raise InvalidInput("send image/png or image/jpeg", field="content_type")
    if not data:
        raise InvalidInput("the body is empty", field="body")
    if len(data) > cfg.attachment_max_bytes:
        raise too_large(len(data), cfg.attachment_max_bytes)
    if not data.startswith(_MAGIC[content_type]):
        raise InvalidInput(f"the body is not a {content_type} image", field="body")
    digest = hashlib.sha256(data).hexdigest()
    inserted = session.scalar(
        pg_insert(InspectionAttachment).values(sha256=digest, content_type=content_type,
                                               size=len(data), data=data, uploaded_by=actor.id,
                                               uploaded_at=now)
        .on_conflict_do_nothing(index_elements=["sha256"]).returning(InspectionAttachment.sha256))
    return AttachmentOut(sha256=digest, content_type=content_type, size=len(data),
                         duplicate=inserted is None)


def get_attachment(session: Session, sha256: str) -> InspectionAttachment:
    a = session.get(InspectionAttachment, sha256)
    if a is None:
        raise NotFound(f"attachment {sha256} has not been uploaded", field="sha256")
    return a


# --- visits --------------------------------------------------------------------------------------

def _record_query():
    return (select(InspectionRecord, User.username,
                   func.ST_X(InspectionRecord.position).label("lon"),
                   func.ST_Y(InspectionRecord.position).label("lat"),
                   ChecklistTemplate.version.label("template_version"))
            .join(User, User.id == InspectionRecord.technician_id)
            .outerjoin(ChecklistTemplate, ChecklistTemplate.id == InspectionRecord.template_id))


def _visit_out(row: Row, *, duplicate: bool = False) -> VisitOut:
    r: InspectionRecord = row[0]
    return VisitOut(
        id=r.id, site_id=r.site_id, site_seq=r.site_seq, round_id=r.round_id,
        technician_id=r.technician_id, technician=row.username, source=r.source,
        client_id=r.client_id, received_at=r.received_at, started_at=r.started_at,
        finished_at=r.finished_at, tag_scan_id=r.tag_scan_id, scan_verdict=r.scan_verdict,
        position=PointOut(lon=row.lon, lat=row.lat) if row.lon is not None else None,
        accuracy_m=r.accuracy_m, distance_m=r.distance_m, template_id=r.template_id,
        template_version=row.template_version, values=r.values, attachments=r.attachments,
        evidence=r.evidence, flags=r.flags, note=r.note, corrects_id=r.corrects_id,
        prev_hash=r.prev_hash, hash=r.hash, duplicate=duplicate)


def get_visit(session: Session, visit_id: int, actor: Principal) -> VisitOut:
    row = session.execute(_record_query().where(InspectionRecord.id == visit_id)).first()
    if row is None:
        raise NotFound(f"visit {visit_id} does not exist", field="visit_id")
    if actor.role not in READERS and row[0].technician_id != actor.id:
        raise Forbidden(f"visit {visit_id} is not yours", field="visit_id")
    return _visit_out(row)


def list_visits(session: Session, actor: Principal, *, site_id: int | None = None,
                round_id: int | None = None, technician_id: int | None = None,
                evidence: str | None = None, since: datetime | None = None,
                until: datetime | None = None, before_id: int | None = None,
                limit: int = 100) -> list[VisitOut]:
    q = _record_query().order_by(InspectionRecord.id.desc()).limit(limit)
    if actor.role not in READERS:
        technician_id = actor.id
    for col, val in ((InspectionRecord.site_id, site_id), (InspectionRecord.round_id, round_id),
                     (InspectionRecord.technician_id, technician_id),
                     (InspectionRecord.evidence, evidence)):
        if val is not None:
            q = q.where(col == val)
    if since:
        q = q.where(InspectionRecord.started_at >= since)
    if until:
        q = q.where(InspectionRecord.started_at < until)
    if before_id:
        q = q.where(InspectionRecord.id < before_id)
    return [_visit_out(r) for r in session.execute(q)]


def _by_client_id(session: Session, data: VisitIn, actor: Principal) -> VisitOut | None:
    row = session.execute(_record_query().where(InspectionRecord.client_id == data.client_id)
                          ).first()
    if row is None:
        return None
    r = row[0]
    if r.technician_id != actor.id or r.site_id != data.site_id:
        raise Conflict(f"client_id {data.client_id} was already used for another visit",
                       field="client_id", code="client_id_reused")
    return _visit_out(row, duplicate=True)


def _find_scan(session: Session, data: VisitIn) -> TagScan | None:
    """The cited scan, row-locked (FOR NO KEY UPDATE) until the visit commits: two visits citing
    the same scan, even at different sites (whose chain locks differ), are judged one after the
    other, so the second sees the first and is flagged ``scan_reused``. The lock does not block
    rows that merely reference the scan (foreign keys take KEY SHARE). Lock order: scan, then
    the site's chain head."""
    lock = {"key_share": True}
    if data.tag_scan_id is not None:
        scan = session.get(TagScan, data.tag_scan_id, with_for_update=lock, populate_existing=True)
        if scan is None:  # an id is only known once the scan is stored: it will not appear
            raise InvalidInput(f"tag scan {data.tag_scan_id} does not exist", field="tag_scan_id")
        return scan
    if data.tag_scan_msg_id is not None:
        scan = session.scalars(select(TagScan).where(TagScan.client_id == data.tag_scan_msg_id)
                               .order_by(TagScan.id).limit(1).with_for_update(**lock)
                               .execution_options(populate_existing=True)).first()
        if scan is None:
            raise TagScanPending(f"no tag scan with msg_id {data.tag_scan_msg_id} has arrived "
                                 "(yet)", field="tag_scan_msg_id")
        return scan
    return None


def _match_round(session: Session, data: VisitIn, actor: Principal) -> InspectionRound | None:
    """The round this visit belongs to: the one given (which must be the technician's and list
    the site), else the technician's (or crew's) round with this site whose window is nearest
    before the visit, from an hour before the window to a day after it; a window that holds the
    visit wins over one that opens within that hour."""
    crew_id = crew_of(session, actor.id)
    mine = InspectionRound.technician_id == actor.id
    if crew_id is not None:
        mine = or_(mine, InspectionRound.crew_id == crew_id)
    has_site = exists().where(RoundSite.round_id == InspectionRound.id,
                              RoundSite.site_id == data.site_id)
    if data.round_id is not None:
        rnd = session.get(InspectionRound, data.round_id)
        if rnd is None:
            raise InvalidInput(f"round {data.round_id} does not exist", field="round_id")
        if actor.role is not Role.admin and not session.scalar(
                select(exists().where(InspectionRound.id == rnd.id, mine))):
            raise Forbidden(f"round {data.round_id} is not assigned to {actor.username}",
                            field="round_id", code="not_your_round")
        if not session.scalar(select(exists().where(RoundSite.round_id == rnd.id,
                                                    RoundSite.site_id == data.site_id))):
            raise InvalidInput(f"site {data.site_id} is not a checkpoint of round {rnd.id}",
                               field="site_id")
        return rnd
    # a round whose window holds the visit first (today's, even when tomorrow's — generated
    # ahead — lists the site too), else the latest window that opens within the hour
    inside = and_(InspectionRound.window_start <= data.started_at,
                  InspectionRound.window_end >= data.started_at)
    return session.scalars(
        select(InspectionRound).where(
            mine, has_site,
            InspectionRound.window_start <= data.started_at + timedelta(hours=1),
            InspectionRound.window_end + timedelta(days=1) >= data.started_at)
        .order_by(case((inside, 0), else_=1), InspectionRound.window_start.desc())
        .limit(1)).first()


def _template_for(session: Session, site_id: int, version: int | None
                  ) -> ChecklistTemplate | None:
    profile = session.get(SiteProfile, site_id)
    if profile is None:
        if version is not None:
            raise InvalidInput(f"site {site_id} has no site type, so no checklist version "
                               f"{version}", field="template_version")
        return None
    if version is None:
        return _current_template(session, profile.site_type_id)
    t = session.scalars(select(ChecklistTemplate).where(
        ChecklistTemplate.site_type_id == profile.site_type_id,
        ChecklistTemplate.version == version)).first()
    if t is None:
        raise InvalidInput(f"the site's checklist has no version {version}",
                           field="template_version")
    return t


def _lineage_root(session: Session, record_id: int) -> int:
    """The first record of a chain of corrections."""
    seen = set()
    while record_id not in seen:
        seen.add(record_id)
        parent = session.scalar(select(InspectionRecord.corrects_id)
                                .where(InspectionRecord.id == record_id))
        if parent is None:
            break
        record_id = parent
    return record_id


def _lock_chain(session: Session, site_id: int) -> ChainHead:
    """The site's chain head, locked: appends to one site's chain are serialised; other sites'
    appends run in parallel."""
    session.execute(pg_insert(ChainHead).values(site_id=site_id, site_seq=0, hash=chain.GENESIS)
                    .on_conflict_do_nothing(index_elements=["site_id"]))
    head = session.scalars(select(ChainHead).where(ChainHead.site_id == site_id)
                           .with_for_update().execution_options(populate_existing=True)).one()
    return head


def submit_visit(session: Session, data: VisitIn, actor: Principal, now: datetime,
                 cfg: InspectionConfig, *, source: str = "http") -> VisitOut:
    """Judge a visit and append it to its site's chain. A ``client_id`` seen before returns the
    stored record (``duplicate``) without a second record."""
    if data.client_id is not None:
        stored = _by_client_id(session, data, actor)
        if stored is not None:
            return stored
    for field in ("started_at", "finished_at"):
        if getattr(data, field) > now + FUTURE_SLACK:
            raise InvalidInput(f"{field} is in the future (server time {now.isoformat()}); "
                               "check the handset's clock", field=field, code="in_the_future")
    site = session.execute(select(Site.id, func.ST_X(Site.location), func.ST_Y(Site.location))
                           .where(Site.id == data.site_id)).first()
    if site is None:
        raise InvalidInput(f"site {data.site_id} does not exist", field="site_id")
    if data.corrects_id is not None:
        original = session.get(InspectionRecord, data.corrects_id)
        if original is None or original.site_id != data.site_id:
            raise InvalidInput(f"visit {data.corrects_id} is not a visit of site {data.site_id}",
                               field="corrects_id")
        if original.technician_id != actor.id and actor.role is not Role.admin:
            raise Forbidden(f"visit {data.corrects_id} is someone else's: only its technician "
                            "corrects it", field="corrects_id")
    template = _template_for(session, data.site_id, data.template_version)
    items = template.items if template else []
    bad = check_value_types(items, data.values)
    if bad is not None:
        raise InvalidInput(f"values.{bad[0]} {bad[1]}", field=f"values.{bad[0]}")
    media = {i["key"]: i["kind"] for i in items if i["kind"] in ("photo", "signature")}
    for a in data.attachments:
        if media.get(a.item) != a.kind:
            raise InvalidInput(f"attachment for {a.item!r}: the checklist has no {a.kind} item "
                               "with that key", field="attachments")
    scan = _find_scan(session, data)
    rnd = _match_round(session, data, actor)
    profile = session.get(SiteProfile, data.site_id)
    tolerance = profile.tolerance_m if profile and profile.tolerance_m else cfg.tolerance_m
    lon = lat = dist = None
    if data.position is not None:
        lon, lat = round(data.position.lon, 7), round(data.position.lat, 7)
        dist = round(distance_m(site[1], site[2], lon, lat), 2)
    facts = None
    if scan is not None:
        # a correction may reuse its original's scan; any other visit may not
        ours = _lineage_root(session, data.corrects_id) if data.corrects_id else None
        reused = any(_lineage_root(session, rid) != ours for rid in session.scalars(
            select(InspectionRecord.id).where(InspectionRecord.tag_scan_id == scan.id)))
        facts = ScanFacts(id=scan.id, verdict=scan.verdict, site_id=scan.site_id,
                          actor_id=scan.actor_id, at=scan.scanned_at or scan.received_at,
                          used_by_other_visit=bool(reused))
    finding = judge_visit(
        site_id=data.site_id, technician_id=actor.id, started_at=data.started_at,
        finished_at=data.finished_at, scan=facts, distance_m=dist, accuracy_m=data.accuracy_m,
        rules=Rules(tolerance_m=tolerance, accept_uid_only=cfg.accept_uid_only,
                    scan_max_gap=cfg.scan_max_gap),
        window=(rnd.window_start, rnd.window_end) if rnd else None, items=items,
        values=data.values, attachment_items={a.item for a in data.attachments})
    head = _lock_chain(session, data.site_id)
    if data.client_id is not None:  # a concurrent resend may have committed while we waited
        stored = _by_client_id(session, data, actor)
        if stored is not None:
            return stored
    content: dict[str, Any] = dict(
        site_id=data.site_id, site_seq=head.site_seq + 1, round_id=rnd.id if rnd else None,
        technician_id=actor.id, source=source, client_id=data.client_id, received_at=now,
        started_at=data.started_at, finished_at=data.finished_at,
        tag_scan_id=scan.id if scan else None, scan_verdict=scan.verdict if scan else None,
        lon=lon, lat=lat, accuracy_m=data.accuracy_m, distance_m=dist,
        template_id=template.id if template else None, values=data.values,
        attachments=[a.model_dump(mode="json", exclude_none=True) for a in data.attachments],
        evidence=finding.evidence, flags=finding.flags, note=data.note,
        corrects_id=data.corrects_id, prev_hash=head.hash)
    digest = chain.record_hash(content)
    columns = {k: v for k, v in content.items() if k not in ("lon", "lat")}
    record_id = session.scalar(
        pg_insert(InspectionRecord).values(
            **columns, hash=digest,
            position=func.ST_SetSRID(func.ST_MakePoint(lon, lat), SRID) if lon is not None
            else None)
        # the same client_id sent concurrently for another site's chain (a buggy handset)
        .on_conflict_do_nothing(index_elements=["client_id"],
                                index_where=text("client_id IS NOT NULL"))
        .returning(InspectionRecord.id))
    if record_id is None:
        stored = _by_client_id(session, data, actor)
        assert stored is not None
        return stored
    head.site_seq, head.hash = content["site_seq"], digest
    session.flush()
    row = session.execute(_record_query().where(InspectionRecord.id == record_id)).one()
    return _visit_out(row)


# --- the chain -----------------------------------------------------------------------------------

def chain_rows(session: Session, site_id: int) -> list[dict[str, Any]]:
    rows = session.execute(text("""
        SELECT id, site_id, site_seq, round_id, technician_id, source, client_id, received_at,
               started_at, finished_at, tag_scan_id, scan_verdict, ST_X(position) AS lon,
               ST_Y(position) AS lat, accuracy_m, distance_m, template_id, "values",
               attachments, evidence, flags, note, corrects_id, prev_hash, hash
        FROM inspection_records WHERE site_id = :s ORDER BY site_seq, id"""), {"s": site_id})
    return [dict(r._mapping) for r in rows]


def verify_chains(session: Session, site_id: int | None = None) -> VerifyOut:
    """Recompute every record's hash and link: finds edited, deleted and reordered records."""
    if site_id is not None:
        sites = [site_id]
    else:
        sites = sorted(set(session.scalars(select(InspectionRecord.site_id).distinct()))
                       | set(session.scalars(select(ChainHead.site_id))))
    heads = {h.site_id: (h.site_seq, h.hash) for h in session.scalars(
        select(ChainHead).where(ChainHead.site_id.in_(sites)))}
    problems: list[dict[str, Any]] = []
    records = 0
    for s in sites:
        rows = chain_rows(session, s)
        records += len(rows)
        head = heads.get(s)
        if head == (0, chain.GENESIS):
            head = None if not rows else head
        problems.extend(chain.find_problems(s, rows, head))
    return VerifyOut(ok=not problems, sites=len(sites), records=records, problems=problems)


def local_day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    start = datetime.combine(day, datetime.min.time(), tz)
    return start, datetime.combine(day + timedelta(days=1), datetime.min.time(), tz)

