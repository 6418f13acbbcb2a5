"""The presenter root of the handset app: pairing, the link, jobs, actions, scans (no widgets).

Screens call these methods and subscribe to changes; callbacks may come from the link's or a
reader's thread — the Kivy layer re-schedules them on the UI thread. Every report goes through
:class:`mobile_app.link.client.HandsetLink` (durable outbox, acks, resends), so everything a
technician does offline is sent, once and in order, when the handset is back online.

Scan verdicts: the handset cannot verify a SUN tag (it has no keys) and does not know the tag
registry, so the verdict shown is the **server's**: once the tag_scan is acknowledged the app asks
``GET /api/v1/devices/self/scans/{msg_id}`` (HTTP Basic with the device's MQTT credentials).
Until then it shows a local, provisional reading: ``pending_sun`` / ``pending_plain``, or a final
local ``malformed`` (unparsable SUN data) or ``replayed`` (the very same SUN URL was already
scanned on this handset).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mobile_app import server_api
from mobile_app.config import HandsetSettings
from mobile_app.i18n import LANGUAGES, tr
from mobile_app.link.client import HandsetLink
from mobile_app.platform import Platform
from mobile_app.viewmodels import jobs as jobs_vm
from mobile_app.viewmodels import rounds as rounds_vm
from mobile_app.viewmodels.checklist import Checklist, from_round_template, template_for
from mobile_app.viewmodels.positions import PositionReporter, mode_for
from mobile_app.viewmodels.store import HandsetStore, Job, Pairing

log = logging.getLogger(__name__)

# what the server's verdicts are called on screen
VERDICT_SHOWN = {"verified": "verified", "uid_only": "plain", "unknown_tag": "unknown",
                 "replayed": "replayed", "bad_mac": "bad_mac", "revoked": "revoked",
                 "malformed": "malformed"}
_CODE = re.compile(r"^[0-9A-Za-z]{8}$")
KEEP_HISTORY = timedelta(days=30)  # actions and scans kept on the handset


class RoundWithdrawn(LookupError):
    """The server withdrew this round (round_cancel): no visit of it can begin."""

    def __init__(self, round_id: int) -> None:
        super().__init__(f"round {round_id} was withdrawn")
        self.round_id = round_id


class PairingFailed(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def parse_pairing_input(text: str) -> tuple[str | None, str]:
    """A scanned QR payload ``crewline://pair?server=…&code=…`` or a typed code → (server, code)."""
    text = text.strip()
    if text.startswith("crewline://pair"):
        q = parse_qs(urlsplit(text).query)
        return (q.get("server") or [None])[0], (q.get("code") or [""])[0]
    return None, text


@dataclass
class ScanOutcome:
    msg_id: str
    uid: str
    verdict: str          # a key of verdict.*: pending_sun, pending_plain, verified, plain, …
    final: bool
    checked_in: bool      # an on_site status was queued with it


