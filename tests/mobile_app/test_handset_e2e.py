"""The handset app end to end, as a technician uses it: the Kivy app under Xvfb, a real server,
bridge and Mosquitto, a virtual NFC tag in the real pcscd stack. Pairs with a one-time code, gets
a job the dispatcher assigns, walks it accept → en route → scan to check in → checklist (photo,
signature) → resolved, and checks the server's records. Then offline: the broker goes away, the
technician works on, the app restarts, the broker returns — every action arrives once, in order.

Screenshots of each screen in both languages go to var/screenshots/handset/.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

from tests.mobile_app.e2e_support import HandsetProcess, Stack, make_people, wait_for
from tests.rfid.conftest import pcscd, virtual_reader  # noqa: F401  (fixtures)
from tests.rfid.emulator import Ntag424Tag

pytestmark = [pytest.mark.pcsc, pytest.mark.slow]
HELSINKI = (24.9384, 60.1699)


@pytest.fixture(scope="module")
def stack(pg_url):
    s = Stack(pg_url)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def people(pg_url):
    return make_people(pg_url)


@pytest.fixture
def db(pg_url):
    engine = create_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def apps(tmp_path):
    started: list[HandsetProcess] = []

    def make(name: str = "phone", **kw) -> HandsetProcess:
        app = HandsetProcess(tmp_path / name, **kw)
        (tmp_path / name).mkdir(exist_ok=True)
        app.start()
        started.append(app)
        return app

    yield make
    for app in started:
        app.stop()


def job_for(stack: Stack, people: dict, *, priority: str = "high") -> tuple[int, int]:
    """A customer's repair ticket near central Helsinki and the technician's crew; returns
    (ticket_id, crew_id) — not assigned yet."""
    n = uuid.uuid4().int
    lon, lat = HELSINKI[0] + (n % 1000) * 1e-5, HELSINKI[1] + (n // 1000 % 1000) * 1e-5
    mobile = f"139{n % 10**8:08d}"
    customer = stack.call(people["agent"], "POST", "/api/v1/customers", json={
        "account_no": f"H-{n % 10**10:010d}", "name": "王芳", "phones": [mobile],
        "preferred_language": "zh-CN", "sms_consent": False,
        "service_points": [{"address": "Aleksanterinkatu 52, Helsinki",
                            "location": {"lon": lon, "lat": lat}}]})
    ticket = stack.call(people["agent"], "POST", "/api/v1/tickets", json={
        "category": "repair", "priority": priority, "customer_id": customer["id"],
        "service_point_id": customer["service_points"][0]["id"],
        "description": "地下室水管漏水 / leaking pipe in the basement"})["ticket"]
    crews = stack.call(people["manager"], "GET", "/api/v1/crews")
    mine = [c for c in crews
            if any(m["user_id"] == int(people["technician_id"]) for m in c["members"])]
    if mine:
        crew = mine[0]
    else:
        crew = stack.call(people["manager"], "POST", "/api/v1/crews", json={
            "name": f"Crew {people['technician']}", "skills": ["water_main"], "shift": "on_shift",
            "capacity": 5, "members": [int(people["technician_id"])], "vehicle": "van"})
    return ticket["id"], crew["id"]


def pair(stack: Stack, people: dict, app: HandsetProcess) -> dict:
    code = stack.call(people["dispatcher"], "POST", "/api/v1/devices/pairing-codes",
                      json={"user_id": int(people["technician_id"])})
    app("text", ident="pair.server", value=stack.url)
    app("text", ident="pair.code", value=code["code"].lower())
    app("text", ident="pair.name", value="Van 7 phone")
    app("tap", ident="pair.go")
    return app.wait(lambda s: s["screen"] == "jobs" and s["online"], 30, "paired and online")


def events(db, ticket_id: int) -> list[tuple[str, str]]:
    with db.begin() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT e.kind, u.username FROM ticket_events e JOIN users u ON u.id = e.actor_id "
            "WHERE e.ticket_id = :t ORDER BY e.id"), {"t": ticket_id})]


def both_languages(app: HandsetProcess, name: str) -> None:
    """Screenshot the current screen in zh-CN and in English (language set from the presenter, so
    the screen itself stays as it is), then back to Chinese."""
    app("lang", lang="zh-CN")
    app.shot(f"{name}.zh-CN")
    app("lang", lang="en")
    app.shot(f"{name}.en")
    app("lang", lang="zh-CN")


def test_a_job_from_pairing_to_resolved(stack, people, apps, db, virtual_reader, settings_keys):  # noqa: F811
    app = apps(reader="Virtual PCD 00 00", server=stack.url)
    st = app.state()
    assert st["screen"] == "pairing" and st["font"] and "NotoSansCJK" in st["font"]
    both_languages(app, "01-pairing")
    # a wrong code is refused with a readable message
    app("text", ident="pair.server", value=stack.url)
    app("text", ident="pair.code", value="ZZZZ-ZZZZ")
    app("tap", ident="pair.go")
    st = app.wait(lambda s: s.get("error"), 15, "pairing error shown")
    assert "配对码错误" in st["error"]

    pair(stack, people, app)
    ticket_id, crew_id = job_for(stack, people)
    stack.call(people["dispatcher"], "POST", f"/api/v1/tickets/{ticket_id}/assignment",
               json={"crew_id": crew_id})
    st = app.wait(lambda s: ticket_id in s.get("rows", []), 20, "the job on the list")
    both_languages(app, "02-jobs")

    app("tap_job", ticket_id=ticket_id)
    st = app.wait(lambda s: s["screen"] == "detail")
    assert st["actions"] == ["action.accept"]
    both_languages(app, "03-detail")
    app("tap", ident="action.accept")
    st = app.wait(lambda s: s.get("actions") == ["action.en_route"])
    app("tap", ident="action.en_route")
    st = app.wait(lambda s: s.get("actions") == ["action.arrived", "action.scan"])
    wait_for(lambda: ("en_route", people["technician"]) in events(db, ticket_id), 20,
             what="en_route on the server")

    # check in by scanning the site's tag: an NTAG 424 DNA with a fresh SUN message
    uid, keyring, site = settings_keys["uid"], settings_keys["keyring"], settings_keys["site"]
    app("tap", ident="action.scan")
    app.wait(lambda s: s["screen"] == "scan")
    both_languages(app, "04-scan-waiting")
    tag = virtual_reader.insert(Ntag424Tag(bytes.fromhex(uid),
                                           meta_read_key=keyring.meta_read_key(1),
                                           file_read_key=keyring.file_read_key(bytes.fromhex(uid), 1),
                                           counter=settings_keys["counter"]))
    st = app.wait(lambda s: s.get("verdict") == "verified", 30, "the server's verdict")
    both_languages(app, "05-scan-verified")
    virtual_reader.remove(tag)
    app("tap", ident="scan.done")
    st = app.wait(lambda s: s["screen"] == "detail" and "action.checklist" in s.get("actions", []))
    assert st["actions"] == ["action.scan", "action.checklist", "action.resolve", "action.cannot_fix"]

    # the checklist: a range error first, then every item
    app("tap", ident="action.checklist")
    app.wait(lambda s: s["screen"] == "checklist")
    app("text", ident="item.pressure_bar", value="25")
    app("tap", ident="checklist.save")
    st = app.wait(lambda s: s.get("message"))
    assert "必填" in st["message"] or "项" in st["message"]
    texts = app("texts")
    assert "须在 0 到 16 之间" in texts
    app("text", ident="item.pressure_bar", value="3.5")
    app("tap", ident="item.pipe_material.copper")
    app("tap", ident="item.leak_stopped.true")
    app("text", ident="item.remarks", value="更换了阀门 valve replaced")
    app("tap", ident="item.photo")
    app("draw", ident="item.signature",
        points=[[20 + i * 12, 60 + (i % 5) * 18] for i in range(40)])
    both_languages(app, "06-checklist")
    app("tap", ident="checklist.save")
    app.wait(lambda s: s["screen"] == "detail")

    app("tap", ident="action.resolve")
    both_languages(app, "07-resolve-sheet")
    app("text", ident="resolve.notes", value="阀门已更换")
    app("tap", ident="resolve.repaired")
    app.wait(lambda s: s["screen"] == "jobs")
    app.wait(lambda s: s["queued"] == 0 and ticket_id not in s.get("rows", [ticket_id]), 30,
             "everything acknowledged and the job off the list")

    # the server's records
    tech = people["technician"]
    assert [e for e in events(db, ticket_id) if e[1] == tech] == [
        ("accepted", tech), ("en_route", tech), ("on_site", tech), ("resolved", tech)]
    with db.begin() as conn:
        t = conn.execute(text("SELECT status, resolution_code, resolution_note FROM tickets "
                              "WHERE id = :t"), {"t": ticket_id}).one()
        scan = conn.execute(text(
            "SELECT s.verdict, s.site_id, s.source, u.username FROM tag_scans s "
            "JOIN users u ON u.id = s.actor_id WHERE s.uid = :u ORDER BY s.id DESC LIMIT 1"),
            {"u": uid}).one()
        attachments = conn.execute(text(
            "SELECT kind FROM device_attachments a JOIN devices d ON d.id = a.device_id "
            "WHERE d.user_id = :u ORDER BY a.id"), {"u": int(people["technician_id"])}).scalars().all()
        statuses = conn.execute(text(
            "SELECT m.payload->>'status' FROM device_messages m JOIN devices d ON d.id = m.device_id "
            "WHERE d.user_id = :u AND m.kind = 'status' ORDER BY m.id"),
            {"u": int(people["technician_id"])}).scalars().all()
    assert t.status == "resolved" and t.resolution_code == "repaired"
    assert t.resolution_note.startswith("阀门已更换\n检查表 [service_record.v1] 修复后压力 (bar): 3.5;")
    assert "管道材质: 铜" in t.resolution_note and "客户签名: 已签名" in t.resolution_note
    assert tuple(scan) == ("verified", site["id"], "mqtt", tech)
    assert attachments == ["photo", "signature"]
    assert statuses == ["accepted", "en_route", "on_site", "resolved"]

    # a job the dispatcher takes back while the technician looks at it: withdrawn, and said so
    other, crew = job_for(stack, people, priority="normal")
    stack.call(people["dispatcher"], "POST", f"/api/v1/tickets/{other}/assignment",
               json={"crew_id": crew})
    app.wait(lambda s: other in s.get("rows", []), 20, "the second job on the list")
    app("tap_job", ticket_id=other)
    app.wait(lambda s: s["screen"] == "detail")
    stack.call(people["dispatcher"], "DELETE", f"/api/v1/tickets/{other}/assignment")
    st = app.wait(lambda s: s.get("notice"), 20, "the withdrawal notice")
    assert st["notice"] == f"工单 #{other} 已撤回：已退回调度" and st["actions"] == []
    assert st["status"].startswith("已撤回")
    app.shot("12-withdrawn-notice.zh-CN")
    app("tap", ident="nav.jobs")
    assert other not in app.wait(lambda s: s["screen"] == "jobs")["rows"]

    # the other screens, for the record
    app("tap", ident="nav.settings")
    app.wait(lambda s: s["screen"] == "settings")
    both_languages(app, "09-settings")
    app("tap", ident="settings.lang.en")
    assert app.wait(lambda s: s["lang"] == "en")["banner"] == "Online"


def test_offline_work_arrives_once_in_order_after_a_restart(stack, people, apps, db):
    app = apps(server=stack.url)
    pair(stack, people, app)
    ticket_id, crew_id = job_for(stack, people, priority="emergency")
    stack.call(people["dispatcher"], "POST", f"/api/v1/tickets/{ticket_id}/assignment",
               json={"crew_id": crew_id})
    app.wait(lambda s: ticket_id in s.get("rows", []), 20, "the job on the list")
    app("tap_job", ticket_id=ticket_id)
    app.wait(lambda s: s["screen"] == "detail")

    stack.broker.stop()  # the basement: no signal
    try:
        offline_work(stack, people, app, db, ticket_id)
    finally:
        stack.broker.start()


def offline_work(stack, people, app, db, ticket_id: int) -> None:
    app.wait(lambda s: not s["online"], 20, "offline")
    app("tap", ident="action.accept")
    app("tap", ident="action.en_route")
    app("tap", ident="action.arrived")
    st = app.wait(lambda s: "action.resolve" in s.get("actions", []))
    app("tap", ident="action.cannot_fix")
    app("tap", ident="cannot.no_access")
    # four steps (and maybe a positions batch if a tick saw the cadence change, downlink acks)
    st = app.wait(lambda s: s["screen"] == "jobs" and s["queued"] >= 4)
    assert app("outbox").count("status") == 4
    queued = st["queued"]
    assert st["banner_state"] == "offline" and st["banner"] == f"离线 — {queued} 条待发送"
    both_languages(app, "10-offline-banner")

    app.stop()  # the battery dies; the technician restarts the app, still without signal
    app.start()
    st = app.wait(lambda s: s["screen"] == "jobs")
    # nothing lost (a positions batch or downlink ack may have joined after the count above)
    assert st["queued"] >= queued and app("outbox").count("status") == 4, (st, queued)
    assert not st["online"] and ticket_id not in st["rows"]

    stack.broker.start()  # back above ground
    app.wait(lambda s: s["online"] and s["queued"] == 0, 60, "outbox flushed")
    tech = people["technician"]
    wait_for(lambda: ("resolved", tech) in events(db, ticket_id), 20, what="resolved")
    assert [e for e in events(db, ticket_id) if e[1] == tech] == [
        ("accepted", tech), ("en_route", tech), ("on_site", tech), ("resolved", tech)]
    with db.begin() as conn:
        rows = conn.execute(text(
            "SELECT m.payload->>'status', m.result FROM device_messages m "
            "JOIN devices d ON d.id = m.device_id WHERE d.user_id = :u AND m.kind = 'status' "
            "ORDER BY m.id"), {"u": int(people["technician_id"])}).all()
        code = conn.scalar(text("SELECT resolution_code FROM tickets WHERE id = :t"),
                           {"t": ticket_id})
        kinds = dict(conn.execute(text(
            "SELECT m.kind, count(*) FILTER (WHERE m.result = 'accepted') * 1.0 / count(*) "
            "FROM device_messages m JOIN devices d ON d.id = m.device_id WHERE d.user_id = :u "
            "GROUP BY m.kind"), {"u": int(people["technician_id"])}).all())
    # positions batches, resync requests and steps: all stored and accepted
    with db.begin() as conn:
        dead = conn.execute(text("SELECT reason, detail, topic FROM device_dead_letters d "
                                 "JOIN devices v ON v.id = d.device_id WHERE v.user_id = :u"),
                            {"u": int(people["technician_id"])}).all()
    assert {"status"} <= set(kinds) <= {"status", "positions", "ack"}, (kinds, dead)
    assert set(kinds.values()) == {1} and dead == []
    assert [tuple(r) for r in rows] == [("accepted", "accepted"), ("en_route", "accepted"),
                                        ("on_site", "accepted"), ("resolved", "accepted")]
    assert code == "cannot_fix.no_access"


@pytest.fixture
def settings_keys(stack, people):
    """A site with an enrolled NTAG 424 DNA (SUN) under the server's development tag keys."""
    from server.settings import Settings
    from server.tags.keys import keyring_from_settings

    keyring = keyring_from_settings(Settings(_env_file=None, database_url="postgresql://x/y"))
    uid = "04" + uuid.uuid4().hex[:12].upper()
    site = stack.call(people["manager"], "POST", "/api/v1/sites", json={
        "name": f"Pumping station {uid[-4:]}", "kind": "site",
        "location": {"lon": HELSINKI[0], "lat": HELSINKI[1]}})
    stack.call(people["manager"], "POST", "/api/v1/tags", json={
        "uid": uid, "tag_type": "type4", "sun_enabled": True, "key_version": 1,
        "site_id": site["id"]})
    return {"uid": uid, "keyring": keyring, "site": site, "counter": 10}


