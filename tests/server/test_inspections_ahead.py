"""Rounds ahead of their window and rounds for handsets registered later: the generation horizon
(just before and at it), exactly once under concurrent sweeps, no alerts for an upcoming round,
visits matched to today's round while tomorrow's lists the same site, and a late-paired handset
getting its open and upcoming rounds once (a second handset too, another technician's nothing)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from mobile_app.link import protocol
from server.inspections import schedule, service
from server.models import Device
from tests.server import inspections_support as support
from tests.server.dispatch_support import make_crew
from tests.server.inspections_support import World, close
from tests.server.tags_support import HELSINKI

AHEAD = timedelta(hours=18)
SITES = [(HELSINKI["lon"] + 0.004 * i, HELSINKI["lat"]) for i in range(3)]
CODES = "/api/v1/devices/pairing-codes"
PAIR = "/api/v1/devices/pair"


class NullBroker:
    """The broker's password files are not what these tests are about."""

    def add_device(self, device_id: str, password: str) -> None:
        pass

    def remove_device(self, device_id: str) -> None:
        pass

    def disconnect_device(self, device_id: str) -> bool:
        return False


@pytest.fixture
def world(api, settings, clock) -> World:
    return World(api, settings, clock)


@pytest.fixture
def sites(world) -> list[dict]:
    return [world.site(f"Station {i + 1} 站点", lon, lat) for i, (lon, lat) in enumerate(SITES)]


def add_device(engine, device_id: str, user_id: int, clock) -> str:
    with Session(engine) as session:
        session.add(Device(id=device_id, user_id=user_id, name=device_id, password_hash="x",
                           created_at=clock.now(), created_by=user_id))
        session.commit()
    return device_id


def generate(engine, now, ahead=AHEAD) -> list[int]:
    return support.generate(engine, now, ahead)


def deliver(engine, now, device_id=None) -> int:
    with Session(engine) as session:
        n = service.deliver_pending(session, now, device_id=device_id)
        session.commit()
    return n


def periods(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT plan_id, period_start, delivered_to, closed_at IS NULL "
                                 "FROM inspection_rounds ORDER BY plan_id, period_start")).all()


