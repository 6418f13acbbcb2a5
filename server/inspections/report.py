"""The round report: one data shape rendered as HTML (photos and signatures inline), as PDF
(that HTML printed by headless Chromium) and as CSV."""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import tempfile
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from server.auth.service import Principal
from server.core.errors import CrewlineError
from server.inspections import service
from server.inspections.texts import text as t
from server.inspections.texts import verdict
from server.models import ChecklistTemplate, Crew, InspectionAttachment, InspectionPlan, User


class PdfUnavailable(CrewlineError):
    status_code = 503
    code = "pdf_unavailable"


def report_data(session: Session, round_id: int, actor: Principal, now: datetime) -> dict[str, Any]:
    rnd = service.get_round(session, round_id, actor, now)
    plan = session.get(InspectionPlan, rnd.plan_id)
    if rnd.crew_id is not None:
        assignee = session.scalar(select(Crew.name).where(Crew.id == rnd.crew_id))
    else:
        assignee = session.scalar(select(User.username).where(User.id == rnd.technician_id))
    visits = service.list_visits(session, actor, round_id=round_id, limit=1000)
    visits.sort(key=lambda v: (v.started_at, v.id))
    templates = {tp.id: tp for tp in session.scalars(select(ChecklistTemplate).where(
        ChecklistTemplate.id.in_({v.template_id for v in visits if v.template_id})))}
    wanted = {a["sha256"] for v in visits for a in v.attachments}
    images = {a.sha256: a for a in session.scalars(select(InspectionAttachment).where(
        InspectionAttachment.sha256.in_(wanted)))} if wanted else {}
    addresses = dict(session.execute(text(
        "SELECT id, address FROM sites WHERE id = ANY(:ids)"),
        {"ids": [c.site_id for c in rnd.checkpoints]}).all())
    checkpoints = []
    for c in rnd.checkpoints:
        cvisits = []
        for v in (v for v in visits if v.site_id == c.site_id):
            items = templates[v.template_id].items if v.template_id in templates else []
            cvisits.append({"visit": v, "items": items, "images": {
                a["sha256"]: images.get(a["sha256"]) for a in v.attachments}})
        checkpoints.append({"checkpoint": c, "address": addresses.get(c.site_id),
                            "visits": cvisits})
    return {"round": rnd, "plan": plan, "assignee": assignee, "checkpoints": checkpoints,
            "generated_at": now}


def _local(at: datetime | None, zone: str) -> str:
    if at is None:
        return ""
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def _value(item: dict[str, Any] | None, value: Any, lang: str) -> str:
    if isinstance(value, bool):
        return t("yes" if value else "no", lang)
    if value is None:
        return "—"
    unit = (item or {}).get("unit")
    return f"{value} {unit}" if unit else str(value)


_CSS = """
body { font-family: "Noto Sans CJK SC", "Noto Sans", sans-serif; font-size: 11pt; margin: 0; color: #111; }
h1 { font-size: 18pt; margin: 0 0 6pt; }
h2 { font-size: 13pt; margin: 14pt 0 4pt; break-after: avoid; page-break-after: avoid; }
.address { break-after: avoid; page-break-after: avoid; }
table { border-collapse: collapse; width: 100%; margin: 4pt 0; }
th, td { border: 1px solid #999; padding: 3pt 5pt; text-align: left; vertical-align: top; }
th { background: #eee; width: 28%; }
.state-done, .ev-verified { color: #0a6b2d; font-weight: bold; }
.state-late, .ev-flagged { color: #a35a00; font-weight: bold; }
.state-missed { color: #b00020; font-weight: bold; }
.flags { color: #a35a00; } .hash { font-family: monospace; font-size: 8pt; word-break: break-all; }
figure { display: inline-block; margin: 4pt; text-align: center; }
figure img { max-width: 220pt; max-height: 160pt; border: 1px solid #ccc; }
figcaption { font-size: 9pt; }
.visit { page-break-inside: avoid; margin-left: 8pt; }
"""


