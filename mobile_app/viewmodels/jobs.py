"""My jobs and job detail: what the screens show and which actions a job offers (no widgets).

Every action is at most two taps from the job detail: status steps are one tap; "resolved" and
"cannot fix" open a sheet whose buttons (one per resolution code or reason) send at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from mobile_app.i18n import duration, tr
from mobile_app.viewmodels.store import Job

PRIORITY_RANK = {"emergency": 0, "high": 1, "normal": 2, "low": 3}
# high-contrast colours that stay readable in sunlight (RGBA 0..1), by priority and SLA state
PRIORITY_COLOUR = {"emergency": (0.85, 0.0, 0.0, 1), "high": (0.95, 0.45, 0.0, 1),
                   "normal": (0.1, 0.3, 0.8, 1), "low": (0.35, 0.35, 0.35, 1)}
SLA_COLOUR = {"ok": (0.0, 0.45, 0.1, 1), "warning": (0.75, 0.4, 0.0, 1),
              "overdue": (0.85, 0.0, 0.0, 1), "none": (0.3, 0.3, 0.3, 1)}
OPEN = ("assigned", "accepted", "en_route", "on_site")
RESOLUTIONS = ("repaired", "part_replaced", "temporary_fix", "no_fault_found")
CANNOT_FIX_REASONS = ("parts_needed", "no_access", "customer_absent", "unsafe", "needs_specialist")
# "cannot fix" resolves the ticket with this code prefix and the reason; the desk reopens it for a
# follow-up visit (the lifecycle has no "unable" state and the technician may not unassign)
CANNOT_FIX_PREFIX = "cannot_fix."


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (good to ~0.5 %, plenty for 'how far is my next job')."""
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def distance_text(metres: float | None, lang: str) -> str:
    if metres is None:
        return tr("distance.unknown", lang)
    if metres < 1000:
        return tr("distance.m", lang, m=int(round(metres, -1)))
    return tr("distance.km", lang, km=f"{metres / 1000:.1f}")


def sla(job: Job, now: datetime, lang: str) -> tuple[str, str]:
    """(state, text): state is ok / warning (under a fifth of the time or 30 min left) / overdue /
    none."""
    due = parse_time(job.get("due_at"))
    if due is None:
        return "none", tr("sla.none", lang)
    left = (due - now).total_seconds()
    if left < 0:
        return "overdue", tr("sla.overdue", lang, time=duration(-left, lang))
    start = parse_time(job.get("assigned_at"))
    span = (due - start).total_seconds() if start else None
    warning = left < 30 * 60 or (span is not None and span > 0 and left < span / 5)
    return ("warning" if warning else "ok"), tr("sla.left", lang, time=duration(left, lang))


def label(prefix: str, value: str | None, lang: str) -> str:
    key = f"{prefix}.{value}"
    try:
        return tr(key, lang)
    except KeyError:
        return value or "—"


@dataclass(frozen=True)
class JobRow:
    """One line of the job list, ready for a RecycleView (``as_data``)."""

    ticket_id: int
    title: str
    priority: str
    priority_text: str
    status: str
    status_text: str
    sla_state: str
    sla_text: str
    distance_text: str
    distance_m: float | None

    def as_data(self) -> dict[str, Any]:
        return {"ticket_id": self.ticket_id, "title": self.title,
                "priority_text": self.priority_text,
                "priority_colour": PRIORITY_COLOUR.get(self.priority, PRIORITY_COLOUR["normal"]),
                "status_text": self.status_text, "sla_text": self.sla_text,
                "sla_colour": SLA_COLOUR[self.sla_state], "distance_text": self.distance_text}


