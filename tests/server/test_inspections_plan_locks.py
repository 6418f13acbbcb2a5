"""Round generation racing a plan's deactivation, on the real PostgreSQL with two connections:
generation locks the plans it makes rounds of (FOR SHARE, id order) and re-checks ``active``, so
a deactivation either waits for the generating transaction and then withdraws the rounds it made
(cancelling them on the handsets they were sent to), or commits first and generation makes
nothing for that plan."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from server.inspections import service
from tests.server import inspections_support as support
from tests.server.inspections_support import World
from tests.server.test_inspections_ahead import (
    AHEAD,
    SITES,
    add_device,
    at,
    cancel_messages,
    round_messages,
)


@pytest.fixture
def world(api, settings, clock) -> World:
    return World(api, settings, clock)


@pytest.fixture
def sites(world) -> list[dict]:
    return [world.site(f"Station {i + 1} 站点", lon, lat) for i, (lon, lat) in enumerate(SITES)]


def rounds(engine) -> dict[tuple[int, date], tuple[int, str | None]]:
    """(plan, period) -> (round id, outcome)."""
    with engine.connect() as conn:
        return {(p, d): (i, o) for i, p, d, o in conn.execute(text(
            "SELECT id, plan_id, period_start, outcome FROM inspection_rounds"))}


def in_thread(fn, errors: list) -> threading.Thread:
    def run():
        try:
            fn()
        except BaseException as e:  # reported by the test, not lost in the thread
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t


def blocked_on_a_lock(engine, thread: threading.Thread, timeout: float = 10) -> bool:
    """True once a backend waits for a lock (the thread's: nothing else runs), False if the
    thread ended without ever waiting."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while thread.is_alive() and time.monotonic() < deadline:
            if conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one():
                return True
            conn.rollback()
            time.sleep(0.01)
    return False


def test_a_deactivation_waits_for_generation_and_withdraws_the_rounds_it_made(
        engine, api, world, sites, clock, monkeypatch):
    dev = add_device(engine, "hs-race", api.user_ids["technician"], clock)
    kept = world.plan([sites[0]["id"]])  # 07:00-17:00 UTC daily
    dropped = world.plan([sites[1]["id"], sites[2]["id"]])  # the higher id: locked second
    now = at(5, 13, 0)  # today's windows are under way; tomorrow's are made ahead
    assert len(support.generate(engine, now, AHEAD)) == 4  # the 5th and 6th of both, sent
    assert len(round_messages(engine, dev)) == 4

    # generation of the 7th is held after it has read (and locked) the plans, before any insert
    paused, release = threading.Event(), threading.Event()
    insert_round = service._insert_round

    def held(*args, **kwargs):
        if not paused.is_set():
            paused.set()
            release.wait(30)
        return insert_round(*args, **kwargs)

    monkeypatch.setattr(service, "_insert_round", held)
    created: list[int] = []
    errors: list[BaseException] = []

    def deactivate():
        with Session(engine) as session:
            service.set_plan_active(session, dropped["id"], False, now)
            session.commit()

    gen = in_thread(lambda: created.extend(support.generate(engine, now, timedelta(days=2))),
                    errors)
    try:
        assert paused.wait(10)
        deact = in_thread(deactivate, errors)
        # the deactivation must wait for the generating transaction, or it withdraws too early
        # and the round being made now stays with the handset
        blocked = blocked_on_a_lock(engine, deact)
    finally:
        release.set()
    gen.join(30)
    deact.join(30)
    assert errors == [] and not gen.is_alive() and not deact.is_alive()
    assert blocked
    got = rounds(engine)
    assert len(created) == 2 and sorted(created) == sorted(
        got[(p["id"], date(2026, 1, 7))][0] for p in (kept, dropped))
    assert {k: o for k, (_, o) in got.items()} == {
        (kept["id"], date(2026, 1, 5)): None, (kept["id"], date(2026, 1, 6)): None,
        (kept["id"], date(2026, 1, 7)): None,
        (dropped["id"], date(2026, 1, 5)): None,  # under way: finished as usual
        (dropped["id"], date(2026, 1, 6)): "withdrawn",
        (dropped["id"], date(2026, 1, 7)): "withdrawn"}  # the one made during the deactivation
    sixth, seventh = got[(dropped["id"], date(2026, 1, 6))][0], \
        got[(dropped["id"], date(2026, 1, 7))][0]
    assert [r for _, _, r in round_messages(engine, dev)][-2:] == [
        got[(kept["id"], date(2026, 1, 7))][0], seventh]  # seq 5, 6
    assert cancel_messages(engine) == [(dev, 7, sixth), (dev, 8, seventh)]
    # nothing left to send or to withdraw; no alert will come for the withdrawn rounds
    assert support.close(engine, at(8, 18, 0)) == service.SweepResult(4, 5)
    with engine.connect() as conn:
        alerted = set(conn.execute(text("SELECT round_id FROM inspection_alerts")).scalars())
    assert sixth not in alerted and seventh not in alerted


def test_generation_waits_for_a_deactivation_under_way_and_makes_nothing_for_its_plan(
        engine, api, world, sites, clock):
    dev = add_device(engine, "hs-race-2", api.user_ids["technician"], clock)
    kept = world.plan([sites[0]["id"]])
    dropped = world.plan([sites[1]["id"]])
    now = at(5, 13, 0)
    created: list[int] = []
    errors: list[BaseException] = []
    with Session(engine) as session:
        service.set_plan_active(session, dropped["id"], False, now)  # locked, not committed
        gen = in_thread(lambda: created.extend(support.generate(engine, now, AHEAD)), errors)
        blocked = blocked_on_a_lock(engine, gen)
        session.commit()
    gen.join(30)
    assert errors == [] and not gen.is_alive()
    assert blocked  # it waited for the deactivation instead of acting on what it had read
    got = rounds(engine)
    assert set(got) == {(kept["id"], date(2026, 1, 5)), (kept["id"], date(2026, 1, 6))}
    assert sorted(created) == sorted(i for i, _ in got.values())
    assert [r for _, _, r in round_messages(engine, dev)] == sorted(created)
    assert cancel_messages(engine) == []
    # reactivated, the plan gets its rounds at the next sweep
    with Session(engine) as session:
        service.set_plan_active(session, dropped["id"], True, now)
        session.commit()
    assert len(support.generate(engine, now, AHEAD)) == 2
