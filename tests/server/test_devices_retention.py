"""Retention of the handset link's tables (server/devices/retention.py) on the real database:
exactly the old rows the rules allow go; the exactly-once keys a handset may still need stay."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from mobile_app.link import protocol
from server.devices import downlink, retention
from server.devices.retention import RetentionConfig
from tests.support import cli_env

DAY = timedelta(days=1)
SMALL = RetentionConfig(message_days=30, downlink_days=30, dead_letter_days=90, batch=10)


@pytest.fixture
def sessions(engine):
    return sessionmaker(engine)


def add_device(engine, users, device_id: str, *, revoked: bool = False, acked_seq: int = 0,
               downlink_seq: int = 0) -> str:
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO devices (id, user_id, name, password_hash, created_at, created_by, "
            "revoked_at, downlink_seq, acked_seq) VALUES (:id, :u, :id, 'x', now(), :u, "
            "CASE WHEN :revoked THEN now() END, :top, :acked)"),
            {"id": device_id, "u": users["technician"], "revoked": revoked, "top": downlink_seq,
             "acked": acked_seq})
    return device_id


def add_message(engine, device_id: str, at: datetime, *, applied: bool = True) -> int:
    with engine.begin() as conn:
        return conn.scalar(text(
            "INSERT INTO device_messages (device_id, msg_id, kind, received_at, payload, result, "
            "applied_at) VALUES (:d, gen_random_uuid(), 'positions', :at, '{}', 'accepted', "
            "CASE WHEN :applied THEN CAST(:at AS timestamptz) END) RETURNING id"),
            {"d": device_id, "at": at, "applied": applied})


def add_downlink(engine, device_id: str, seq: int, at: datetime) -> int:
    with engine.begin() as conn:
        return conn.scalar(text(
            "INSERT INTO device_downlink (device_id, seq, kind, payload, created_at, published_at) "
            "VALUES (:d, :s, 'cancel', '{}', :at, :at) RETURNING id"),
            {"d": device_id, "s": seq, "at": at})


def add_letter(engine, at: datetime, reason: str = "malformed_json") -> int:
    with engine.begin() as conn:
        return conn.scalar(text(
            "INSERT INTO device_dead_letters (received_at, topic, device_id, reason, detail, "
            "payload) VALUES (:at, 'crewline/v1/devices/x/up/positions', 'x', :r, 'bad', "
            "'\\xff'::bytea) RETURNING id"), {"at": at, "r": reason})


def ids(engine, table: str) -> set[int]:
    with engine.begin() as conn:
        return set(conn.scalars(text(f"SELECT id FROM {table}")))


def test_uplink_goes_only_when_applied_old_and_the_device_talked_long_after(
        engine, users, clock, sessions):
    now = clock.now()
    talker = add_device(engine, users, "hs-talker")
    quiet = add_device(engine, users, "hs-quiet")
    revoked = add_device(engine, users, "hs-revoked", revoked=True)
    gone = {
        add_message(engine, talker, now - 60 * DAY),
        add_message(engine, talker, now - 35 * DAY),  # heard from 34 days after it
        add_message(engine, revoked, now - 40 * DAY),  # revoked: its uplink is dead-lettered
    }
    talker_pending = add_message(engine, talker, now - 40 * DAY, applied=False)  # not applied
    talker_late = add_message(engine, talker, now - 30 * DAY - timedelta(hours=12))  # 29.5 days
    talker_young = add_message(engine, talker, now - 20 * DAY)
    talker_newest = add_message(engine, talker, now - DAY)
    # went quiet 45 days ago: the handset may still hold these unacked in its outbox
    quiet_old = {add_message(engine, quiet, now - 60 * DAY), add_message(engine, quiet,
                                                                        now - 45 * DAY)}
    revoked_young = add_message(engine, revoked, now - 10 * DAY)
    revoked_pending = add_message(engine, revoked, now - 40 * DAY, applied=False)
    kept = {talker_pending, talker_late, talker_young, talker_newest, *quiet_old, revoked_young,
            revoked_pending}
    stats = retention.run(sessions, now, SMALL)
    assert (stats.uplink_deleted, stats.complete) == (3, True)
    assert ids(engine, "device_messages") == kept
    assert not gone & ids(engine, "device_messages")
    with engine.begin() as conn:
        seen = dict(conn.execute(text(
            "SELECT device_id, last_received_at FROM device_uplink_seen")).all())
    assert seen == {talker: now - DAY, quiet: now - 45 * DAY, revoked: now - 10 * DAY}

    again = retention.run(sessions, now, SMALL)  # idempotent
    assert (again.uplink_deleted, again.seen_scanned) == (0, 0)
    assert ids(engine, "device_messages") == kept

    # the quiet handset comes back and talks for 31 days: now its old rows may go too
    back = add_message(engine, quiet, now + 31 * DAY)
    stats = retention.run(sessions, now + 32 * DAY, SMALL)
    assert stats.uplink_deleted == len(quiet_old) + 1  # and the revoked device's young one
    assert ids(engine, "device_messages") == {talker_pending, talker_late, talker_young,
                                              talker_newest, revoked_pending, back}


def test_a_fresh_row_is_not_taken_as_heard_from_until_it_settled(engine, users, clock, sessions):
    """Rows younger than SETTLE may still sit behind an uncommitted bridge transaction with a
    lower id: the seen scan stops before them, and takes them on a later run."""
    now = clock.now()
    dev = add_device(engine, users, "hs-fresh")
    add_message(engine, dev, now - 10 * DAY)
    add_message(engine, dev, now - timedelta(minutes=1))
    stats = retention.run(sessions, now, SMALL)
    assert stats.seen_scanned == 1
    with engine.begin() as conn:
        assert conn.scalar(text("SELECT last_received_at FROM device_uplink_seen")) == \
            now - 10 * DAY
    stats = retention.run(sessions, now + timedelta(minutes=10), SMALL)
    assert stats.seen_scanned == 1
    with engine.begin() as conn:
        assert conn.scalar(text("SELECT last_received_at FROM device_uplink_seen")) == \
            now - timedelta(minutes=1)


def test_a_redelivery_of_a_kept_row_is_still_only_a_duplicate(engine, users, clock, settings,
                                                             app):
    """End to end through the bridge's intake: a handset away for 60 days resends an event whose
    ack it never got; retention kept its key, so it is acked again and not applied twice."""
    from server.devices.bridge import Bridge

    dev = add_device(engine, users, "hs-holiday")
    bridge = Bridge(settings, app.state.sessionmaker, clock)
    topic = protocol.up_topic(dev, "ack")
    first = json.dumps(protocol.uplink("ack", clock.now(), seq=0)).encode()
    assert bridge.handle(topic, first).status == "accepted"
    clock.advance(days=60)
    retention.run(app.state.sessionmaker, clock.now(), SMALL)
    assert bridge.handle(topic, first).status == "duplicate"
    # back at work: it talks for 31 days; then the old key goes (the handset had every chance
    # to get its ack: it resends unacked events every 30 s while connected)
    for _ in range(32):
        clock.advance(days=1)
        assert bridge.handle(topic, json.dumps(protocol.uplink(
            "ack", clock.now(), seq=0)).encode()).status == "accepted"
    clock.advance(hours=1)
    stats = retention.run(app.state.sessionmaker, clock.now(), SMALL)
    assert stats.uplink_deleted == 1 + 1  # the holiday event and the first day back
    with engine.begin() as conn:
        msg_ids = set(conn.scalars(text("SELECT msg_id::text FROM device_messages")))
    assert json.loads(first)["msg_id"] not in msg_ids and len(msg_ids) == 31


def test_downlink_goes_only_when_acknowledged_or_revoked(engine, users, clock, sessions):
    now = clock.now()
    dev = add_device(engine, users, "hs-dl", acked_seq=3, downlink_seq=6)
    revoked = add_device(engine, users, "hs-dl-revoked", revoked=True, downlink_seq=3)
    rows = {seq: add_downlink(engine, dev, seq, now - 40 * DAY) for seq in range(1, 6)}
    rows[6] = add_downlink(engine, dev, 6, now - 10 * DAY)
    young_acked = add_downlink(engine, revoked, 3, now - 5 * DAY)
    old_revoked = {add_downlink(engine, revoked, s, now - 40 * DAY) for s in (1, 2)}
    stats = retention.run(sessions, now, SMALL)
    assert stats.downlink_deleted == 3 + 2
    # seq 4 and 5 are old but not acknowledged: a resync must still find them, without a hole
    assert ids(engine, "device_downlink") == {rows[4], rows[5], rows[6], young_acked}
    assert not old_revoked & ids(engine, "device_downlink")
    with sessions() as session:
        assert downlink.record_ack(session, dev, 3, True, now) == 3
        session.commit()
        assert [r[2] for r in downlink.unpublished(session)] == [4, 5, 6]
    assert retention.run(sessions, now, SMALL).downlink_deleted == 0


def test_dead_letters_go_after_their_own_period_in_batches(engine, clock, sessions):
    now = clock.now()
    old = {add_letter(engine, now - (91 + i % 5) * DAY) for i in range(35)}  # 4 chunks of 10
    kept = {add_letter(engine, now - 89 * DAY), add_letter(engine, now - DAY)}
    stats = retention.run(sessions, now, SMALL)
    assert stats.dead_letters_deleted == len(old) == 35
    assert ids(engine, "device_dead_letters") == kept
    assert retention.run(sessions, now, SMALL).dead_letters_deleted == 0


def test_many_chunks_and_a_time_budget_that_runs_out(engine, users, clock, sessions):
    now = clock.now()
    dev = add_device(engine, users, "hs-many")
    for i in range(45):
        add_message(engine, dev, now - (60 * DAY) + i * timedelta(minutes=1))
    add_message(engine, dev, now - DAY)
    ticks = iter(range(1000))

    def slow() -> float:  # every check of the clock costs a "second"
        return float(next(ticks))

    stats = retention.run(sessions, now, SMALL, max_seconds=9, monotonic=slow)
    assert not stats.complete and 0 < stats.uplink_deleted < 45
    stats = retention.run(sessions, now, SMALL)
    assert stats.complete
    with engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM device_messages")) == 1


def test_the_worker_runs_retention_periodically(settings):
    from server.jobs import make_app

    job_app = make_app(settings.libpq_url)
    periodic = {t.task.name for t in job_app.periodic_registry.periodic_tasks.values()}
    assert "devices:retention" in periodic
    assert settings.device_retention_cron == "17 * * * *"
    assert RetentionConfig.from_settings(settings) == RetentionConfig(30, 30, 90, 5000)


def test_the_retention_command_prints_what_it_deleted(engine, settings, tmp_path):
    now = datetime.now(UTC)
    add_letter(engine, now - 100 * DAY)
    add_letter(engine, now - DAY)
    env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="test",
                  CREWLINE_DEVICE_DEAD_LETTER_RETENTION_DAYS="50")
    proc = subprocess.run([sys.executable, "-m", "server.cli", "devices", "retention"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["dead_letters_deleted"] == 1 and out["complete"] is True
    assert len(ids(engine, "device_dead_letters")) == 1
