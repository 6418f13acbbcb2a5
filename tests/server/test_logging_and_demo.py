import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy import text

from server.core.logging import configure_logging, mask_phone
from tests.support import cli_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("raw,masked", [
    ("caller +8613800138000 rang", "caller +86*******8000 rang"),
    ("landline 010-6552 9988", "landline *******9988"),
    ("ticket 12345 and 2026-01-05", "ticket 12345 and 2026-01-05"),
])
def test_phone_numbers_are_masked(raw, masked):
    assert mask_phone(raw) == masked


def test_log_lines_never_carry_full_numbers(capsys):
    configure_logging("INFO", json=True)
    structlog.get_logger().info("lookup", phone="+8613800138000", note="call 138 0013 8000")
    out = capsys.readouterr()
    line = (out.out + out.err).strip().splitlines()[-1]
    event = json.loads(line)
    assert event["phone"] == "+86*******8000" and "13800138000" not in line
    assert event["note"] == "call *******8000"


@pytest.mark.parametrize("json_logs", [False, True])
def test_tracebacks_are_logged_masked(capsys, json_logs):
    configure_logging("INFO", json=json_logs)
    e164 = "+8613800138000"
    try:
        raise RuntimeError(f"lookup failed for {e164}")
    except RuntimeError:
        structlog.get_logger().exception("ivr failed", caller=e164)
    out = capsys.readouterr()
    text_out = out.out + out.err
    assert "13800138000" not in text_out
    assert "RuntimeError: lookup failed for +86*******8000" in (
        json.loads(text_out.strip().splitlines()[-1])["exception"] if json_logs else text_out)


@pytest.fixture(scope="session")
def helsinki_pbf() -> Path:
    pbf = ROOT / "var" / "data" / "Helsinki.osm.pbf"
    if not pbf.exists():
        subprocess.run([str(ROOT / "scripts" / "fetch-demo-data.sh"), str(pbf.parent)],
                       check=True, timeout=300)
    return pbf


DEMO_COUNTS = {  # what a re-run must leave unchanged
    "customers": "SELECT count(*) FROM customers",
    "tickets": "SELECT count(*) FROM tickets",
    "site_types": "SELECT count(*) FROM inspection_site_types",
    "sites": "SELECT count(*) FROM sites",
    "sun_tags": "SELECT count(*) FROM tags WHERE sun_enabled AND status = 'active'",
    "uid_tags": "SELECT count(*) FROM tags WHERE NOT sun_enabled AND status = 'active'",
    "profiles": "SELECT count(*) FROM inspection_site_profiles",
    "plans": "SELECT count(*) FROM inspection_plans WHERE active",
    "rounds": "SELECT count(*) FROM inspection_rounds",
    "visits": "SELECT count(*) FROM inspection_records",
    "flagged": "SELECT count(*) FROM inspection_records WHERE evidence = 'flagged'",
    "scans": "SELECT count(*) FROM tag_scans",
    "missed": "SELECT count(*) FROM inspection_alerts WHERE kind = 'missed_checkpoint'",
    "outages": "SELECT count(*) FROM outages",
    "outage_links": "SELECT count(*) FROM outage_tickets",
    "outage_sms": "SELECT count(*) FROM sms_messages WHERE outage_ref IS NOT NULL",
}


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {k: conn.execute(text(q)).scalar_one() for k, q in DEMO_COUNTS.items()}


def test_demo_load_is_real_helsinki_and_idempotent(settings, engine, helsinki_pbf, api):
    env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="test")
    cmd = [sys.executable, "-m", "server.cli", "demo", "load", "--pbf", str(helsinki_pbf)]
    counts = []
    for _ in range(2):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        counts.append(_counts(engine))
    assert counts[1] == counts[0]  # a re-run adds nothing
    assert "crewline-demo" in proc.stdout and "OpenStreetMap" in proc.stdout
    assert "inspections demo" in proc.stdout and "already loaded" in proc.stdout
    with engine.connect() as conn:
        outside = conn.execute(text(
            "SELECT count(*) FROM service_points WHERE NOT ST_Within(geom, "
            "ST_MakeEnvelope(24.80, 60.10, 25.10, 60.25, 4326))")).scalar_one()
        phone = conn.execute(text("SELECT e164 FROM customer_phones ORDER BY id LIMIT 1")
                             ).scalar_one()
    c = counts[0]
    # 5 demo tickets, 4 calls from inside the active outage (3 absorbed, a billing complaint
    # not), a burst of 6 no-water calls
    assert c["customers"] > 1000 and outside == 0 and c["tickets"] == 5 + 4 + 6
    r = api.get("agent", "/api/v1/customers/lookup", params={"phone": phone})
    assert r.json()["matches"] and r.json()["matches"][0]["customer"]["account_no"].startswith("HEL-")
    _check_inspections_demo(engine, api, c)
    _check_outages_demo(engine, api, c)