def render_html(data: dict[str, Any], lang: str = "en") -> str:
    rnd, plan = data["round"], data["plan"]
    zone = plan.timezone
    h = [f'<!doctype html><html lang="{escape(lang)}"><head><meta charset="utf-8">',
         f"<title>{escape(t('report_title', lang))} #{rnd.id}</title><style>{_CSS}</style>",
         "</head><body>", f"<h1>{escape(t('report_title', lang))} #{rnd.id}</h1><table>",
         f"<tr><th>{escape(t('plan', lang))}</th><td>{escape(plan.name)}</td></tr>",
         f"<tr><th>{escape(t('window', lang))}</th><td>{_local(rnd.window_start, zone)} – "
         f"{_local(rnd.window_end, zone)} ({escape(zone)})</td></tr>",
         f"<tr><th>{escape(t('assignee', lang))}</th><td>{escape(data['assignee'] or '')}</td></tr>",
         f"<tr><th>{escape(t('generated', lang))}</th><td>{_local(data['generated_at'], zone)}"
         "</td></tr></table>"]
    for cp in data["checkpoints"]:
        c = cp["checkpoint"]
        h.append(f"<h2>{c.position}. {escape(c.name)} "
                 f'<span class="state-{c.state}">[{escape(t(c.state, lang))}]</span></h2>')
        if cp["address"]:
            h.append(f'<div class="address">{escape(cp["address"])}</div>')
        for cv in cp["visits"]:
            v = cv["visit"]
            by_key = {i["key"]: i for i in cv["items"]}
            flags = "; ".join(t(f, lang) for f in v.flags) or t("none", lang)
            h.append('<div class="visit"><table>')
            h.append(f"<tr><th>{escape(t('visit', lang))}</th><td>#{v.id} "
                     f"{_local(v.started_at, zone)} – {_local(v.finished_at, zone)}"
                     + (f" (corrects #{v.corrects_id})" if v.corrects_id else "") + "</td></tr>")
            h.append(f"<tr><th>{escape(t('technician', lang))}</th><td>{escape(v.technician)}"
                     "</td></tr>")
            h.append(f"<tr><th>{escape(t('evidence', lang))}</th><td>"
                     f'<span class="ev-{v.evidence}">{escape(t(v.evidence, lang))}</span> '
                     f'<span class="flags">{escape(flags)}</span></td></tr>')
            h.append(f"<tr><th>{escape(t('tag', lang))}</th><td>"
                     + (f"#{v.tag_scan_id} {escape(verdict(v.scan_verdict or '', lang))}"
                        if v.tag_scan_id
                        else escape(t("none", lang))) + "</td></tr>")
            h.append(f"<tr><th>{escape(t('distance', lang))}</th><td>"
                     + (f"{v.distance_m:.1f} m" if v.distance_m is not None
                        else escape(t("no_gps", lang))) + "</td></tr>")
            keys = [i["key"] for i in cv["items"] if i["key"] in v.values]
            keys += [k for k in v.values if k not in by_key]
            for key in keys:  # in the checklist's order
                item, value = by_key.get(key), v.values[key]
                label = (item.get("label_zh") if lang == "zh-CN" else None) or \
                    (item or {}).get("label") or key
                h.append(f"<tr><th>{escape(label)}</th><td>{escape(_value(item, value, lang))}"
                         "</td></tr>")
            h.append(f'<tr><th>{escape(t("chain", lang))}</th><td class="hash">{v.hash}</td></tr>')
            h.append("</table>")
            if v.attachments:
                h.append(f"<div><b>{escape(t('photos', lang))}</b><br>")
                for a in v.attachments:
                    item = by_key.get(a["item"], {})
                    label = (item.get("label_zh") if lang == "zh-CN" else None) or \
                        item.get("label") or a["item"]
                    caption = escape(label + (f" — {a['signer_name']}" if a.get("signer_name")
                                              else ""))
                    img = cv["images"].get(a["sha256"])
                    if img is not None:
                        src = (f"data:{img.content_type};base64,"
                               f"{base64.b64encode(img.data).decode()}")
                        h.append(f'<figure><img src="{src}" alt="{caption}">'
                                 f"<figcaption>{caption}</figcaption></figure>")
                    else:
                        h.append(f"<figure><figcaption>{caption}: "
                                 f"{escape(t('not_uploaded', lang))} ({a['sha256'][:12]}…)"
                                 "</figcaption></figure>")
                h.append("</div>")
            h.append("</div>")
    h.append("</body></html>")
    return "".join(h)


def render_pdf(html: str, chromium: str, timeout_s: float = 90) -> bytes:
    """Print the HTML with headless Chromium (Debian's ``chromium``; CJK via fonts-noto-cjk)."""
    with tempfile.TemporaryDirectory(prefix="crewline-report-") as tmp:
        src, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        src.write_text(html, encoding="utf-8")
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--no-pdf-header-footer", "--print-to-pdf-no-header",
               f"--user-data-dir={tmp}/profile", f"--print-to-pdf={out}", src.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PdfUnavailable(f"cannot run {chromium} to print the report: {exc}") from None
        if not out.exists() or not out.read_bytes().startswith(b"%PDF"):
            detail = proc.stderr.decode(errors="replace")[-300:]
            raise PdfUnavailable(f"{chromium} did not print the report (exit {proc.returncode})"
                                 f": {detail}")
        return out.read_bytes()


CSV_COLUMNS = ("round_id", "plan", "period_start", "window_start", "window_end", "position",
               "site_id", "site", "state", "visit_id", "technician", "started_at", "finished_at",
               "evidence", "flags", "tag_scan_id", "scan_verdict", "distance_m", "values",
               "attachments", "corrects_id", "hash")


def render_csv(data: dict[str, Any]) -> str:
    rnd, plan = data["round"], data["plan"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    base = [rnd.id, plan.name, rnd.period_start.isoformat(), rnd.window_start.isoformat(),
            rnd.window_end.isoformat()]
    for cp in data["checkpoints"]:
        c = cp["checkpoint"]
        head = [*base, c.position, c.site_id, c.name, c.state]
        if not cp["visits"]:
            w.writerow(head + [""] * (len(CSV_COLUMNS) - len(head)))
        for cv in cp["visits"]:
            v = cv["visit"]
            w.writerow([*head, v.id, v.technician, v.started_at.isoformat(),
                               v.finished_at.isoformat(), v.evidence, " ".join(v.flags),
                               v.tag_scan_id or "", v.scan_verdict or "",
                               "" if v.distance_m is None else v.distance_m,
                               json.dumps(v.values, ensure_ascii=False, sort_keys=True),
                               len(v.attachments), v.corrects_id or "", v.hash])
    return buf.getvalue()