def job_rows(jobs: list[Job], now: datetime, lang: str,
             position: tuple[float, float] | None, unsent: set[int] | frozenset = frozenset()
             ) -> list[JobRow]:
    """Open jobs first by priority, then by SLA deadline (soonest first), then by distance.
    ``unsent``: jobs with a step still in the outbox (their status says so)."""
    rows = []
    for job in jobs:
        status = job.status
        if status not in OPEN:
            continue
        loc = job.get("location")
        dist = haversine_m(position[0], position[1], loc["lon"], loc["lat"]) \
            if position and loc else None
        state, text = sla(job, now, lang)
        title = f"#{job.ticket_id} · {label('category', job.get('category'), lang)} · " \
                f"{job.get('summary') or ''}"
        status_text = label("status", status, lang)
        if job.ticket_id in unsent:
            status_text += " " + tr("status.queued", lang)
        rows.append(JobRow(job.ticket_id, title, job.get("priority") or "normal",
                           label("priority", job.get("priority"), lang), status, status_text,
                           state, text, distance_text(dist, lang), dist))

    def key(row: JobRow):
        job_due = next(j for j in jobs if j.ticket_id == row.ticket_id).get("due_at") or "9999"
        return (PRIORITY_RANK.get(row.priority, 9), job_due,
                row.distance_m if row.distance_m is not None else math.inf, row.ticket_id)

    rows.sort(key=key)
    return rows


@dataclass(frozen=True)
class Action:
    key: str          # accept, en_route, arrived, scan, checklist, resolve, cannot_fix
    text: str
    opens: str | None = None  # the sheet/screen it opens; None: it acts at once
    primary: bool = False


NEXT_STEP = {"assigned": "accept", "accepted": "en_route", "en_route": "arrived"}
STEP_STATUS = {"accept": "accepted", "en_route": "en_route", "arrived": "on_site"}


def actions(job: Job, lang: str) -> list[Action]:
    status = job.status
    out: list[Action] = []
    step = NEXT_STEP.get(status)
    if step:
        out.append(Action(step, tr(f"action.{step}", lang), primary=True))
    if status in ("en_route", "on_site"):
        out.append(Action("scan", tr("action.scan", lang), opens="scan"))
    if status == "on_site":
        out.append(Action("checklist", tr("action.checklist", lang), opens="checklist"))
        out.append(Action("resolve", tr("action.resolve", lang), opens="resolve", primary=True))
        out.append(Action("cannot_fix", tr("action.cannot_fix", lang), opens="cannot_fix"))
    return out


@dataclass(frozen=True)
class JobDetail:
    ticket_id: int
    title: str
    status_text: str
    priority_text: str
    sla_state: str
    sla_text: str
    customer: str
    phone: str | None
    address: str
    description: str
    directions_uri: str | None   # geo: URI, for Android's maps apps
    directions_url: str | None   # the same in a browser (desktop)
    call_uri: str | None
    actions: list[Action]


def detail(job: Job, now: datetime, lang: str) -> JobDetail:
    state, text = sla(job, now, lang)
    loc = job.get("location")
    address = job.get("address") or ""
    geo = web = None
    if loc:
        lat, lon = loc["lat"], loc["lon"]
        geo = f"geo:{lat},{lon}?q={lat},{lon}" + (f"({quote(address)})" if address else "")
        web = f"https://www.openstreetmap.org/directions?route=%3B{lat}%2C{lon}#map=17/{lat}/{lon}"
    elif address:
        geo = f"geo:0,0?q={quote(address)}"
        web = f"https://www.openstreetmap.org/search?query={quote(address)}"
    phone = job.get("customer_phone") or None
    dial = "".join(c for c in phone if c.isdigit() or c == "+") if phone else ""
    return JobDetail(
        ticket_id=job.ticket_id,
        title=f"{label('category', job.get('category'), lang)} · {job.get('summary') or ''}",
        status_text=label("status", job.status, lang),
        priority_text=label("priority", job.get("priority"), lang), sla_state=state, sla_text=text,
        customer=job.get("customer_name") or tr("detail.unknown", lang), phone=phone,
        address=address or tr("detail.unknown", lang),
        description=job.get("description") or job.get("summary") or "",
        directions_uri=geo, directions_url=web, call_uri=f"tel:{dial}" if dial else None,
        actions=actions(job, lang))