def test_an_inspection_round_visit(stack, people, apps, db, virtual_reader, settings_keys):  # noqa: F811
    """The round the server plans for the technician arrives over MQTT; the technician scans the
    site's tag and fills in the site type's checklist; the server keeps the visit on its chain."""
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from server.inspections import service as inspections

    items = [
        {"key": "pressure", "label": "Pressure", "label_zh": "压力", "kind": "number", "unit": "bar",
         "min": 2, "max": 6},
        {"key": "valve", "label": "Valve position", "label_zh": "阀门位置", "kind": "choice",
         "options": ["open", "closed"]},
        {"key": "leak", "label": "Leak found", "label_zh": "发现泄漏", "kind": "yes_no"},
        {"key": "photo", "label": "Meter photo", "label_zh": "仪表照片", "kind": "photo"}]
    code = "pump_" + uuid.uuid4().hex[:6]
    site_type = stack.call(people["manager"], "POST", "/api/v1/inspections/site-types",
                           json={"code": code, "name": "Pump station 泵站", "items": items})
    site = settings_keys["site"]
    stack.call(people["manager"], "PUT", f"/api/v1/inspections/sites/{site['id']}/profile",
               json={"site_type_id": site_type["id"]})
    app = apps(reader="Virtual PCD 00 00", server=stack.url)
    pair(stack, people, app)
    today = datetime.now(UTC).date().isoformat()
    stack.call(people["manager"], "POST", "/api/v1/inspections/plans", json={
        "name": "泵站日巡 Daily pump round", "site_ids": [site["id"]], "frequency": "daily",
        "window_start": "00:00", "window_end": "23:59", "timezone": "UTC", "starts_on": today,
        "technician_id": int(people["technician_id"])})
    with Session(db) as session:  # what the worker's periodic rounds sweep does
        created = inspections.generate_rounds(session, datetime.now(UTC))
        session.commit()
    assert created

    app("tap", ident="nav.rounds")
    site_button = f"round.{created[0]}.site.{site['id']}"
    wait_for(lambda: site_button in str(app("idents")), 30, what="the round on the handset")
    both_languages(app, "08-rounds")
    app("tap", ident=site_button)
    app.wait(lambda s: s["screen"] == "checklist")
    app("tap", ident="visit.scan")
    app.wait(lambda s: s["screen"] == "scan")
    uid, keyring = settings_keys["uid"], settings_keys["keyring"]
    tag = virtual_reader.insert(Ntag424Tag(bytes.fromhex(uid), meta_read_key=keyring.meta_read_key(1),
                                           file_read_key=keyring.file_read_key(bytes.fromhex(uid), 1),
                                           counter=50))
    app.wait(lambda s: s.get("verdict") == "verified", 30, "the server's verdict")
    virtual_reader.remove(tag)
    app("tap", ident="scan.done")
    app.wait(lambda s: s["screen"] == "checklist")
    assert any(t.startswith(f"标签 {uid}") and t.endswith("已验证") for t in app("texts"))
    app("text", ident="item.pressure", value="3.5")
    app("tap", ident="item.valve.open")
    app("tap", ident="item.leak.false")
    app("tap", ident="item.photo")
    both_languages(app, "11-visit-checklist")
    app("tap", ident="checklist.save")
    app.wait(lambda s: s["screen"] == "rounds")
    app.wait(lambda s: s["queued"] == 0, 30, "the visit acknowledged")
    with db.begin() as conn:
        record = conn.execute(text(
            "SELECT r.scan_verdict, r.round_id, r.values, r.source, r.attachments "
            "FROM inspection_records r WHERE r.site_id = :s ORDER BY r.id DESC LIMIT 1"),
            {"s": site["id"]}).one()
    assert record.scan_verdict == "verified" and record.round_id == created[0]
    assert record.values == {"pressure": 3.5, "valve": "open", "leak": False}
    assert record.source == "mqtt" and [a["item"] for a in record.attachments] == ["photo"]