def round_messages(engine, device_id: str | None = None) -> list[tuple[str, int, int]]:
    """(device, seq, round_id) of every round downlink, in queue order."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT device_id, seq, payload FROM device_downlink "
                                 "WHERE kind = 'round' ORDER BY id")).all()
    for _, _, payload in rows:
        protocol.validate("down", "round", payload)
    return [(d, s, p["round_id"]) for d, s, p in rows if device_id in (None, d)]


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, second, tzinfo=UTC)


# --- the schedule (pure) -------------------------------------------------------------------------

def test_due_windows_reach_as_far_as_the_horizon():
    from datetime import time as dtime

    now = at(5, 12, 59, 59)
    assert [w.period_start for w in schedule.due_windows(
        "daily", now, AHEAD, dtime(7), dtime(17), "UTC")] == [date(2026, 1, 5)]
    assert [w.period_start for w in schedule.due_windows(
        "daily", now + timedelta(seconds=1), AHEAD, dtime(7), dtime(17), "UTC")] == [
        date(2026, 1, 5), date(2026, 1, 6)]
    assert len(schedule.due_windows("daily", now, timedelta(days=3), dtime(7), dtime(17),
                                    "UTC")) == 4
    assert schedule.due_windows("daily", now, timedelta(0), dtime(7), dtime(17), "UTC") == [
        schedule.current_window("daily", now, dtime(7), dtime(17), "UTC")]
    # next periods of weeks and months, across the year's end
    assert schedule.next_period_start("weekly", date(2025, 12, 29)) == date(2026, 1, 5)
    assert schedule.next_period_start("monthly", date(2025, 12, 1)) == date(2026, 1, 1)
    assert schedule.next_period_start("monthly", date(2026, 1, 1)) == date(2026, 2, 1)
    last_day = datetime(2026, 1, 31, 20, 0, tzinfo=UTC)
    monthly = schedule.due_windows("monthly", last_day, AHEAD, dtime(7), dtime(17), "UTC",
                                   day_of_month=1)
    assert [w.period_start for w in monthly] == [date(2026, 1, 1), date(2026, 2, 1)]


# --- generation ahead ----------------------------------------------------------------------------

def test_next_periods_round_is_made_once_its_window_opens_within_the_horizon(
        engine, api, world, sites, clock):
    dev = add_device(engine, "hs-ahead", api.user_ids["technician"], clock)
    plan = world.plan([s["id"] for s in sites])  # 07:00-17:00 UTC daily
    (today,) = generate(engine, clock.now())
    assert generate(engine, at(5, 12, 59, 59)) == []  # tomorrow 07:00 is 18 h + 1 s away
    (tomorrow,) = generate(engine, at(5, 13, 0))  # exactly at the horizon
    assert generate(engine, at(5, 13, 0)) == [] and generate(engine, at(5, 20, 0)) == []
    assert generate(engine, at(6, 8, 0)) == []  # its own day: already there
    assert periods(engine) == [(plan["id"], date(2026, 1, 5), 1, True),
                               (plan["id"], date(2026, 1, 6), 1, True)]
    assert round_messages(engine) == [(dev, 1, today), (dev, 2, tomorrow)]
    r = api.get("technician", f"/api/v1/inspections/rounds/{tomorrow}").json()
    assert (r["window_start"], r["window_end"]) == ("2026-01-06T07:00:00Z",
                                                    "2026-01-06T17:00:00Z")
    assert [c["state"] for c in r["checkpoints"]] == ["pending"] * 3
    # with no horizon (the default of generate_rounds), only the current period
    assert generate(engine, at(6, 13, 0), ahead=timedelta(0)) == []
    assert len(generate(engine, at(6, 13, 0))) == 1  # the 7th


def test_no_round_ahead_before_the_plan_starts(engine, world, sites, clock):
    later = world.plan([sites[0]["id"]], starts_on="2026-01-07")
    soon = world.plan([sites[1]["id"]], starts_on="2026-01-06")
    assert generate(engine, at(5, 13, 0)) != []  # the 6th of `soon` only
    assert [(p, d) for p, d, _, _ in periods(engine)] == [(soon["id"], date(2026, 1, 6))]
    assert generate(engine, at(5, 23, 0)) == []
    assert len(generate(engine, at(6, 13, 0))) == 2  # the 7th: both plans
    assert [(p, d) for p, d, _, _ in periods(engine)] == [
        (later["id"], date(2026, 1, 7)), (soon["id"], date(2026, 1, 6)),
        (soon["id"], date(2026, 1, 7))]


def test_concurrent_sweeps_make_each_ahead_round_once(engine, api, world, sites, clock):
    dev = add_device(engine, "hs-c4", api.user_ids["technician"], clock)
    for s in sites:
        world.plan([s["id"]])
    created, barrier = [], threading.Barrier(4)

    def run():
        barrier.wait()
        created.extend(generate(engine, at(5, 13, 0)))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(created) == 6 and len(set(created)) == 6  # today's and tomorrow's of 3 plans
    assert len(periods(engine)) == 6
    got = round_messages(engine)
    assert sorted(s for _, s, _ in got) == list(range(1, 7))
    assert sorted(r for _, _, r in got) == sorted(created)
    assert deliver(engine, at(5, 13, 0)) == 0  # every handset has every round already
    assert all(d == dev for d, _, _ in got)


def test_an_upcoming_round_is_not_closed_and_raises_no_alert_before_its_window_ends(
        engine, world, sites, clock, api):
    world.plan([s["id"] for s in sites])
    today, tomorrow = sorted(generate(engine, at(5, 13, 0)))
    result = close(engine, at(5, 17, 30))
    assert result == service.SweepResult(1, 3)  # today's: all three missed
    assert periods(engine)[1][1:] == (date(2026, 1, 6), 0, True)
    assert close(engine, at(6, 16, 59)) == service.SweepResult(0, 0)
    with engine.connect() as conn:
        alerts = conn.execute(text("SELECT DISTINCT round_id FROM inspection_alerts")).scalars()
        assert list(alerts) == [today]
    up = api.get("manager", f"/api/v1/inspections/rounds/{tomorrow}").json()
    assert (up["closed_at"], [c["state"] for c in up["checkpoints"]]) == (None, ["pending"] * 3)
    assert close(engine, at(6, 17, 0)) == service.SweepResult(1, 3)


# --- visits with today's and tomorrow's rounds ----------------------------------------------------

def test_visits_go_to_todays_round_while_tomorrows_lists_the_site(engine, api, world, sites,
                                                                  clock):
    world.plan([s["id"] for s in sites])
    today, tomorrow = sorted(generate(engine, at(5, 13, 0)))
    site = sites[0]["id"]
    clock.set(at(5, 16, 30))
    api.renew_tokens()
    v = world.visit(site, scan=None, position=None)
    assert v["round_id"] == today and "outside_window" not in v["flags"]
    clock.set(at(5, 18, 0))  # after today's window, long before tomorrow's: late for today
    api.renew_tokens()
    v = world.visit(sites[1]["id"], scan=None, position=None)
    assert v["round_id"] == today and "outside_window" in v["flags"]
    clock.set(at(6, 6, 30))  # half an hour before tomorrow's window: early for tomorrow
    api.renew_tokens()
    v = world.visit(sites[2]["id"], scan=None, position=None, minutes=1)
    assert v["round_id"] == tomorrow and "outside_window" in v["flags"]
    # naming tomorrow's round today is allowed, and flagged
    clock.set(at(5, 16, 40))
    api.renew_tokens()
    v = world.visit(site, scan=None, position=None, round_id=tomorrow,
                    started_at="2026-01-05T16:35:00Z")
    assert v["round_id"] == tomorrow and "outside_window" in v["flags"]


def test_a_window_holding_the_visit_wins_over_one_opening_within_the_hour(engine, api, world,
                                                                          sites, clock):
    """Windows of 23.5 h: the next one opens half an hour after this one ends."""
    world.plan([sites[0]["id"]], window=("06:00", "05:30"))
    (first,) = generate(engine, at(5, 8, 0))
    (second,) = generate(engine, at(5, 12, 0))  # the 6th, 06:00: within 18 h
    clock.set(at(6, 5, 20))
    api.renew_tokens()
    v = world.visit(sites[0]["id"], scan=None, position=None)  # 05:15, inside the first window
    assert v["round_id"] == first and "outside_window" not in v["flags"]
    clock.set(at(6, 5, 50))
    api.renew_tokens()
    v = world.visit(sites[0]["id"], scan=None, position=None, minutes=1)  # between the windows
    assert v["round_id"] == second and "outside_window" in v["flags"]


# --- handsets registered after the round was made -------------------------------------------------

def pair(api, user_id: int, name: str) -> str:
    code = api.post("dispatcher", CODES, json={"user_id": user_id})
    assert code.status_code == 201, code.text
    r = api.client.post(PAIR, json={"code": code.json()["code"], "name": name})
    assert r.status_code == 201, r.text
    return r.json()["device"]["id"]


def test_a_late_paired_handset_gets_its_open_and_upcoming_rounds_once(
        engine, app, api, world, sites, clock, second_tech):
    app.state.broker_admin = NullBroker()
    tech = api.user_ids["technician"]
    crew = make_crew(api, clock, "Crew A", None, None, members=[tech])
    own = world.plan([sites[0]["id"]])  # 07:00-17:00
    crews = world.plan([sites[1]["id"]], window=("07:00", "23:00"), crew_id=crew["id"])
    other = world.plan([sites[2]["id"]], technician_id=second_tech)
    generate(engine, at(5, 8, 0))
    clock.set(at(5, 18, 0))
    api.renew_tokens()
    assert close(engine, clock.now()).closed == 2  # today's of own and other: closed
    generate(engine, clock.now())  # tomorrow's of all three
    ids = {(p, d): i for i, p, d in _round_ids(engine)}
    assert all(n == 0 for _, _, n, _ in periods(engine))  # nobody had a handset

    first = pair(api, tech, "Van 7 phone")
    want = [ids[(crews["id"], date(2026, 1, 5))], ids[(own["id"], date(2026, 1, 6))],
            ids[(crews["id"], date(2026, 1, 6))]]  # not the closed one, not another's
    assert round_messages(engine) == [(first, 1, want[0]), (first, 2, want[1]),
                                      (first, 3, want[2])]
    assert deliver(engine, clock.now()) == 0  # the sweep finds nothing left to send
    with Session(engine) as session:  # the pairing call again for the same handset: nothing
        assert service.deliver_to_device(session, first, clock.now()) == 0
        session.commit()
    # pairing again (a second handset, or the same phone after a reset): that device gets them
    # once, the first one nothing more
    second = pair(api, tech, "Spare phone")
    assert round_messages(engine, second) == [(second, i + 1, r) for i, r in enumerate(want)]
    assert len(round_messages(engine, first)) == 3
    delivered = {(p, d): n for p, d, n, _ in periods(engine)}
    assert delivered[(crews["id"], date(2026, 1, 5))] == 2
    assert delivered[(own["id"], date(2026, 1, 5))] == 0
    # another technician's handset gets their own round only
    theirs = pair(api, second_tech, "Their phone")
    assert round_messages(engine, theirs) == [(theirs, 1, ids[(other["id"], date(2026, 1, 6))])]
    assert deliver(engine, clock.now()) == 0


def _round_ids(engine) -> list[tuple[int, int, date]]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT id, plan_id, period_start FROM inspection_rounds")).all()


def test_the_sweep_sends_rounds_to_handsets_registered_otherwise_once_under_concurrency(
        engine, api, world, sites, clock):
    tech = api.user_ids["technician"]
    world.plan([s["id"] for s in sites])
    today, tomorrow = sorted(generate(engine, at(5, 13, 0)))
    dev = add_device(engine, "hs-late", tech, clock)  # registered without pairing
    revoked = add_device(engine, "hs-revoked", tech, clock)
    with engine.begin() as conn:
        conn.execute(text("UPDATE devices SET revoked_at = :t WHERE id = :d"),
                     {"t": clock.now(), "d": revoked})
    results, barrier = [], threading.Barrier(3)

    def run():
        barrier.wait()
        results.append(deliver(engine, at(5, 13, 1)))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 2
    assert round_messages(engine) == [(dev, 1, today), (dev, 2, tomorrow)]
    assert [n for _, _, n, _ in periods(engine)] == [1, 1]
    # once a round's window has ended it is not sent any more
    late = add_device(engine, "hs-later", tech, clock)
    assert deliver(engine, at(5, 17, 0)) == 1
    assert round_messages(engine, late) == [(late, 1, tomorrow)]


def test_deactivating_a_plan_withdraws_its_rounds_made_ahead_but_finishes_todays(
        engine, api, world, sites, clock):
    plan = world.plan([s["id"] for s in sites])
    today, tomorrow = sorted(generate(engine, at(5, 13, 0)))
    clock.set(at(5, 14, 0))  # today's window (07:00-17:00) is under way, tomorrow's is not
    r = api.patch("manager", f"/api/v1/inspections/plans/{plan['id']}", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    up = api.get("manager", f"/api/v1/inspections/rounds/{tomorrow}").json()
    assert up["outcome"] == "withdrawn" and up["closed_at"] is not None
    assert [c["state"] for c in up["checkpoints"]] == ["withdrawn"] * 3
    assert api.get("manager", f"/api/v1/inspections/rounds/{today}").json()["closed_at"] is None
    # today's closes as usual with its alerts; the withdrawn one never raises any
    assert close(engine, at(5, 17, 0)) == service.SweepResult(1, 3)
    assert close(engine, at(6, 18, 0)) == service.SweepResult(0, 0)
    with engine.connect() as conn:
        alerted = conn.execute(text("SELECT DISTINCT round_id FROM inspection_alerts")).scalars()
        assert list(alerted) == [today]
    assert generate(engine, at(6, 13, 0)) == []  # inactive: nothing new
    report = api.get("manager", "/api/v1/inspections/compliance",
                     params={"date_from": "2026-01-05", "date_to": "2026-01-06"}).json()
    assert [row["round_id"] for row in report["rounds"]] == [today]
    # a handset paired now is not sent the withdrawn round
    assert deliver(engine, at(6, 1, 0)) == 0


# --- telling handsets that a round was withdrawn -------------------------------------------------

def cancel_messages(engine) -> list[tuple[str, int, int]]:
    """(device, seq, round_id) of every round_cancel downlink, in queue order, each checked
    against down.round_cancel.json."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT device_id, seq, payload FROM device_downlink "
                                 "WHERE kind = 'round_cancel' ORDER BY id")).all()
    out = []
    for device, seq, payload in rows:
        protocol.validate("down", "round_cancel", payload)
        assert payload == {"v": 1, "seq": seq, "round_id": payload["round_id"],
                           "reason": "plan_deactivated"}
        out.append((device, seq, payload["round_id"]))
    return out


