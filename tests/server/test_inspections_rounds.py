"""Rounds from plans: windows in the plan's zone, exactly one round per plan and period (repeated,
concurrent, and a real worker killed and restarted), delivery over the devices downlink,
missed-checkpoint alerts exactly once, and plan compliance (done, late, missed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from mobile_app.link import protocol
from server.inspections import schedule, service
from server.models import Device
from tests.server.dispatch_support import make_crew
from tests.server.inspections_support import World, generate, near
from tests.server.inspections_support import close as sweep
from tests.server.tags_support import HELSINKI
from tests.support import cli_env

SITES = [(HELSINKI["lon"] + 0.004 * i, HELSINKI["lat"]) for i in range(3)]


@pytest.fixture
def world(api, settings, clock) -> World:
    return World(api, settings, clock)


@pytest.fixture
def sites(world) -> list[dict]:
    out = []
    for i, (lon, lat) in enumerate(SITES):
        site = world.site(f"Station {i + 1} 站点", lon, lat)
        world.tag(site["id"], f"04DE5F1EACC04{i}")
        out.append(site)
    return out


def add_device(engine, device_id: str, user_id: int, clock) -> str:
    with Session(engine) as session:
        session.add(Device(id=device_id, user_id=user_id, name=device_id, password_hash="x",
                           created_at=clock.now(), created_by=user_id))
        session.commit()
    return device_id


def rounds(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT plan_id, period_start, window_start, window_end, "
                                 "delivered_to FROM inspection_rounds ORDER BY plan_id, "
                                 "period_start")).all()


def downlinks(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT device_id, seq, payload FROM device_downlink "
                                 "WHERE kind = 'round' ORDER BY id")).all()


# --- windows -------------------------------------------------------------------------------------

def test_windows_in_the_plans_zone():
    at = datetime(2026, 1, 7, 3, 0, tzinfo=UTC)  # Wednesday 11:00 in Shanghai
    w = schedule.current_window("daily", at, dtime(8), dtime(17), "Asia/Shanghai")
    assert (w.period_start, w.start, w.end) == (
        date(2026, 1, 7), datetime(2026, 1, 7, 0, 0, tzinfo=UTC),
        datetime(2026, 1, 7, 9, 0, tzinfo=UTC))
    night = schedule.current_window("daily", at, dtime(22), dtime(6), "Asia/Shanghai")
    assert night.end - night.start == timedelta(hours=8)
    weekly = schedule.current_window("weekly", at, dtime(9), dtime(12), "Europe/Helsinki",
                                     weekday=5)
    assert weekly.period_start == date(2026, 1, 5)  # the Monday
    assert weekly.start == datetime(2026, 1, 9, 7, 0, tzinfo=UTC)  # Friday 09:00 EET
    monthly = schedule.current_window("monthly", at, dtime(9), dtime(12), "UTC", day_of_month=20)
    assert (monthly.period_start, monthly.start.day) == (date(2026, 1, 1), 20)
    # a DST change inside a window (Helsinki, last Sunday of March)
    dst = schedule.window_for("daily", date(2026, 3, 29), dtime(1), dtime(5), "Europe/Helsinki")
    assert dst.end - dst.start == timedelta(hours=3)


# --- generation exactly once -------------------------------------------------------------------

def test_one_round_per_plan_and_period_delivered_to_the_technicians_handsets(
        engine, api, world, sites, clock):
    dev = add_device(engine, "hs-round", api.user_ids["technician"], clock)
    plan = world.plan([s["id"] for s in sites])
    assert generate(engine, clock.now()) != []
    assert generate(engine, clock.now()) == []
    clock.advance(hours=3)
    assert generate(engine, clock.now()) == []
    got = rounds(engine)
    assert len(got) == 1
    assert got[0][1:4] == (date(2026, 1, 5), datetime(2026, 1, 5, 7, 0, tzinfo=UTC),
                           datetime(2026, 1, 5, 17, 0, tzinfo=UTC))
    assert got[0][4] == 1
    (device_id, seq, payload), = downlinks(engine)
    assert (device_id, seq) == (dev, 1)
    protocol.validate("down", "round", payload)
    assert payload["timezone"] == "UTC"  # the plan's
    assert [s["site_id"] for s in payload["sites"]] == [s["id"] for s in sites]
    assert payload["plan_id"] == plan["id"] and payload["templates"][0]["version"] == 1
    assert payload["sites"][0]["template_id"] == payload["templates"][0]["id"]
    # the next day, a new round
    clock.advance(days=1)
    assert len(generate(engine, clock.now())) == 1
    assert [r[1] for r in rounds(engine)] == [date(2026, 1, 5), date(2026, 1, 6)]
    assert [s for _, s, _ in downlinks(engine)] == [1, 2]
    # an inactive plan makes no more rounds
    api.renew_tokens()
    r = api.patch("manager", f"/api/v1/inspections/plans/{plan['id']}", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    clock.advance(days=1)
    assert generate(engine, clock.now()) == []


def test_the_round_downlink_names_the_plans_zone_for_the_handset(engine, api, world, sites,
                                                                  clock, monkeypatch):
    """The window travels in UTC and the plan's IANA zone with it: a Shanghai handset shows
    the local times the plan was written in."""
    from mobile_app.viewmodels import rounds as rounds_vm

    add_device(engine, "hs-zone", api.user_ids["technician"], clock)
    # 2026-01-05 08:00 UTC is 16:00 in Shanghai: today's 14:00–20:00 window is open
    world.plan([s["id"] for s in sites], window=("14:00", "20:00"), timezone="Asia/Shanghai")
    assert len(generate(engine, clock.now())) == 1
    (_, _, payload), = downlinks(engine)
    protocol.validate("down", "round", payload)
    assert payload["timezone"] == "Asia/Shanghai"
    assert [datetime.fromisoformat(payload[k]) for k in ("window_start", "window_end")] == [
        datetime(2026, 1, 5, 6, 0, tzinfo=UTC), datetime(2026, 1, 5, 12, 0, tzinfo=UTC)]
    try:
        for device_zone in ("Asia/Shanghai", "UTC"):  # on the handset: the plan's local times
            monkeypatch.setenv("TZ", device_zone)
            time.tzset()
            (row,) = rounds_vm.rounds_view([payload], set(), clock.now(), "zh-CN").current
            assert row.caption == ("01-05 14:00 – 01-05 20:00" +
                                   (" CST" if device_zone == "UTC" else "") + " · 0/3 个站点")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_no_round_before_the_plan_starts_or_for_a_window_already_closed(engine, world, sites,
                                                                        clock):
    world.plan([sites[0]["id"]], starts_on="2026-01-10")
    world.plan([sites[1]["id"]], window=("05:00", "07:30"))  # closed before the plan was made
    assert generate(engine, clock.now()) == []
    clock.set(datetime(2026, 1, 10, 6, 0, tzinfo=UTC))
    assert len(generate(engine, clock.now())) == 2


def test_concurrent_generators_make_each_round_once(engine, api, world, sites, clock):
    add_device(engine, "hs-c1", api.user_ids["technician"], clock)
    for s in sites:
        world.plan([s["id"]])
    created, barrier = [], threading.Barrier(4)

    def run():
        barrier.wait()
        created.extend(generate(engine, clock.now()))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(created) == 3 and len(set(created)) == 3
    assert len(rounds(engine)) == 3
    assert sorted(s for _, s, _ in downlinks(engine)) == [1, 2, 3]  # one message per round


def test_crew_rounds_reach_every_member_and_only_members_see_them(engine, api, world, sites,
                                                                   clock):
    crew = make_crew(api, clock, "Crew A", None, None, members=[api.user_ids["technician"]])
    add_device(engine, "hs-crew", api.user_ids["technician"], clock)
    world.plan([s["id"] for s in sites], crew_id=crew["id"])
    (round_id,) = generate(engine, clock.now())
    assert [d for d, _, _ in downlinks(engine)] == ["hs-crew"]
    mine = api.get("technician", "/api/v1/inspections/rounds").json()
    assert [r["id"] for r in mine] == [round_id]
    assert [c["state"] for c in mine[0]["checkpoints"]] == ["pending"] * 3
    # another plan for the admin-only technician-less crew: not visible to this technician
    other = make_crew(api, clock, "Crew B", None, None)
    world.plan([sites[0]["id"]], crew_id=other["id"])
    (other_round,) = generate(engine, clock.now())
    assert [r["id"] for r in api.get("technician", "/api/v1/inspections/rounds").json()] == [
        round_id]
    r = api.get("technician", f"/api/v1/inspections/rounds/{other_round}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_round"
    assert len(api.get("dispatcher", "/api/v1/inspections/rounds").json()) == 2
    # a visit naming a round that is not the technician's is refused
    r = api.post("technician", "/api/v1/inspections/visits", json={
        "site_id": sites[0]["id"], "round_id": other_round, "started_at": "2026-01-05T07:10:00Z",
        "finished_at": "2026-01-05T07:20:00Z"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_round"


# --- missed checkpoints and compliance ----------------------------------------------------------

def test_missed_checkpoints_raise_alerts_once_and_compliance_counts(engine, api, world, sites,
                                                                     clock):
    plan = world.plan([s["id"] for s in sites], window=("07:00", "09:00"))
    (round_id,) = generate(engine, clock.now())
    scan = world.scan("04DE5F1EACC040")
    v1 = world.visit(sites[0]["id"], scan=scan, position=near(api.get(
        "manager", f"/api/v1/sites/{sites[0]['id']}").json()["location"], 5))
    assert v1["round_id"] == round_id and v1["evidence"] == "verified"  # matched to the round
    assert sweep(engine, clock.now()) == service.SweepResult(0, 0)  # window still open
    clock.set(datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    results, barrier = [], threading.Barrier(3)

    def run():
        barrier.wait()
        results.append(sweep(engine, clock.now()))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.closed for r in results) == 1 and sum(r.alerts for r in results) == 2
    assert sweep(engine, clock.now()) == service.SweepResult(0, 0)
    # a late visit: the alert stays, compliance says late
    late = world.visit(sites[1]["id"], scan=world.scan("04DE5F1EACC041"), position=None,
                       round_id=round_id)
    assert "outside_window" in late["flags"]
    rnd = api.get("manager", f"/api/v1/inspections/rounds/{round_id}").json()
    assert (rnd["outcome"], [c["state"] for c in rnd["checkpoints"]]) == (
        "incomplete", ["done", "late", "missed"])
    comp = api.get("manager", "/api/v1/inspections/compliance?date_from=2026-01-05"
                              "&date_to=2026-01-05").json()
    assert comp["rounds"] == [{
        "round_id": round_id, "plan_id": plan["id"], "plan_name": plan["name"], "crew_id": None,
        "technician_id": api.user_ids["technician"], "day": "2026-01-05",
        "window_start": "2026-01-05T07:00:00+00:00", "window_end": "2026-01-05T09:00:00+00:00",
        "checkpoints": 3, "done": 1, "late": 1, "missed": 1, "pending": 0, "verified": 1}]
    assert comp["plans"][0]["on_time_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert api.get("manager", "/api/v1/inspections/compliance?date_from=2026-01-06"
                              "&date_to=2026-01-07").json()["rounds"] == []
    assert api.get("manager", f"/api/v1/inspections/compliance?date_from=2026-01-05"
                              f"&date_to=2026-01-05&technician_id={api.user_ids['admin']}"
                   ).json()["rounds"] == []
    ex = api.get("manager", "/api/v1/inspections/exceptions?since=2026-01-05T00:00:00Z"
                            "&until=2026-01-06T00:00:00Z").json()
    missed = [e for e in ex if e["kind"] == "missed_checkpoint"]
    assert sorted(e["site_ids"][0] for e in missed) == [sites[1]["id"], sites[2]["id"]]
    assert missed[0]["message"]["zh-CN"].startswith("漏检")
    r = api.get("manager", "/api/v1/inspections/compliance?date_from=2026-01-05"
                           "&date_to=2026-01-04")
    assert r.status_code == 422 and r.json()["error"]["field"] == "date_to"


# --- a real worker -------------------------------------------------------------------------------

def _worker(settings, tmp_path):
    env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="test",
                  CREWLINE_INSPECTION_ROUNDS_CRON="* * * * * *",
                  # the counts below are today's rounds only (ahead: test_inspections_ahead.py)
                  CREWLINE_INSPECTION_ROUNDS_AHEAD_HOURS="0")
    return subprocess.Popen([sys.executable, "-m", "server.cli", "worker"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _state(engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT (SELECT count(*) FROM inspection_rounds), "
            "(SELECT count(*) FROM inspection_alerts), "
            "(SELECT count(*) FROM device_downlink WHERE kind = 'round')")).one()


def _wait(engine, want: tuple[int, int, int], timeout: float = 60) -> tuple[int, int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _state(engine)
        if got == want:
            return got
        time.sleep(0.3)
    return _state(engine)


@pytest.mark.slow
def test_real_worker_makes_rounds_once_across_a_crash_and_restart(engine, api, world, sites,
                                                                  clock, settings, tmp_path):
    """The worker runs on the real clock (today); the plan exists since January (test clock).
    Today's round is made once, January's round is closed with its alerts once, however the
    worker is killed and restarted."""
    add_device(engine, "hs-worker", api.user_ids["technician"], clock)
    world.plan([s["id"] for s in sites], window=("00:01", "00:00"))
    assert len(generate(engine, clock.now())) == 1  # January 5th's round, never visited
    worker = _worker(settings, tmp_path)
    try:
        assert _wait(engine, (2, 3, 2)) == (2, 3, 2), "worker did not generate/close"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    world.plan([sites[0]["id"]], window=("00:01", "00:00"))  # arrives while no worker runs
    worker = _worker(settings, tmp_path)
    try:
        assert _wait(engine, (3, 3, 3)) == (3, 3, 3), "restarted worker did not generate"
        time.sleep(2.5)  # a few more sweeps: they must find nothing new
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    assert _state(engine) == (3, 3, 3)
    with engine.connect() as conn:
        periods = conn.execute(text("SELECT period_start, outcome FROM inspection_rounds "
                                    "ORDER BY period_start, id")).all()
    assert periods[0] == (date(2026, 1, 5), "incomplete")
    assert [p[0] for p in periods[1:]] == [datetime.now(UTC).date()] * 2


def test_a_round_grown_too_large_for_mqtt_is_kept_but_not_sent(engine, api, world, sites, clock):
    add_device(engine, "hs-big", api.user_ids["technician"], clock)
    world.plan([sites[0]["id"]])
    big = [{"key": f"item_{i}", "label": "L" * 200, "label_zh": "检" * 200, "kind": "yes_no"}
           for i in range(100)]
    r = api.post("manager", f"/api/v1/inspections/site-types/{world.site_type['id']}/templates",
                 json={"items": big})
    assert r.status_code == 201
    (round_id,) = generate(engine, clock.now())
    assert rounds(engine)[0][4] == 0 and downlinks(engine) == []
    with Session(engine) as session:  # recorded as not sent: the catch-up does not retry it
        assert service.deliver_pending(session, clock.now()) == 0
    got = api.get("technician", f"/api/v1/inspections/rounds/{round_id}")
    assert got.status_code == 200 and len(got.json()["checkpoints"]) == 1
