"""The handset's view-models and presenter without a display (and without Kivy): job list order,
SLA countdown, distance, actions within two taps, checklist validation, position cadence,
offline queueing through the real link library (no broker running), verdicts, settings."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from mobile_app.config import HandsetSettings
from mobile_app.i18n import LANGUAGES, TEXTS, duration, tr
from mobile_app.link import protocol
from mobile_app.platform import Platform
from mobile_app.platform.camera import DesktopCamera, sample_card_png
from mobile_app.platform.gps import NoGps, SimulatedGps, parse_tpv
from mobile_app.platform.launcher import DesktopLauncher
from mobile_app.platform.nfc import NoScanner
from mobile_app.server_api import NetworkError
from mobile_app.viewmodels import jobs as jobs_vm
from mobile_app.viewmodels import rounds as rounds_vm
from mobile_app.viewmodels.checklist import SERVICE_RECORD, Checklist, file_answer, from_round_template
from mobile_app.viewmodels.handset import Handset, PairingFailed, RoundWithdrawn, parse_pairing_input
from mobile_app.viewmodels.positions import CADENCE, PositionReporter, mode_for
from mobile_app.viewmodels.store import HandsetStore, Job, Pairing

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
HELSINKI = (24.9384, 60.1699)


def order(ticket_id: int, **kw) -> dict:
    body = {"v": 1, "seq": ticket_id, "ticket_id": ticket_id, "revision": 1, "status": "assigned",
            "category": "repair", "priority": "normal", "summary": f"job {ticket_id}",
            "description": "水管漏水 leaking pipe", "address": "Mannerheimintie 1",
            "location": {"lon": HELSINKI[0], "lat": HELSINKI[1]}, "customer_name": "李明",
            "customer_phone": "+8613800138000", "due_at": None,
            "assigned_at": NOW.isoformat()}
    body.update(kw)
    return body


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def handset(tmp_path, clock):
    """A paired handset whose broker is unreachable: everything it does queues in the outbox."""
    settings = HandsetSettings(data_dir=tmp_path, platform="linux")
    platform = Platform("desktop", SimulatedGps(*HELSINKI, clock=clock), NoScanner(),
                        DesktopCamera(), DesktopLauncher())
    h = Handset(settings, platform, now=clock)
    h.store.set_pairing(Pairing("http://127.0.0.1:9", "hs-test", "pw", "127.0.0.1", 9, False, 7,
                                "technician"))
    h.start()
    yield h
    h.stop()


def test_every_text_exists_in_both_languages() -> None:
    assert LANGUAGES == ("en", "zh-CN")
    for key, (en, zh) in TEXTS.items():
        assert en and zh, key
        assert en.count("{") == zh.count("{"), key  # the same placeholders
    assert tr("jobs.title", "zh-CN") == "我的工单" and tr("jobs.title", "en") == "My jobs"
    with pytest.raises(KeyError):
        tr("no.such.key")
    assert duration(125 * 60, "en") == "2 h 05 min" and duration(59, "zh-CN") == "0 分钟"
    assert duration(3 * 86400 + 4 * 3600, "en") == "3 d 4 h"


def test_job_list_order_sla_and_distance() -> None:
    jobs = [Job(1, 1, order(1, priority="low")),
            Job(2, 1, order(2, priority="emergency",
                            due_at=(NOW + timedelta(hours=2)).isoformat())),
            Job(3, 1, order(3, priority="high", due_at=(NOW - timedelta(minutes=12)).isoformat())),
            Job(4, 1, order(4, priority="high", due_at=(NOW + timedelta(minutes=20)).isoformat(),
                            location=None)),
            Job(5, 1, order(5), cancelled_reason="reassigned"),
            Job(6, 1, order(6, status="on_site"), local_status="resolved")]
    rows = jobs_vm.job_rows(jobs, NOW, "en", (24.9484, 60.1699))
    assert [r.ticket_id for r in rows] == [2, 3, 4, 1]  # priority, then the deadline
    by_id = {r.ticket_id: r for r in rows}
    assert by_id[2].sla_state == "ok" and by_id[2].sla_text == "2 h 00 min left"
    assert by_id[3].sla_state == "overdue" and by_id[3].sla_text == "overdue 12 min"
    assert by_id[4].sla_state == "warning"
    assert by_id[1].sla_state == "none" and by_id[1].sla_text == "no deadline"
    assert by_id[1].distance_text == "550 m"  # 0.01° of longitude at 60.17° N: 554 m
    assert by_id[4].distance_text == "distance unknown"
    zh = jobs_vm.job_rows(jobs, NOW, "zh-CN", None)
    assert zh[0].priority_text == "紧急" and zh[1].sla_text == "已超时 12 分钟"
    assert "报修" in zh[0].title
    data = rows[0].as_data()
    assert data["priority_colour"] == jobs_vm.PRIORITY_COLOUR["emergency"]
    far = jobs_vm.job_rows([Job(1, 1, order(1))], NOW, "en", (24.9384, 60.2699))
    assert far[0].distance_text == "11.1 km"


def test_actions_are_at_most_two_taps_from_the_detail() -> None:
    def keys(status: str, local: str | None = None) -> list[str]:
        return [a.key for a in jobs_vm.actions(Job(1, 1, order(1, status=status), local), "en")]

    assert keys("assigned") == ["accept"]
    assert keys("accepted") == ["en_route"]
    assert keys("en_route") == ["arrived", "scan"]
    assert keys("on_site") == ["scan", "checklist", "resolve", "cannot_fix"]
    assert keys("assigned", "en_route") == ["arrived", "scan"]  # the technician's own step shows
    for status in ("assigned", "accepted", "en_route", "on_site"):
        for a in jobs_vm.actions(Job(1, 1, order(1, status=status)), "en"):
            # one tap acts, or one tap opens a sheet/screen whose button acts (the second tap)
            assert a.opens in (None, "scan", "checklist", "resolve", "cannot_fix")
    d = jobs_vm.detail(Job(1, 1, order(1)), NOW, "zh-CN")
    assert d.call_uri == "tel:+8613800138000" and d.customer == "李明"
    assert d.directions_uri.startswith("geo:60.1699,24.9384?q=60.1699,24.9384")
    assert "openstreetmap.org/directions" in d.directions_url
    bare = jobs_vm.detail(Job(1, 1, order(1, location=None, address=None, customer_phone=None,
                                          customer_name=None)), NOW, "en")
    assert bare.call_uri is None and bare.directions_uri is None and bare.customer == "—"


def test_server_status_and_local_steps_combine() -> None:
    assert Job(1, 5, order(1, status="accepted"), "en_route", 4).status == "en_route"
    assert Job(1, 5, order(1, status="on_site"), "en_route", 4).status == "on_site"
    assert Job(1, 5, order(1), None).status == "assigned"
    assert Job(1, 5, order(1), "accepted", cancelled_reason="resolved").status == "resolved"
    assert Job(1, 5, order(1), "accepted", cancelled_reason="reassigned").status == "withdrawn"
    assert Job(1, 5, order(1), None, cancelled_reason="cancelled").status == "cancelled"


def test_checklist_validation_and_summary(tmp_path) -> None:
    cl = Checklist(SERVICE_RECORD, "en")
    assert cl.set("pressure_bar", "abc") == "Enter a number"
    assert cl.set("pressure_bar", "17") == "Must be between 0 and 16"
    assert cl.set("pressure_bar", "-0.5") == "Must be between 0 and 16"
    assert cl.set("pressure_bar", "nan") == "Enter a number"
    assert cl.set("pressure_bar", "3,5") is None and cl.answers["pressure_bar"] == 3.5
    assert cl.set("meter_reading", "120") is None and cl.answers["meter_reading"] == 120
    assert cl.set("pipe_material", "gold") == "Choose one of the options"
    assert cl.set("pipe_material", "copper") is None
    assert cl.set("leak_stopped", "yes") == "Choose one of the options"
    assert cl.set("leak_stopped", True) is None
    assert cl.set("remarks", "x" * 501) == "At most 500 characters"
    assert cl.set("remarks", "  valve replaced  ") is None and cl.answers["remarks"] == "valve replaced"
    assert cl.set("photo", {"file": "x"}) == "Required"
    assert cl.missing() == ["photo", "signature"] and not cl.complete
    photo = tmp_path / "p.png"
    photo.write_bytes(sample_card_png())
    assert cl.set("photo", file_answer(photo)) is None
    assert cl.set("signature", file_answer(photo)) is None
    assert cl.complete
    assert cl.set("meter_reading", "") is None and "meter_reading" not in cl.answers
    summary = cl.summary()
    assert summary.startswith("Checklist [service_record.v1] Pressure after repair (bar): 3.5;")
    assert "Leak stopped: Yes" in summary and "Pipe material: Copper" in summary
    cl.lang = "zh-CN"
    assert "漏水已止住: 是" in cl.summary() and "管道材质: 铜" in cl.summary()
    assert len(cl.summary(limit=40)) == 40

    round_template = {"id": 3, "site_type_id": 2, "version": 4, "items": [
        {"key": "chlorine", "label": "Chlorine", "label_zh": "余氯", "kind": "number",
         "min": 0.2, "max": 4, "unit": "mg/L", "required": True},
        {"key": "state", "label": "State", "kind": "choice", "options": ["ok", "worn"]}]}
    t = from_round_template(round_template)
    assert t["id"] == "site_type.2.v4" and t["items"][0]["label"]["zh-CN"] == "余氯"
    cl2 = Checklist(t, "zh-CN")
    assert cl2.set("chlorine", "5") == "须在 0.2 到 4 之间"
    assert cl2.set("state", "worn") is None and cl2.missing() == ["chlorine"]


def test_position_cadence_is_fast_en_route_and_slow_on_site(clock) -> None:
    gps = SimulatedGps(*HELSINKI, clock=clock)
    sent: list[list[dict]] = []
    mode = ["idle"]
    r = PositionReporter(gps, sent.append, lambda: mode[0])

    def run(seconds: int, start: int) -> None:
        for t in range(start, start + seconds):
            clock.t = NOW + timedelta(seconds=t)
            r.tick(float(t))

    mode[0] = "en_route"
    gps.drive_to(24.95, 60.17, speed_mps=10)
    run(300, 0)
    # a fix every 5 s, sent every 30 s: 9 batches of 6 (+1 at the start), 5 fixes still waiting
    assert sum(len(b) for b in sent) + len(r.batch) == 300 // CADENCE["en_route"].sample_s
    assert len(sent) == 300 // CADENCE["en_route"].send_s - 1 and len(r.batch) == 5
    assert sent[0][1]["lon"] > sent[0][0]["lon"] and sent[0][0]["speed_mps"] == 10
    sent.clear()
    mode[0] = "on_site"
    run(1200, 300)
    # the mode change flushed what was left (+ a fix at once), then one fix per 2 minutes, sent
    # every 10 minutes
    assert [len(b) for b in sent] == [6, 5] and len(r.batch) == 4
    assert mode_for(["assigned", "on_site"]) == "on_site"
    assert mode_for(["on_site", "en_route"]) == "en_route" and mode_for([]) == "idle"
    quiet = PositionReporter(NoGps(), sent.append, lambda: "en_route")
    sent.clear()
    for t in range(100):
        quiet.tick(float(t))
    assert sent == []


def test_gpsd_reports() -> None:
    fix = parse_tpv(b'{"class":"TPV","mode":3,"time":"2026-01-05T08:00:00.000Z","lat":60.17,'
                    b'"lon":24.94,"epx":4.1,"epy":6.2,"speed":1.5,"track":90.0}')
    assert fix.lat == 60.17 and fix.accuracy_m == 6.2 and fix.at == NOW and fix.heading_deg == 90
    assert parse_tpv(b'{"class":"TPV","mode":1}') is None
    assert parse_tpv(b'{"class":"SKY"}') is None and parse_tpv(b"garbage") is None


def test_offline_actions_queue_in_order_and_survive_a_restart(handset, tmp_path, clock) -> None:
    handset._on_downlink("work_order", order(11, priority="high"))
    handset._on_downlink("work_order", order(12))
    assert [r.ticket_id for r in handset.job_rows()] == [11, 12]
    assert handset.banner() == ("offline", "离线 — 0 条待发送")  # zh-CN until chosen otherwise
    ids = [handset.step(11, "accept"), handset.step(11, "en_route"), handset.step(11, "arrived")]
    assert [r.status_text for r in handset.job_rows()] == ["到场 （尚未发送）", "已派"]
    handset.resolve(11, "repaired", "valve replaced")
    assert handset.job(11).status == "resolved"
    assert [r.ticket_id for r in handset.job_rows()] == [12]
    assert handset.queued == 4
    handset.set_language("en")
    assert handset.banner() == ("offline", "Offline — 4 waiting to send")
    pending = [json.loads(p) for _, _, p in handset.link.outbox.pending()]
    assert [m["msg_id"] for m in pending][:3] == ids
    assert [m["status"] for m in pending] == ["accepted", "en_route", "on_site", "resolved"]
    assert pending[3]["resolution_code"] == "repaired" and pending[3]["note"] == "valve replaced"
    # an older revision of a job never overwrites a newer one
    assert not handset.store.upsert_job(order(12, revision=1, summary="old"), NOW)
    assert handset.store.upsert_job(order(12, revision=2, summary="new"), NOW)
    handset._on_downlink("cancel", {"v": 1, "seq": 13, "ticket_id": 12, "reason": "reassigned"})
    assert handset.job_rows() == [] and handset.notices[-1] == \
        "Job #12 was withdrawn: given to another crew"
    # the technician's own resolution coming back as a cancel is no news
    handset._on_downlink("cancel", {"v": 1, "seq": 14, "ticket_id": 11, "reason": "resolved"})
    assert len(handset.notices) == 1

    # the app restarts: the same data directory, everything still queued, in the same order
    handset.stop()
    again = Handset(handset.settings, handset.platform, now=clock)
    again.start()
    try:
        assert again.queued == 4 and again.language == "en"
        assert [json.loads(p)["status"] for _, _, p in again.link.outbox.pending()] == \
            ["accepted", "en_route", "on_site", "resolved"]
        assert again.job(11).status == "resolved"  # as the server's cancel (reason resolved) says
    finally:
        again.stop()
    handset.store = HandsetStore(tmp_path / "handset.sqlite")  # for the fixture's stop()
    handset.link = None


def test_cannot_fix_and_the_checklist_in_the_service_record(handset, tmp_path) -> None:
    handset._on_downlink("work_order", order(21, status="on_site"))
    cl = handset.checklist(21)
    for item, value in (("pressure_bar", "2"), ("pipe_material", "pe"), ("leak_stopped", False)):
        assert cl.set(item, value) is None
    photo = handset.media_path(21, "photo")
    done = []
    handset.platform.camera.take(photo, done.append)
    assert done == [photo] and photo.read_bytes().startswith(b"\x89PNG")
    cl.set("photo", file_answer(photo))
    cl.set("signature", file_answer(photo))
    attachments = handset.save_checklist(21, cl)
    assert len(attachments) == 2
    assert handset.save_checklist(21, cl) == []  # already queued: not twice
    assert handset.checklist(21).answers["pressure_bar"] == 2
    handset.set_language("en")
    handset.cannot_fix(21, "parts_needed", "needs a DN50 valve")
    last = json.loads(handset.link.outbox.pending()[-1][2])
    assert last["status"] == "resolved" and last["resolution_code"] == "cannot_fix.parts_needed"
    assert last["note"].startswith("Parts needed — needs a DN50 valve\nChecklist [service_record.v1]")
    kinds = [k for _, k, _ in handset.link.outbox.pending()]
    assert kinds == ["attachment", "attachment", "status"]


def test_old_history_is_pruned_at_start(handset, clock) -> None:
    handset._on_downlink("work_order", order(61))
    handset.step(61, "accept")
    clock.t = NOW + timedelta(days=31)
    handset.stop()
    again = Handset(handset.settings, handset.platform, now=clock)
    again.start()
    try:
        assert again.store.actions() == [] and again.queued == 1  # still to be sent, though
    finally:
        again.stop()
    handset.store = HandsetStore(handset.settings.data_dir / "handset.sqlite")
    handset.link = None


def test_rejected_steps_fall_back_to_the_servers_status(handset) -> None:
    handset._on_downlink("work_order", order(31))
    msg_id = handset.step(31, "accept")
    assert handset.job(31).status == "accepted"
    handset._on_rejected(msg_id, {"code": "not_your_job", "message": "not yours"})
    assert handset.job(31).status == "assigned"
    assert handset.store.actions(31)[0]["result"] == "rejected"
    assert handset.notices[-1].endswith("not yours")


def test_scans_are_queued_with_a_provisional_verdict(handset) -> None:
    from rfid import TagReading, TagType

    handset._on_downlink("work_order", order(41, status="en_route"))
    url = "https://tags.example/v?picc_data=" + "A" * 32 + "&cmac=" + "B" * 16
    import ndef

    message = b"".join(ndef.message_encoder([ndef.UriRecord(url)]))
    reading = TagReading.build(uid="04A1B2C3D4E5F6", tag_type=TagType.TYPE4, reader="Virtual PCD",
                               read_at=NOW, atr=b"", ndef_message=message)
    first = handset.scan(reading, 41)
    assert first.verdict == "pending_sun" and first.checked_in and not first.final
    assert handset.job(41).status == "on_site"  # scanning on arrival is the check-in
    second = handset.scan(reading, 41)
    assert second.verdict == "replayed" and second.final and not second.checked_in
    plain = TagReading.build(uid="04AABBCC", tag_type=TagType.TYPE2, reader="x", read_at=NOW,
                             atr=b"", ndef_message=b"")
    assert handset.scan(plain, None).verdict == "pending_plain"
    pending = [(k, json.loads(p)) for _, k, p in handset.link.outbox.pending()]
    assert [k for k, _ in pending] == ["tag_scan", "status", "tag_scan", "tag_scan"]
    assert pending[0][1]["scan"]["sun_url"] == url and pending[0][1]["scan"]["position"]
    # still in the outbox: no verdict yet, and no question asked
    assert handset.scan_verdict(first.msg_id) is None


def test_pairing_input_and_errors(handset) -> None:
    assert parse_pairing_input("crewline://pair?server=https%3A%2F%2Fx.example%3A8443&code=K7QD3M9X") \
        == ("https://x.example:8443", "K7QD3M9X")
    assert parse_pairing_input(" K7QD-3M9X ") == (None, "K7QD-3M9X")
    handset.set_language("en")
    with pytest.raises(PairingFailed, match="server address"):
        handset.pair("ftp://x", "K7QD3M9X", "phone")
    with pytest.raises(PairingFailed, match="8 letters"):
        handset.pair("http://127.0.0.1:9", "K7QD", "phone")
    with pytest.raises(PairingFailed, match="Cannot reach the server"):
        handset.pair("http://127.0.0.1:9", "K7QD-3M9X", "phone")
    with pytest.raises(NetworkError):
        from mobile_app import server_api

        server_api.pair("http://127.0.0.1:9", "K7QD3M9X", "x", timeout=1)


def test_settings_from_the_environment(tmp_path) -> None:
    s = HandsetSettings.from_env({"CREWLINE_HANDSET_DATA": str(tmp_path), "CREWLINE_HANDSET_GPS": "gpsd",
                                  "CREWLINE_HANDSET_WINDOW": "480x800",
                                  "CREWLINE_HANDSET_SIM_POSITION": "1.5,2.5"})
    assert s.data_dir == tmp_path and s.gps == "gpsd" and s.window == (480, 800)
    assert s.sim_position == (1.5, 2.5) and s.platform == sys.platform
    android = HandsetSettings.from_env({"ANDROID_ARGUMENT": "/data", "ANDROID_PRIVATE": "/data/p"})
    assert android.platform == "android" and android.data_dir == Path("/data/p/crewline")
    with pytest.raises(ValueError):
        HandsetSettings.from_env({"CREWLINE_HANDSET_GPS": "magic"})
    with pytest.raises(ValueError):
        HandsetSettings.from_env({"CREWLINE_HANDSET_LANGUAGE": "fr"})
    from mobile_app.platform import choose

    p = choose(HandsetSettings(data_dir=tmp_path, platform="linux", reader="none", gps="none"))
    assert (p.name, p.gps.name, p.scanner.name) == ("desktop", "none", "none")
    p = choose(HandsetSettings(data_dir=tmp_path, platform="linux", reader="wedge"))
    assert (p.gps.name, p.scanner.name) == ("simulated", "keyboard-wedge")
    p = choose(HandsetSettings(data_dir=tmp_path, platform="android", reader="", gps="auto"))
    assert (p.name, p.gps.name, p.scanner.name, p.camera.name) == \
        ("android", "android", "android-nfc", "android")


def test_the_view_models_import_no_kivy() -> None:
    code = ("import sys, mobile_app.viewmodels.handset, mobile_app.platform, mobile_app.i18n; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('kivy', 'server', 'sqlalchemy')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_each_pairing_has_its_own_outbox(handset) -> None:
    assert handset.link.outbox_path.name == "outbox-hs-test.sqlite"


def test_another_technician_pairing_starts_clean(handset) -> None:
    handset._on_downlink("work_order", order(51))
    handset.store.set_pref("user_id", "7")
    handset.store.set_pref("user_id", "8")  # as if the last pairing was someone else's
    handset.link.stop()
    # the answer of POST /api/v1/devices/pair (tests/server/test_devices_pairing.py checks it)
    handset.adopt("http://127.0.0.1:9", {
        "device": {"id": "hs-new"}, "mqtt": {"username": "hs-new", "password": "pw"},
        "broker": {"host": "127.0.0.1", "port": 9, "tls": False},
        "user": {"id": 7, "username": "technician", "full_name": "", "language": "en"}})
    assert handset.jobs() == [] and handset.pairing.device_id == "hs-new"
    assert handset.link.outbox_path.name == "outbox-hs-new.sqlite"


def test_a_keyboard_wedge_reader_types_the_uid() -> None:
    from mobile_app.platform.nfc import WedgeScanner

    readings, errors = [], []
    scanner = WedgeScanner()
    scanner.feed("04A1B2C3\n")  # not watching: ignored
    scanner.start(readings.append, errors.append)
    scanner.feed("04:A1:B2:C3")
    scanner.feed("\n")
    scanner.feed("nonsense\n")
    scanner.stop()
    scanner.feed("04A1B2C3\n")
    assert [r.uid for r in readings] == ["04A1B2C3"] and readings[0].reader == "keyboard-wedge"
    assert [e.code for e in errors] == ["wedge_input"]


def test_gpsd_source_reads_a_gpsd_stream() -> None:
    """GpsdGps against a local stand-in for gpsd speaking its JSON protocol."""
    import socket
    import threading
    import time

    from mobile_app.platform.gps import GpsdGps

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    got_watch = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            if b"?WATCH" in conn.recv(1024):
                got_watch.set()
            conn.sendall(b'{"class":"VERSION","release":"3.22"}\n'
                         b'{"class":"TPV","mode":1}\n'
                         b'{"class":"TPV","mode":2,"time":"2026-01-05T08:00:00.000Z",'
                         b'"lat":60.17,"lon":24.94,"epx":3.0,"epy":4.0}\n')
            time.sleep(1)

    threading.Thread(target=serve, daemon=True).start()
    gps = GpsdGps(f"127.0.0.1:{port}")
    gps.start()
    try:
        deadline = time.monotonic() + 5
        while gps.current() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        fix = gps.current()
        assert got_watch.is_set() and fix is not None
        assert (fix.lon, fix.lat, fix.accuracy_m, fix.at) == (24.94, 60.17, 4.0, NOW)
    finally:
        gps.stop()
        server.close()


# --- rounds: upcoming ones and withdrawn ones ------------------------------------------------------

def round_body(round_id: int, seq: int, day: int, *, name: str = "泵站日巡 Pump round",
               window=(7, 17), sites=(1, 2), timezone: str | None = None) -> dict:
    """A ``round`` downlink; its window in UTC hours of 2026-01-``day``; without ``timezone``
    it is what a server from before that field sends."""
    body = {"v": 1, "seq": seq, "round_id": round_id, "plan_id": 3, "plan_name": name,
            "period_start": f"2026-01-{day:02d}",
            "window_start": f"2026-01-{day:02d}T{window[0]:02d}:00:00+00:00",
            "window_end": f"2026-01-{day:02d}T{window[1]:02d}:00:00+00:00",
            **({"timezone": timezone} if timezone is not None else {}),
            "sites": [{"site_id": s, "position": i, "name": f"Station {s} 站点", "kind": "site",
                       "address": None, "location": {"lon": HELSINKI[0], "lat": HELSINKI[1]},
                       "template_id": None} for i, s in enumerate(sites, start=1)],
            "templates": []}
    protocol.validate("down", "round", body)
    return body


def downlink(handset: Handset, kind: str, body: dict) -> None:
    """As the broker hands it to the link: topic, JSON bytes, seq check, then the handset."""
    msg = SimpleNamespace(topic=protocol.down_topic("hs-test", kind),
                          payload=json.dumps(body).encode())
    handset.link._on_message(None, None, msg)


@pytest.fixture
def device_zone(monkeypatch):
    """Set the handset's own time zone (TZ, which ``datetime.astimezone()`` follows)."""
    def set_zone(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


def test_upcoming_rounds_come_after_todays_under_their_own_heading(clock, device_zone) -> None:
    device_zone("UTC")  # messages without a zone: shown in the device's, no zone written
    clock.t = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    rounds = [round_body(12, 3, 7), round_body(11, 2, 6), round_body(9, 1, 4, name="Yesterday"),
              round_body(10, 4, 5, window=(7, 17), sites=(1, 2, 3)),
              round_body(8, 5, 5, name="Morning", window=(6, 10))]
    view = rounds_vm.rounds_view(rounds, {(10, 2)}, clock.t, "en")
    # open ones soonest-closing first, then ended ones; tomorrow's and later after them
    assert [r.round_id for r in view.current] == [8, 10, 9]
    assert [r.round_id for r in view.upcoming] == [11, 12]
    assert not any(r.upcoming for r in view.current) and all(r.upcoming for r in view.upcoming)
    assert view.upcoming_title == "Upcoming" and view.empty == ""
    today = view.current[1]
    assert today.caption == "01-05 07:00 – 01-05 17:00 · 1/3 sites"
    assert [s.text for s in today.sites] == ["1. Station 1 站点", "✓ 2. Station 2 站点",
                                             "3. Station 3 站点"]
    assert [s.ident for s in today.sites] == [f"round.10.site.{i}" for i in (1, 2, 3)]
    assert view.upcoming[0].caption.startswith("Opens 01-06 07:00 · ")
    zh = rounds_vm.rounds_view(rounds, set(), clock.t, "zh-CN")
    assert zh.upcoming_title == "即将开始"
    assert zh.upcoming[0].caption == "01-06 07:00 开始 · 01-06 07:00 – 01-06 17:00 · 0/2 个站点"
    # the moment its window opens, a round is today's
    clock.t = datetime(2026, 1, 6, 7, 0, tzinfo=UTC)
    assert [r.round_id for r in rounds_vm.rounds_view(rounds, set(), clock.t, "en").upcoming] \
        == [12]
    nothing = rounds_vm.rounds_view([], set(), clock.t, "zh-CN")
    assert nothing.current == nothing.upcoming == [] and nothing.empty == tr("rounds.empty", "zh-CN")


def test_round_times_are_shown_in_the_plans_zone_else_the_devices(clock, device_zone) -> None:
    clock.t = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    # 08:00–12:00 in Shanghai is 00:00–04:00 UTC
    shanghai = round_body(11, 1, 6, window=(0, 4), timezone="Asia/Shanghai")
    device_zone("Asia/Shanghai")  # the usual case: plan and handset in Shanghai, no zone written
    en = rounds_vm.rounds_view([shanghai], set(), clock.t, "en").upcoming[0].caption
    zh = rounds_vm.rounds_view([shanghai], set(), clock.t, "zh-CN").upcoming[0].caption
    assert en == "Opens 01-06 08:00 · 01-06 08:00 – 01-06 12:00 · 0/2 sites"
    assert zh == "01-06 08:00 开始 · 01-06 08:00 – 01-06 12:00 · 0/2 个站点"
    # a message from an older server (no zone): the device's zone, the same here
    old = {k: v for k, v in shanghai.items() if k != "timezone"}
    assert rounds_vm.rounds_view([old], set(), clock.t, "zh-CN").upcoming[0].caption == zh
    # a zone this device does not know: its own zone
    mars = {**shanghai, "timezone": "Mars/Olympus_Mons"}
    protocol.validate("down", "round", mars)
    assert rounds_vm.rounds_view([mars], set(), clock.t, "zh-CN").upcoming[0].caption == zh
    # a handset set to another zone still shows the plan's local times, and says which zone
    device_zone("UTC")
    assert rounds_vm.rounds_view([shanghai], set(), clock.t, "en").upcoming[0].caption == \
        "Opens 01-06 08:00 CST · 01-06 08:00 – 01-06 12:00 CST · 0/2 sites"
    assert rounds_vm.rounds_view([old], set(), clock.t, "en").upcoming[0].caption == \
        "Opens 01-06 00:00 · 01-06 00:00 – 01-06 04:00 · 0/2 sites"
    # a night window crosses local midnight (14:00–22:00 UTC is 22:00–06:00 in Shanghai)
    device_zone("Asia/Shanghai")
    night = round_body(12, 2, 5, window=(14, 22), timezone="Asia/Shanghai")
    assert rounds_vm.rounds_view([night], set(), clock.t, "en").upcoming[0].caption == \
        "Opens 01-05 22:00 · 01-05 22:00 – 01-06 06:00 · 0/2 sites"
    # a DST change inside the window names both zones (Helsinki, 2026-03-29 01:00–05:00 local)
    device_zone("UTC")
    dst = {**shanghai, "timezone": "Europe/Helsinki", "window_start": "2026-03-28T23:00:00Z",
           "window_end": "2026-03-29T02:00:00Z"}
    assert rounds_vm.rounds_view([dst], set(), clock.t, "en").upcoming[0].caption == \
        "Opens 03-29 01:00 EET · 03-29 01:00 EET – 03-29 05:00 EEST · 0/2 sites"


def test_the_round_zone_is_optional_and_an_iana_name() -> None:
    props = protocol.schema("down", "round")["properties"]
    assert "timezone" in props and "timezone" not in protocol.schema("down", "round")["required"]
    protocol.validate("down", "round", round_body(1, 1, 5))  # as older servers send it
    for zone in ("Asia/Shanghai", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT-8",
                 "America/Port-au-Prince"):
        protocol.validate("down", "round", round_body(1, 1, 5, timezone=zone))
    for bad in ("", "../../etc/passwd", "/etc/localtime", "Asia/Shanghai ", "上海", "x" * 65, 8):
        with pytest.raises(protocol.ProtocolError):
            protocol.validate("down", "round", round_body(1, 1, 5) | {"timezone": bad})


def test_the_new_round_texts_exist_in_both_languages() -> None:
    for key in ("rounds.upcoming", "rounds.opens", "notice.round_withdrawn",
                "round_cancel.plan_deactivated"):
        en, zh = TEXTS[key]
        assert en and zh and en != zh, key
    assert tr("rounds.opens", "zh-CN", time="01-06 07:00") == "01-06 07:00 开始"
    # every reason the server may send has a text
    reasons = protocol.schema("down", "round_cancel")["properties"]["reason"]["enum"]
    for lang in LANGUAGES:
        for reason in reasons:
            assert jobs_vm.label("round_cancel", reason, lang) != reason


def test_a_withdrawn_round_leaves_the_list_and_stays_gone_after_a_restart(handset, tmp_path,
                                                                          clock) -> None:
    downlink(handset, "round", round_body(10, 1, 5))
    downlink(handset, "round", round_body(11, 2, 6))
    view = handset.rounds_view()
    assert [r.round_id for r in view.current] == [10] and [r.round_id for r in view.upcoming] == [11]
    cancel = {"v": 1, "seq": 3, "round_id": 11, "reason": "plan_deactivated"}
    downlink(handset, "round_cancel", cancel)
    assert handset.link.last_seq == 3  # taken, so acknowledged
    view = handset.rounds_view()
    assert [r.round_id for r in view.current] == [10] and view.upcoming == []
    assert handset.notices == ["巡检已撤销：泵站日巡 Pump round（2026-01-06）— 巡检计划已停用"]
    assert handset.round_withdrawn(11) and not handset.round_withdrawn(10)
    with pytest.raises(RoundWithdrawn):
        handset.visit_checklist(11, 1)
    assert handset.visit_checklist(10, 1).items == []  # today's still starts
    # a redelivery is dropped by seq; the same cancel under a new seq (a resync) says nothing new
    downlink(handset, "round_cancel", cancel)
    downlink(handset, "round_cancel", {**cancel, "seq": 4})
    assert len(handset.notices) == 1 and handset.link.last_seq == 4
    # a cancel for a round this handset never stored: remembered, no notice
    downlink(handset, "round_cancel", {**cancel, "seq": 5, "round_id": 99})
    assert len(handset.notices) == 1

    handset.stop()  # the app restarts on the same data directory
    again = Handset(handset.settings, handset.platform, now=clock)
    again.start()
    try:
        assert [r.round_id for r in again.rounds_view().current] == [10]
        assert again.rounds_view().upcoming == [] and again.round_withdrawn(11)
        # the round sent again (an old message replayed) does not bring it back
        again.store.upsert_round("11", round_body(11, 2, 6), clock())
        assert again.rounds_view().upcoming == []
        again.set_language("en")
        downlink(again, "round", round_body(12, 6, 7))
        downlink(again, "round_cancel", {**cancel, "seq": 7, "round_id": 12})
        assert again.notices == ["Round withdrawn: 泵站日巡 Pump round (2026-01-07) — "
                                 "the plan was deactivated"]
        # another technician pairing starts clean: withdrawals are forgotten with the rounds
        again.store.clear_work()
        assert again.store.withdrawn_rounds() == {} and again.rounds() == []
    finally:
        again.stop()
    handset.store = HandsetStore(tmp_path / "handset.sqlite")  # for the fixture's stop()
    handset.link = None