class Handset:
    def __init__(self, settings: HandsetSettings, platform: Platform, *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 link_factory: Callable[..., HandsetLink] = HandsetLink) -> None:
        self.settings = settings
        self.platform = platform
        self.now = now
        self.link_factory = link_factory
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = HandsetStore(settings.data_dir / "handset.sqlite")
        self.link: HandsetLink | None = None
        self.notices: list[str] = []
        self._listeners: list[Callable[[str], None]] = []
        self._verdict_lock = threading.Lock()
        self.positions = PositionReporter(platform.gps, self._send_positions, self._mode)

    # -- observers -------------------------------------------------------------------------------
    def subscribe(self, fn: Callable[[str], None]) -> None:
        self._listeners.append(fn)

    def _changed(self, what: str) -> None:
        for fn in list(self._listeners):
            try:
                fn(what)
            except Exception:  # a screen's bug must not stop the link's thread
                log.exception("listener failed on %s", what)

    # -- preferences -----------------------------------------------------------------------------
    @property
    def language(self) -> str:
        lang = self.settings.language or self.store.get_pref("language")
        return lang if lang in LANGUAGES else "zh-CN"

    def set_language(self, lang: str) -> None:
        if lang not in LANGUAGES:
            raise ValueError(f"unsupported language {lang!r}")
        self.store.set_pref("language", lang)
        self._changed("language")

    @property
    def server_url(self) -> str:
        p = self.store.pairing()
        return p.server_url if p else (self.store.get_pref("server_url") or self.settings.server_url)

    def set_server_url(self, url: str) -> None:
        url = url.strip().rstrip("/")
        self.store.set_pref("server_url", url)
        p = self.store.pairing()
        if p is not None:
            self.store.set_pairing(Pairing(**{**p.__dict__, "server_url": url}))
        self._changed("settings")

    @property
    def pairing(self) -> Pairing | None:
        return self.store.pairing()

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.store.prune(self.now() - KEEP_HISTORY)
        self.platform.gps.start()
        if self.pairing is not None:
            self._start_link()

    def stop(self) -> None:
        self.platform.gps.stop()
        self.platform.scanner.stop()
        link, self.link = self.link, None
        if link is not None:
            link.stop()
        self.store.close()

    def _start_link(self) -> None:
        p = self.pairing
        assert p is not None
        self.link = self.link_factory(
            p.broker_host, p.broker_port, p.device_id, p.password,
            self.outbox_path(p.device_id), on_downlink=self._on_downlink,
            on_gap=self._on_gap, on_rejected=self._on_rejected, now=self.now)
        self.link.start()

    def outbox_path(self, device_id: str) -> Path:
        """One outbox per device identity: its downlink sequence starts over with a new pairing."""
        return self.settings.data_dir / f"outbox-{device_id}.sqlite"

    @property
    def online(self) -> bool:
        return self.link is not None and self.link.connected.is_set()

    @property
    def queued(self) -> int:
        return len(self.link.outbox) if self.link is not None else 0

    def banner(self) -> tuple[str, str]:
        """(state, text) for the banner on every screen: offline / sending / online."""
        n, lang = self.queued, self.language
        if self.pairing is None:
            return "offline", tr("settings.unpaired", lang)
        if not self.online:
            return "offline", tr("banner.offline", lang, n=n)
        if n:
            return "sending", tr("banner.sending", lang, n=n)
        return "online", tr("banner.online", lang)

    # -- pairing ---------------------------------------------------------------------------------
    def pair(self, server: str, code_text: str, name: str) -> Pairing:
        """Trade a code (or a scanned QR payload) for credentials; raises PairingFailed with a
        text for the technician."""
        lang = self.language
        qr_server, code = parse_pairing_input(code_text)
        server = (qr_server or server).strip().rstrip("/")
        if not server.startswith(("http://", "https://")):
            raise PairingFailed(tr("pair.err.server", lang))
        if not _CODE.match(code.replace("-", "").replace(" ", "")):
            raise PairingFailed(tr("pair.err.code_format", lang))
        try:
            body = server_api.pair(server, code, name.strip() or "handset")
        except server_api.NetworkError as exc:
            raise PairingFailed(tr("pair.err.network", lang, detail=str(exc))) from None
        except server_api.ApiError as exc:
            if exc.code == "pairing_refused":
                raise PairingFailed(tr("pair.err.refused", lang)) from None
            if exc.code == "pairing_locked":
                minutes = int((exc.details or {}).get("retry_after_s", 900)) // 60
                raise PairingFailed(tr("pair.err.locked", lang, minutes=minutes)) from None
            raise PairingFailed(tr("pair.err.other", lang, detail=exc.message)) from None
        return self.adopt(server, body)

    def adopt(self, server: str, body: dict[str, Any]) -> Pairing:
        """Keep the credentials of a ``POST /api/v1/devices/pair`` answer and go online."""
        pairing = Pairing(server_url=server, device_id=body["mqtt"]["username"],
                          password=body["mqtt"]["password"], broker_host=body["broker"]["host"],
                          broker_port=body["broker"]["port"], broker_tls=body["broker"]["tls"],
                          user_id=body["user"]["id"], username=body["user"]["username"],
                          full_name=body["user"].get("full_name") or "")
        previous = self.store.get_pref("user_id")
        if previous is not None and previous != str(pairing.user_id):
            self.store.clear_work()  # another technician's handset now: not their jobs
        self.store.set_pref("user_id", str(pairing.user_id))
        self.store.set_pairing(pairing)
        if not self.store.get_pref("language") and body["user"].get("language") in LANGUAGES:
            self.store.set_pref("language", body["user"]["language"])
        self._start_link()
        self._changed("paired")
        return pairing

    def unpair(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.stop()
        self.store.set_pairing(None)
        self._changed("paired")

    # -- downlink --------------------------------------------------------------------------------
    def _on_downlink(self, kind: str, body: dict[str, Any]) -> None:
        now = self.now()
        if kind == "work_order":
            self.store.upsert_job(body, now)
        elif kind == "cancel":
            job = self.job(body["ticket_id"])
            self.store.cancel_job(body["ticket_id"], body.get("reason") or "")
            if body.get("reason") != "resolved" or (job and job.local_status != "resolved"):
                # (the technician's own resolve coming back needs no notice)
                self.notices.append(tr("notice.cancelled", self.language, id=body["ticket_id"],
                                       reason=jobs_vm.label("cancel", body.get("reason"),
                                                            self.language)))
        elif kind == "round":
            self.store.upsert_round(str(body.get("round_id") or body.get("id") or body["seq"]),
                                    body, now)
        elif kind == "round_cancel":
            self._round_withdrawn(body, now)
        self._changed("jobs")

    def _round_withdrawn(self, body: dict[str, Any], now: datetime) -> None:
        """The round leaves the list for good (the store keeps the withdrawal); the technician
        is told once, if the round was on this handset."""
        key = str(body["round_id"])
        rnd = self.store.round(key)
        if self.store.cancel_round(key, body.get("reason") or "", now) and rnd is not None:
            self.notices.append(tr(
                "notice.round_withdrawn", self.language,
                name=rnd.get("plan_name") or key, date=rnd.get("period_start") or "",
                reason=jobs_vm.label("round_cancel", body.get("reason"), self.language)))

    def _on_gap(self, expected: int, got: int) -> None:
        # the link itself asks the server for a resync and delivers nothing out of order
        log.warning("downlink gap: expected seq %s, got %s; resync requested", expected, got)

    def _on_rejected(self, msg_id: str, error: dict[str, Any]) -> None:
        found = self.store.reject_action(msg_id, error)
        self.notices.append(tr("notice.rejected", self.language,
                               message=error.get("message") or error.get("code") or "?"))
        if found and found[0] is not None and found[1] == "status":
            # the server did not take the step: show the server's status again
            self.store.set_local_status(found[0], None)
        self._changed("jobs")

    # -- jobs ------------------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        return self.store.jobs()

    def job(self, ticket_id: int) -> Job | None:
        return self.store.job(ticket_id)

    def position(self) -> tuple[float, float] | None:
        fix = self.platform.gps.current()
        return (fix.lon, fix.lat) if fix else None

    def unsent_jobs(self) -> set[int]:
        """Jobs with a step the server has not acknowledged yet."""
        if self.link is None:
            return set()
        pending = {m for m, _, _ in self.link.outbox.pending()}
        return {a["ticket_id"] for a in self.store.actions()
                if a["kind"] == "status" and a["msg_id"] in pending}

    def job_rows(self) -> list[jobs_vm.JobRow]:
        return jobs_vm.job_rows(self.jobs(), self.now(), self.language, self.position(),
                                self.unsent_jobs())

    def _require_link(self) -> HandsetLink:
        if self.link is None:
            raise RuntimeError("the handset is not paired")
        return self.link

    def set_status(self, ticket_id: int, status: str, *, note: str | None = None,
                   resolution_code: str | None = None) -> str:
        link = self._require_link()
        fields: dict[str, Any] = {"ticket_id": ticket_id, "status": status,
                                  "at": self.now().isoformat()}
        if note:
            fields["note"] = note[:2000]
        if resolution_code:
            fields["resolution_code"] = resolution_code
        msg_id = link.send("status", **fields)
        self.store.add_action(msg_id, ticket_id, "status", fields, self.now())
        self.store.set_local_status(ticket_id, status)
        self._changed("jobs")
        return msg_id

    def step(self, ticket_id: int, action: str) -> str:
        """One-tap steps from the job detail: accept, en_route, arrived."""
        return self.set_status(ticket_id, jobs_vm.STEP_STATUS[action])

    def resolve(self, ticket_id: int, resolution_code: str, notes: str = "") -> str:
        return self.set_status(ticket_id, "resolved", resolution_code=resolution_code,
                               note=self._with_checklist(ticket_id, notes))

    def cannot_fix(self, ticket_id: int, reason: str, notes: str = "") -> str:
        text = tr(f"reason.{reason}", self.language) + (f" — {notes}" if notes else "")
        return self.set_status(ticket_id, "resolved",
                               resolution_code=jobs_vm.CANNOT_FIX_PREFIX + reason,
                               note=self._with_checklist(ticket_id, text))

    def _with_checklist(self, ticket_id: int, notes: str) -> str:
        saved = self.store.checklist(ticket_id)
        if not saved:
            return notes
        job = self.job(ticket_id)
        cl = Checklist(template_for(job.body if job else {}), self.language, saved[1])
        return (notes + "\n" if notes else "") + cl.summary(limit=max(200, 1900 - len(notes)))

    # -- checklist -------------------------------------------------------------------------------
    def checklist(self, ticket_id: int) -> Checklist:
        job = self.job(ticket_id)
        template = template_for(job.body if job else {})
        saved = self.store.checklist(ticket_id)
        answers = dict(saved[1]) if saved and saved[0] == template["id"] else {}
        return Checklist(template, self.language, answers)

    def save_checklist(self, ticket_id: int, checklist: Checklist) -> list[str]:
        """Keep the answers (they go into the service record when the job is resolved) and queue
        the metadata of each new photo and signature as an ``attachment`` uplink."""
        self.store.save_checklist(ticket_id, checklist.template["id"], checklist.answers, self.now())
        sent = {a["detail"].get("sha256") for a in self.store.actions(ticket_id)
                if a["kind"] == "attachment"}
        msg_ids = []
        link = self.link
        for item in checklist.items:
            answer = checklist.answers.get(item["id"])
            if item["kind"] not in ("photo", "signature") or not answer or link is None \
                    or answer["sha256"] in sent:
                continue
            path = Path(answer["file"])
            fields = {"ticket_id": ticket_id, "kind": item["kind"], "sha256": answer["sha256"],
                      "bytes": path.stat().st_size,
                      "mime": "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png",
                      "taken_at": self.now().isoformat()}
            msg_id = link.send("attachment", **fields)
            self.store.add_action(msg_id, ticket_id, "attachment", fields, self.now())
            msg_ids.append(msg_id)
        self._changed("jobs")
        return msg_ids

    def media_path(self, owner: int | str, item_id: str, suffix: str = ".png") -> Path:
        """Where a photo or signature of a job (ticket id) or a visit is kept on the handset."""
        return self.settings.data_dir / "media" / str(owner) / f"{item_id}{suffix}"

    # -- scans -----------------------------------------------------------------------------------
    def scan(self, reading: Any, ticket_id: int | None) -> ScanOutcome:
        """Queue a tag read (rfid.TagReading) as a tag_scan; checking in on an en-route job also
        queues its on_site step, right after the scan."""
        link = self._require_link()
        sun_url = reading.sun.url if reading.sun else None
        if reading.sun_error:
            local = "malformed"
        elif sun_url and self.store.seen_sun_url(sun_url):
            local = "replayed"
        else:
            local = "pending_sun" if sun_url else "pending_plain"
        scan: dict[str, Any] = {"uid": reading.uid, "reader": reading.reader[:64],
                                "tag_type": reading.tag_type.value,
                                "scanned_at": reading.read_at.isoformat()}
        if sun_url:
            scan["sun_url"] = sun_url
        fix = self.platform.gps.current()
        if fix is not None:
            scan["position"] = {"lon": fix.lon, "lat": fix.lat}
            if fix.accuracy_m is not None:
                scan["accuracy_m"] = fix.accuracy_m
        msg_id = link.send("tag_scan", scan=scan)
        self.store.add_scan(msg_id, ticket_id, reading.uid, sun_url, local, self.now())
        self.store.add_action(msg_id, ticket_id, "tag_scan", {"uid": reading.uid}, self.now())
        checked_in = False
        job = self.job(ticket_id) if ticket_id is not None else None
        if job is not None and job.status == "en_route" and local.startswith("pending"):
            self.set_status(ticket_id, "on_site")  # type: ignore[arg-type]
            checked_in = True
        self._changed("scan")
        return ScanOutcome(msg_id, reading.uid, local, not local.startswith("pending"), checked_in)

    def scan_verdict(self, msg_id: str) -> str | None:
        """The shown verdict once the server has judged the scan (asks it over HTTP once the
        tag_scan left the outbox); None while it is still pending. Blocking: call off the UI
        thread."""
        scans = {s["msg_id"]: s for s in self.store.scans()}
        s = scans.get(msg_id)
        if s is None:
            return None
        if s["server_verdict"]:
            return VERDICT_SHOWN.get(s["server_verdict"], s["server_verdict"])
        link, p = self.link, self.pairing
        if link is None or p is None or link.is_pending(msg_id):
            return None
        with self._verdict_lock, contextlib.suppress(server_api.NetworkError, server_api.ApiError):
            out = server_api.scan_verdict(p.server_url, p.device_id, p.password, msg_id)
            if out is not None:
                self.store.set_server_verdict(msg_id, out["verdict"])
                self._changed("scan")
                return VERDICT_SHOWN.get(out["verdict"], out["verdict"])
        return None

    # -- positions -------------------------------------------------------------------------------
    def _mode(self) -> str:
        return mode_for([j.status for j in self.jobs()])

    def _send_positions(self, fixes: list[dict[str, Any]]) -> None:
        if self.link is not None:
            self.link.send("positions", fixes=fixes)

    def tick(self, t: float) -> None:
        """Called about once a second by the app (monotonic time): GPS cadence."""
        if self.link is not None:
            self.positions.tick(t)

    # -- rounds ----------------------------------------------------------------------------------
    def rounds(self) -> list[dict[str, Any]]:
        """The rounds to show: withdrawn ones left out."""
        return self.store.rounds()

    def rounds_view(self) -> rounds_vm.RoundsView:
        return rounds_vm.rounds_view(self.rounds(), self.visited(), self.now(), self.language)

    def round_withdrawn(self, round_id: int) -> bool:
        return str(round_id) in self.store.withdrawn_rounds()

    def visited(self) -> set[tuple[int, int]]:
        """(round_id, site_id) of the visits recorded on this handset."""
        return {(a["detail"]["round_id"], a["detail"]["site_id"]) for a in self.store.actions()
                if a["kind"] == "inspection" and a["result"] is None}

    def _round_site(self, round_id: int, site_id: int) -> tuple[dict, dict, dict | None]:
        # withdrawn rounds too: a visit begun before the round_cancel arrived is still recorded
        rnd = self.store.round(str(round_id))
        if rnd is None:
            raise LookupError(f"round {round_id} is not on this handset")
        site = next(s for s in rnd["sites"] if s["site_id"] == site_id)
        template = next((t for t in rnd.get("templates", []) if t["id"] == site.get("template_id")),
                        None)
        return rnd, site, template

    def visit_scans(self, started_at: datetime) -> list[dict[str, Any]]:
        """Tag reads outside any job since a visit started, oldest first."""
        return [sc for sc in self.store.scans() if sc["ticket_id"] is None
                and sc["scanned_at"] >= started_at.isoformat()]

    @staticmethod
    def shown_verdict(scan: dict[str, Any]) -> str:
        """A stored scan's verdict as shown: the server's once known, else the local one."""
        if scan["server_verdict"]:
            return VERDICT_SHOWN.get(scan["server_verdict"], scan["server_verdict"])
        return scan["local_verdict"]

    def visit_checklist(self, round_id: int, site_id: int) -> Checklist:
        """The checklist of a site visit about to begin; a withdrawn round cannot be started
        (RoundWithdrawn)."""
        if self.round_withdrawn(round_id):
            raise RoundWithdrawn(round_id)
        _rnd, _site, template = self._round_site(round_id, site_id)
        t = from_round_template(template) if template else {"id": "none", "items": []}
        return Checklist(t, self.language)

    def record_visit(self, round_id: int, site_id: int, checklist: Checklist,
                     started_at: datetime) -> str:
        """An ``inspection`` uplink: the checklist values, photo/signature metadata, the tag scan
        made since the visit started (if any) and the current GPS fix."""
        link = self._require_link()
        _rnd, _site, template = self._round_site(round_id, site_id)
        values: dict[str, Any] = {}
        attachments: list[dict[str, Any]] = []
        for item in checklist.items:
            answer = checklist.answers.get(item["id"])
            if answer is None:
                continue
            if item["kind"] in ("photo", "signature"):
                path = Path(answer["file"])
                attachments.append({
                    "item": item["id"], "kind": item["kind"], "sha256": answer["sha256"],
                    "content_type": "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg")
                    else "image/png", "size": path.stat().st_size,
                    "taken_at": self.now().isoformat()})
            else:
                values[item["id"]] = answer
        scans = self.visit_scans(started_at)
        visit: dict[str, Any] = {
            "site_id": site_id, "round_id": round_id, "started_at": started_at.isoformat(),
            "finished_at": self.now().isoformat(),
            "tag_scan_msg_id": scans[-1]["msg_id"] if scans else None,
            "template_version": template["version"] if template else None,
            "values": values, "attachments": attachments}
        fix = self.platform.gps.current()
        if fix is not None:
            visit["position"] = {"lon": fix.lon, "lat": fix.lat}
            visit["accuracy_m"] = fix.accuracy_m
        msg_id = link.send("inspection", visit=visit)
        self.store.add_action(msg_id, None, "inspection", {"round_id": round_id, "site_id": site_id},
                              self.now())
        self._changed("rounds")
        return msg_id
