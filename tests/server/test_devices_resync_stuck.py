"""A handset that lost its link state (outbox gone, last seq back to 0) but kept its credentials
asks for a resync from 0 after retention pruned the acknowledged downlink: the hole can never be
filled. The server republishes what it has, flags the device once (one warning, not one per
retry), the devices API shows it, and the next ack without a hole clears it (docs/operations.md
"Handset data retention") — on the real PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from server.devices import downlink, retention
from server.devices.retention import RetentionConfig
from server.models import Device

DAY = timedelta(days=1)
CANCEL = {"ticket_id": 7, "reason": "unassigned"}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict]] = []

    def warning(self, event: str, **kw) -> None:
        self.events.append(("warning", event, kw))

    def info(self, event: str, **kw) -> None:
        self.events.append(("info", event, kw))

    def named(self, event: str) -> list[tuple[str, str, dict]]:
        return [e for e in self.events if e[1] == event]


@pytest.fixture
def logs(monkeypatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(downlink, "log", recorder)
    return recorder


def add_device(engine, device_id: str, user_id: int, at: datetime, messages: int) -> str:
    with Session(engine) as session:
        session.add(Device(id=device_id, user_id=user_id, name=device_id, password_hash="x",
                           created_at=at, created_by=user_id))
        session.flush()
        for _ in range(messages):
            downlink.enqueue(session, device_id, "cancel", CANCEL, at)
        session.commit()
    return device_id


def ack(engine, device_id: str, seq: int, resync: bool, now: datetime) -> int:
    with Session(engine) as session:
        n = downlink.record_ack(session, device_id, seq, resync, now)
        session.commit()
    return n


def flag(engine, device_id: str) -> tuple:
    with engine.begin() as conn:
        return tuple(conn.execute(text("SELECT resync_stuck_at, resync_stuck_seq FROM devices "
                                       "WHERE id = :d"), {"d": device_id}).one())


def test_a_resync_into_pruned_downlink_is_flagged_once_shown_and_cleared(
        api, engine, users, clock, logs) -> None:
    now = clock.now()
    dev = add_device(engine, "hs-lost", users["technician"], now - 40 * DAY, 8)
    assert ack(engine, dev, 6, False, now - 39 * DAY) == 0
    stats = retention.run(sessionmaker(engine), now, RetentionConfig(batch=10))
    assert stats.downlink_deleted == 6  # 1..6 acknowledged and old; 7 and 8 stay

    # the handset lost its outbox: it asks from 0, every ~10 s, for ever
    assert ack(engine, dev, 0, True, now) == 2  # what is stored is still republished
    with Session(engine) as session:
        assert [r[2] for r in downlink.unpublished(session)] == [7, 8]
    assert flag(engine, dev) == (now, 0)
    assert logs.events == [("warning", "devices.resync_stuck",
                            {"device_id": dev, "asked_seq": 0, "first_stored_seq": 7,
                             "downlink_seq": 8})]
    for i in range(1, 4):
        assert ack(engine, dev, 0, True, now + i * 10 * timedelta(seconds=1)) == 2
    assert flag(engine, dev) == (now, 0)  # since the first one
    assert len(logs.events) == 1  # once per transition, not per retry

    for role in ("dispatcher", "manager", "admin"):
        r = api.get(role, f"/api/v1/devices/{dev}")
        assert r.status_code == 200, r.text
        assert r.json()["link_state"] == "needs_repair"
        assert datetime.fromisoformat(r.json()["needs_repair_since"]) == now
    listed = api.get("dispatcher", "/api/v1/devices/technicians").json()
    (shown,) = [d for t in listed for d in t["devices"] if d["id"] == dev]
    assert shown["link_state"] == "needs_repair"
    (shown,) = [d for d in api.get("manager", "/api/v1/devices").json() if d["id"] == dev]
    assert shown["link_state"] == "needs_repair"
    assert api.get("technician", f"/api/v1/devices/{dev}").status_code == 403

    # a resync the server can satisfy clears it
    assert ack(engine, dev, 6, True, now + DAY) == 2
    assert flag(engine, dev) == (None, None)
    assert logs.named("devices.resync_recovered") == [
        ("info", "devices.resync_recovered", {"device_id": dev, "acked_seq": 6})]
    r = api.get("dispatcher", f"/api/v1/devices/{dev}").json()
    assert (r["link_state"], r["needs_repair_since"]) == ("ok", None)

    # stuck again (a new transition, a new warning); then a plain ack clears it too
    ack(engine, dev, 0, True, now + 2 * DAY)
    assert flag(engine, dev) == (now + 2 * DAY, 0)
    assert len(logs.named("devices.resync_stuck")) == 2
    ack(engine, dev, 8, False, now + 2 * DAY)
    assert flag(engine, dev) == (None, None)
    assert len(logs.named("devices.resync_recovered")) == 2


def test_everything_pruned_and_nothing_stored_is_a_hole_too(engine, users, clock, logs) -> None:
    now = clock.now()
    dev = add_device(engine, "hs-empty", users["technician"], now - 40 * DAY, 4)
    ack(engine, dev, 4, False, now - 39 * DAY)
    assert retention.run(sessionmaker(engine), now, RetentionConfig()).downlink_deleted == 4
    assert ack(engine, dev, 4, True, now) == 0  # up to date: nothing to send, no hole
    assert flag(engine, dev) == (None, None)
    assert ack(engine, dev, 2, True, now) == 0  # 3 and 4 are gone
    assert flag(engine, dev) == (now, 2)
    assert [e[1] for e in logs.events] == ["devices.resync_stuck"]
    assert logs.events[0][2]["first_stored_seq"] is None


def test_a_resync_with_everything_stored_never_flags(api, engine, users, clock, logs) -> None:
    now = clock.now()
    dev = add_device(engine, "hs-fine", users["technician"], now - 40 * DAY, 5)
    fresh = add_device(engine, "hs-fresh", users["technician"], now, 0)
    assert ack(engine, fresh, 0, True, now) == 0  # a new handset's first connection
    for seq, resync in ((0, True), (3, False), (0, True), (3, True), (5, True), (5, False)):
        ack(engine, dev, seq, resync, now)
    # retention ran, but kept every row a resync from acked_seq may need
    retention.run(sessionmaker(engine), now, RetentionConfig())
    assert ack(engine, dev, 5, True, now) == 0
    assert flag(engine, dev) == flag(engine, fresh) == (None, None)
    assert logs.events == []
    for d in api.get("dispatcher", "/api/v1/devices").json():
        assert (d["link_state"], d["needs_repair_since"]) == ("ok", None)