def _login(api, username: str) -> dict[str, str]:
    r = api.client.post("/api/v1/auth/token", data={"username": username,
                                                    "password": "crewline-demo"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _check_inspections_demo(engine, api, c: dict[str, int]) -> None:
    assert (c["site_types"], c["sites"], c["profiles"], c["plans"]) == (4, 40, 40, 4)
    assert c["sun_tags"] == 24 and c["uid_tags"] == 16
    # yesterday's two daily rounds, today's two daily and two weekly ones
    assert c["rounds"] == 6 and c["missed"] == 1
    # yesterday 9 + 10 visits, today (once the window has been open 15 minutes) 2
    assert c["visits"] in (19, 21) and c["scans"] == c["visits"]
    assert c["flagged"] == 6  # five UID-only meter rooms and one GPS fix 260 m off
    types = api.get("technician", "/api/v1/inspections/site-types").json()
    assert {t["code"] for t in types} == {"pump_station", "valve_chamber", "hydrant",
                                          "meter_room"}
    kinds = {i["kind"] for t in types for i in t["current"]["items"]}
    assert kinds == {"number", "choice", "yes_no", "text", "photo", "signature"}
    pump = next(t for t in types if t["code"] == "pump_station")["current"]["items"]
    assert {"key": "inlet_pressure", "unit": "bar", "min": 2.0, "max": 6.0,
            "label_zh": "进口压力"}.items() <= pump[0].items()
    plans = api.get("manager", "/api/v1/inspections/plans").json()
    assert sorted(p["frequency"] for p in plans) == ["daily", "daily", "weekly", "weekly"]
    assert sum(p["crew_id"] is not None for p in plans) == 2
    assert len(api.get("manager", "/api/v1/inspections/rounds").json()) == 6
    assert api.get("agent", "/api/v1/inspections/plans").status_code == 403
    mine = api.client.get("/api/v1/inspections/rounds", headers=_login(api, "tech1")).json()
    assert len(mine) == 2 and {r["plan_id"] for r in mine} == {plans[0]["id"]}
    with engine.connect() as conn:
        first, last = conn.execute(text(
            "SELECT min(started_at), max(finished_at) FROM inspection_records")).one()
    window = {"since": (first - timedelta(days=1)).isoformat(),
              "until": (last + timedelta(days=1)).isoformat()}
    found = api.get("manager", "/api/v1/inspections/exceptions", params=window)
    assert found.status_code == 200, found.text
    kinds = [e["kind"] for e in found.json()]
    assert {"impossible_travel", "value_out_of_range", "flagged_visit",
            "missed_checkpoint"} <= set(kinds), kinds
    flagged = [e for e in found.json() if e["kind"] == "flagged_visit"]
    reasons = {f for e in flagged for f in e["details"].get("flags", [])}
    assert {"tag_uid_only", "gps_too_far"} <= reasons, flagged
    assert api.get("manager", "/api/v1/inspections/verify").json()["ok"] is True
    assert api.get("technician", "/api/v1/inspections/exceptions",
                   params=window).status_code == 403


def _check_outages_demo(engine, api, c: dict[str, int]) -> None:
    assert c["outages"] == 3 and c["outage_links"] >= 3 + 5 and c["outage_sms"] > 0
    listed = api.get("dispatcher", "/api/v1/outages").json()
    by_status = {(o["type"], o["status"]): o for o in listed}
    assert set(by_status) == {("water_outage", "confirmed"), ("planned_maintenance", "confirmed"),
                              ("water_outage", "suspected")}, by_status
    active = by_status[("water_outage", "confirmed")]
    assert active["etr"] and active["affected_customers"] > 10
    assert active["linked_tickets"] == 3
    detail = api.get("agent", f"/api/v1/outages/{active['id']}").json()
    assert {t["source"] for t in detail["tickets"]} == {"auto"}
    suspected = by_status[("water_outage", "suspected")]
    assert suspected["linked_tickets"] >= 5 and "confirmed" in suspected["allowed_transitions"]
    planned = by_status[("planned_maintenance", "confirmed")]
    assert planned["starts_at"] > active["starts_at"]
    assert api.get("technician", "/api/v1/outages").status_code == 403


def test_demo_refuses_production(settings, helsinki_pbf):
    env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="production",
                  CREWLINE_SECRET_KEY="p" * 40)
    proc = subprocess.run([sys.executable, "-m", "server.cli", "demo", "load", "--pbf",
                           str(helsinki_pbf)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and "production" in (proc.stdout + proc.stderr)




@pytest.mark.parametrize("now", [
    datetime(2026, 1, 5, 16, 10, tzinfo=UTC),  # 00:10 in Asia/Shanghai: the window opens at 00:00
    datetime(2026, 1, 6, 3, 30, tzinfo=UTC),  # 11:30 there
], ids=["just-after-local-midnight", "late-morning"])
def test_demo_extras_at_any_time_of_day(settings, engine, users, api, now):
    """The inspections and outages demo on a small synthetic town (no PBF): whatever the time of
    the load, nothing lies in the future, today's rounds are open, and a re-run adds nothing."""
    from sqlalchemy.orm import Session

    from server.auth.service import create_user
    from server.demo import extras
    from server.demo.loader import DEMO_PASSWORD
    from server.dispatch.demo import load_crews
    from server.models import User
    from tests.server.outage_support import add_customer

    with Session(engine) as session:
        for name in ("tech1", "tech2", "tech3"):
            if session.query(User).filter_by(username=name).first() is None:
                create_user(session, username=name, password=DEMO_PASSWORD, role="technician")
        load_crews(session, now)
        session.commit()
    for i in range(12):  # inside the active outage's polygon
        add_customer(engine, 24.9440 + 0.0004 * (i % 6), 60.1655 + 0.0006 * (i // 6))
    for i in range(8):  # a block of flats near the burst, and a few in the maintenance circle
        add_customer(engine, extras.BURST_CENTER[0] + 0.0003 * (i % 4),
                     extras.BURST_CENTER[1] + 0.0003 * (i // 4))
    for i in range(3):
        add_customer(engine, extras.PLANNED_CENTER[0] + 0.0005 * i, extras.PLANNED_CENTER[1])

    first = extras.load(settings, now=now)
    assert extras.load(settings, now=now) == {"inspections": None, "outages": None}
    ins, out = first["inspections"], first["outages"]
    late = now.hour == 3  # 11:30 local: the window opened at 10:00, tech1 has been out
    assert ins["sites"] == 40 and ins["plans"] == 4 and ins["rounds_open"] == 4
    assert ins["visits"] == (21 if late else 19) and ins["visits_flagged"] == 6
    assert (out["active_customers"], out["planned_customers"], out["absorbed_tickets"]) == (12, 3, 3)
    with engine.connect() as conn:  # linked, not merely created: the billing call stays out
        assert conn.execute(text(
            "SELECT count(ot.ticket_id), count(*) FROM tickets t "
            "JOIN service_points sp ON sp.id = t.service_point_id "
            "JOIN outages o ON o.area_name = :area AND ST_Covers(o.area, sp.geom) "
            "LEFT JOIN outage_tickets ot ON ot.ticket_id = t.id AND ot.outage_id = o.id"),
            {"area": extras.ACTIVE_AREA}).one() == (3, 4)
    assert len(out["suspected"]) == 1 and out["suspected_tickets"] == 6
    with engine.connect() as conn:
        future = conn.execute(text(
            "SELECT (SELECT count(*) FROM inspection_records WHERE finished_at > :now "
            "OR received_at > :now) + (SELECT count(*) FROM tag_scans WHERE received_at > :now)"
            " + (SELECT count(*) FROM tickets WHERE created_at > :now)"), {"now": now}).scalar()
        open_windows = conn.execute(text(
            "SELECT count(*) FROM inspection_rounds WHERE window_start <= :now "
            "AND window_end > :now"), {"now": now}).scalar()
    assert future == 0 and open_windows == 4
    found = api.get("dispatcher", "/api/v1/inspections/exceptions", params={
        "since": (now - timedelta(days=2)).isoformat(), "until": now.isoformat()}).json()
    assert {"impossible_travel", "value_out_of_range", "flagged_visit",
            "missed_checkpoint"} <= {e["kind"] for e in found}
    statuses = sorted(o["status"] for o in api.get("agent", "/api/v1/outages").json())
    assert statuses == ["confirmed", "confirmed", "suspected"]
