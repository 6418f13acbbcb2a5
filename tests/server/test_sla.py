"""SLA clocks: warnings at 80 %, escalations at 100 %, exactly once, through a real worker."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from server.tickets import sla
from tests.support import cli_env

from .conftest import HELSINKI


def sweep(engine, now):
    with Session(engine) as session:
        result = sla.sweep(session, now)
        session.commit()
    return result


def new_ticket(api, priority="emergency", category="repair"):
    r = api.post("agent", "/api/v1/tickets", json={
        "category": category, "priority": priority, "description": "burst", "location": HELSINKI})
    return r.json()["ticket"]


def sla_events(api, ticket_id):
    events = api.get("admin", f"/api/v1/tickets/{ticket_id}").json()["events"]
    return [(e["kind"], e["data"]["clock"]) for e in events if e["kind"].startswith("sla_")]


def test_due_times_follow_the_policy(api):
    t = new_ticket(api)  # repair/emergency: assign 10, arrive 60, resolve 240 minutes
    clocks = {c["clock"]: c for c in t["sla"]}
    assert clocks["assign"]["due_at"] == "2026-01-05T08:10:00Z"
    assert clocks["assign"]["warn_at"] == "2026-01-05T08:08:00Z"
    assert clocks["arrive"]["due_at"] == "2026-01-05T09:00:00Z"
    assert clocks["resolve"]["due_at"] == "2026-01-05T12:00:00Z"
    q = new_ticket(api, priority="normal", category="query")
    assert [c["clock"] for c in q["sla"]] == ["resolve"]


def test_warning_then_escalation_exactly_once(api, engine, clock):
    t = new_ticket(api)
    clock.advance(minutes=7, seconds=59)
    assert sweep(engine, clock.now()).warnings == 0
    clock.advance(seconds=1)  # 8:00 of 10:00 = 80 %
    assert sweep(engine, clock.now()).warnings == 1
    assert sweep(engine, clock.now()).warnings == 0  # again: nothing new
    body = api.get("agent", f"/api/v1/tickets/{t['id']}").json()
    assert body["sla_level"] == 1
    assert {c["clock"]: c["state"] for c in body["sla"]}["assign"] == "warning"
    clock.advance(minutes=2)
    result = sweep(engine, clock.now())
    assert (result.warnings, result.escalations) == (0, 1)
    body = api.get("agent", f"/api/v1/tickets/{t['id']}").json()
    assert body["sla_level"] == 2
    assert {c["clock"]: c["state"] for c in body["sla"]}["assign"] == "overdue"
    assert sla_events(api, t["id"]) == [("sla_warning", "assign"), ("sla_escalation", "assign")]


def test_a_late_sweep_records_both_warning_and_escalation(api, engine, clock):
    t = new_ticket(api)
    clock.advance(hours=5)
    result = sweep(engine, clock.now())
    assert (result.warnings, result.escalations) == (3, 3)
    assert sorted(sla_events(api, t["id"])) == sorted(
        [(k, c) for k in ("sla_warning", "sla_escalation") for c in ("assign", "arrive",
                                                                       "resolve")])


def test_assignment_stops_the_assign_clock(api, engine, clock):
    t = new_ticket(api)
    clock.advance(minutes=5)
    api.post("dispatcher", f"/api/v1/tickets/{t['id']}/transitions", json={"to": "assigned"})
    clock.advance(minutes=30)
    sweep(engine, clock.now())
    body = api.get("agent", f"/api/v1/tickets/{t['id']}").json()
    states = {c["clock"]: c["state"] for c in body["sla"]}
    assert states["assign"] == "met"
    assert ("sla_warning", "assign") not in sla_events(api, t["id"])


def test_cancelled_tickets_never_escalate(api, engine, clock):
    t = new_ticket(api)
    api.post("agent", f"/api/v1/tickets/{t['id']}/transitions", json={"to": "cancelled"})
    clock.advance(days=2)
    assert sweep(engine, clock.now()).escalations == 0


def test_concurrent_sweeps_record_each_escalation_once(api, engine, clock):
    ids = [new_ticket(api)["id"] for _ in range(20)]
    clock.advance(hours=5)
    now = clock.now()
    results, barrier = [], threading.Barrier(4)

    def run():
        barrier.wait()
        results.append(sweep(engine, now))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(r.escalations for r in results) == 60
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM ticket_events WHERE kind = 'sla_escalation'")
                         ).scalar_one()
    assert n == 60 and len(ids) == 20


def test_policy_change_applies_to_new_tickets(api):
    r = api.put("manager", "/api/v1/sla/policies/repair/emergency",
                json={"assign_minutes": 5, "arrive_minutes": 30, "resolve_minutes": 120})
    assert r.status_code == 200
    t = new_ticket(api)
    assert {c["clock"]: c["due_at"] for c in t["sla"]}["assign"] == "2026-01-05T08:05:00Z"
    r = api.put("manager", "/api/v1/sla/policies/repair/emergency",
                json={"assign_minutes": 50, "arrive_minutes": 30})
    assert r.status_code == 422


def _worker(settings, tmp_path):
    env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="test",
                  CREWLINE_SLA_SWEEP_CRON="* * * * * *")
    return subprocess.Popen([sys.executable, "-m", "server.cli", "worker"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _escalations(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT ticket_id, data->>'clock' FROM ticket_events "
                                 "WHERE kind = 'sla_escalation' ORDER BY 1, 2")).all()


@pytest.mark.slow
def test_real_worker_escalates_once_across_a_crash_and_restart(api, engine, settings, tmp_path):
    """The procrastinate worker's periodic sweep runs on the real clock; tickets made on the
    test clock (January) are long overdue. Kill -9 the worker, start another: nothing twice."""
    ids = [new_ticket(api)["id"] for _ in range(3)]
    worker = _worker(settings, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while len(_escalations(engine)) < 9 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert len(_escalations(engine)) == 9, worker.stdout and "worker did not sweep"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    ids.append(new_ticket(api)["id"])  # arrives while no worker runs
    worker = _worker(settings, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while len(_escalations(engine)) < 12 and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(2.5)  # a few more sweeps: they must find nothing new
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    rows = _escalations(engine)
    assert len(rows) == 12 and len(set(rows)) == 12
    assert {r[0] for r in rows} == set(ids)