def test_withdrawn_rounds_are_cancelled_on_each_handset_that_was_sent_them_once(
        engine, api, world, sites, clock, second_tech):
    tech = api.user_ids["technician"]
    crew = make_crew(api, clock, "Crew W", None, None, members=[tech, second_tech])
    plan = world.plan([s["id"] for s in sites], crew_id=crew["id"])
    mine = add_device(engine, "hs-mine", tech, clock)
    theirs = add_device(engine, "hs-theirs", second_tech, clock)
    gone = add_device(engine, "hs-gone", tech, clock)
    today, tomorrow, after = sorted(generate(engine, at(5, 13, 0), ahead=timedelta(days=2)))
    assert len(round_messages(engine, mine)) == 3 and len(round_messages(engine, gone)) == 3
    late = add_device(engine, "hs-late", tech, clock)  # registered since: never sent a round
    too_big = add_device(engine, "hs-too-big", second_tech, clock)
    with engine.begin() as conn:
        conn.execute(text("UPDATE devices SET revoked_at = :t WHERE id = :d"),
                     {"t": clock.now(), "d": gone})
        # recorded as not sent (a round too large for one message): nothing to take back
        conn.execute(text("INSERT INTO inspection_round_deliveries (round_id, device_id, seq, "
                          "queued_at) VALUES (:r, :d, NULL, :t)"),
                     {"r": tomorrow, "d": too_big, "t": clock.now()})

    clock.set(at(5, 14, 0))  # today's window is under way: it is not withdrawn
    with Session(engine) as session:  # the withdrawal and its messages commit together or not
        service.set_plan_active(session, plan["id"], False, clock.now())
        session.rollback()
    assert cancel_messages(engine) == []
    r = api.patch("manager", f"/api/v1/inspections/plans/{plan['id']}", json={"active": False})
    assert r.status_code == 200, r.text
    # after each handset's three rounds, one cancel per (withdrawn round, handset), round order
    assert cancel_messages(engine) == [(mine, 4, tomorrow), (mine, 5, after),
                                       (theirs, 4, tomorrow), (theirs, 5, after)]
    with engine.connect() as conn:
        outcomes = dict(conn.execute(text("SELECT id, outcome FROM inspection_rounds")).all())
        assert outcomes == {today: None, tomorrow: "withdrawn", after: "withdrawn"}
        seqs = dict(conn.execute(text("SELECT id, downlink_seq FROM devices")).all())
        assert seqs[late] == 0 and seqs[too_big] == 0

    # deactivating again, or reactivating and deactivating, takes nothing back twice
    r = api.patch("manager", f"/api/v1/inspections/plans/{plan['id']}", json={"active": False})
    assert r.status_code == 200, r.text
    assert api.patch("manager", f"/api/v1/inspections/plans/{plan['id']}",
                     json={"active": True}).status_code == 200
    assert api.patch("manager", f"/api/v1/inspections/plans/{plan['id']}",
                     json={"active": False}).status_code == 200
    assert len(cancel_messages(engine)) == 4
    # the sweep sends the handsets that lacked it today's round, never a withdrawn one
    assert deliver(engine, clock.now()) == 2
    assert round_messages(engine, late) == [(late, 1, today)]
    assert round_messages(engine, too_big) == [(too_big, 1, today)]


def test_deactivating_a_plan_whose_rounds_reached_no_handset_queues_nothing(
        engine, api, world, sites, clock):
    plan = world.plan([sites[0]["id"]])
    assert len(generate(engine, at(5, 13, 0))) == 2  # no handset at all
    clock.set(at(5, 14, 0))
    assert api.patch("manager", f"/api/v1/inspections/plans/{plan['id']}",
                     json={"active": False}).status_code == 200
    assert cancel_messages(engine) == []
