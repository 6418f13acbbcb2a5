"""The handset client library against the real Mosquitto and the real bridge: nothing lost,
nothing twice, across handset restarts, bridge outages and a long offline spell."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import text

from mobile_app.link import protocol
from mobile_app.link.client import HandsetLink, Outbox
from server.devices.bridge import Bridge
from tests.server import mqtt_support
from tests.server.mqtt_support import connect, wait_for

app, broker, mqtt_settings = mqtt_support.app, mqtt_support.broker, mqtt_support.mqtt_settings


@pytest.fixture
def device(api, broker):
    r = api.post("dispatcher", "/api/v1/devices",
                 json={"user_id": api.user_ids["technician"], "name": "Van 7"})
    assert r.status_code == 201, r.text
    m = r.json()["mqtt"]
    assert api.post("manager", "/api/v1/crews", json={
        "name": "Crew 7", "members": [api.user_ids["technician"]]}).status_code == 201
    return m


@pytest.fixture
def bridge(mqtt_settings, app, clock):
    started: list[Bridge] = []

    def start() -> Bridge:
        b = Bridge(mqtt_settings, app.state.sessionmaker, clock)
        b.start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


@pytest.fixture
def links(broker, device, clock, tmp_path):
    made: list[HandsetLink] = []

    def make(**kw) -> HandsetLink:
        kw.setdefault("now", clock.now)
        link = HandsetLink("127.0.0.1", broker.bound_port, device["username"], device["password"],
                           tmp_path / "outbox.sqlite", **kw)
        made.append(link)
        return link

    yield make
    for link in made:
        if not link._stopping.is_set():
            link.stop()


def fix(clock, i: int = 0) -> list[dict]:
    return [{"lon": 24.9384 + i * 1e-5, "lat": 60.1699, "at": clock.now().isoformat()}]


def stored_ids(engine, kind: str = "positions") -> list[str]:
    """Stored uplink ids of one kind (the link also sends ``ack`` events of its own)."""
    with engine.begin() as conn:
        return list(conn.scalars(text("SELECT msg_id::text FROM device_messages WHERE kind = :k"),
                                 {"k": kind}))


def test_events_wait_in_the_outbox_until_acked(bridge, links, clock, engine) -> None:
    link = links()
    link.start()
    wait_for(link.connected.is_set)
    # no bridge yet: published, never acked, so kept
    ids = [link.send("positions", fixes=fix(clock, i)) for i in range(3)]
    time.sleep(0.5)
    assert [m for m, kind, _ in link.outbox.pending() if kind == "positions"] == ids

    bridge()
    link._flush()  # what the resend timer and every reconnect do
    wait_for(lambda: len(link.outbox) == 0)
    assert sorted(stored_ids(engine)) == sorted(ids)


def test_offline_spell_and_handset_restart_lose_nothing(bridge, links, broker, clock,
                                                        engine) -> None:
    bridge()
    # the handset is offline (never connected): 500 events queue durably
    offline = links()
    ids = [offline.send("positions", fixes=fix(clock, i)) for i in range(500)]
    assert len(offline.outbox) == 500
    offline.outbox.close()  # the app is killed

    back = links()  # the app starts again with the same outbox file
    assert len(back.outbox) == 500
    back.start()
    wait_for(lambda: len(back.outbox) == 0, timeout=60)
    stored = stored_ids(engine)
    assert len(stored) == len(set(stored)) and set(stored) == set(ids)
    def applied() -> int:
        with engine.begin() as conn:
            return conn.scalar(text("SELECT count(*) FROM crew_positions"))

    wait_for(lambda: applied() == 500)


def test_duplicates_and_broker_restart_are_harmless(bridge, links, broker, clock, engine) -> None:
    bridge()
    link = links(resend_after=0.2)  # aggressive resends: duplicates on the wire
    link.start()
    wait_for(link.connected.is_set)
    ids = [link.send("positions", fixes=fix(clock, i)) for i in range(50)]
    broker.stop()  # mid-stream
    more = [link.send("positions", fixes=fix(clock, 100 + i)) for i in range(20)]
    broker.start()
    wait_for(lambda: len(link.outbox) == 0, timeout=60)
    stored = stored_ids(engine)
    assert len(stored) == len(set(stored)) and set(stored) == set(ids + more)


def test_rejected_events_leave_the_outbox_and_are_reported(bridge, links, api, clock) -> None:
    bridge()
    rejected: list = []
    link = links(on_rejected=lambda msg_id, error: rejected.append((msg_id, error["code"])))
    link.start()
    wait_for(link.connected.is_set)
    msg_id = link.send("status", ticket_id=4242, status="accepted", at=clock.now().isoformat())
    wait_for(lambda: rejected)
    assert rejected == [(msg_id, "not_your_job")]
    wait_for(lambda: len(link.outbox) == 0)  # (the link's own resync request is acked too)
    with pytest.raises(protocol.ProtocolError):
        link.send("positions", fixes=[])  # invalid at the source, nothing queued
    with pytest.raises(ValueError):
        link.send("presence", state="online")
    assert len(link.outbox) == 0


def test_downlink_sequence_persistent_session_and_gaps(broker, device, links) -> None:
    got: list[int] = []
    gaps: list[tuple[int, int]] = []
    lock = threading.Lock()

    def on_downlink(kind, body):
        with lock:
            got.append(body["seq"])

    link = links(on_downlink=on_downlink, on_gap=lambda e, g: gaps.append((e, g)))
    link.start()
    wait_for(link.connected.is_set)
    link.stop()  # away: the broker keeps the session and queues QoS 1 downlink

    srv, rc = connect(broker, broker.server_user, broker.server_password)
    assert not rc.is_failure
    topic = protocol.down_topic(device["username"], "work_order")

    def order(seq: int) -> bytes:
        return protocol.encode("down", "work_order", {
            "v": 1, "seq": seq, "ticket_id": 7, "revision": seq, "status": "assigned",
            "category": "repair", "priority": "high", "summary": "leak", "description": "leak",
            "address": None, "location": None, "customer_name": None, "customer_phone": None,
            "due_at": None, "assigned_at": "2026-01-05T08:00:00+00:00"})

    for seq in (1, 2, 2, 4):  # a duplicate and a gap
        srv.publish(topic, order(seq))
    srv.publish(protocol.down_topic(device["username"], "cancel"), b"not json")  # ignored

    back = links(on_downlink=on_downlink, on_gap=lambda e, g: gaps.append((e, g)))
    back.start()
    wait_for(lambda: gaps)
    time.sleep(0.3)
    # 4 is not taken out of order: the link asks for everything after 2 again and acknowledges
    # 2 (no server here to answer: the requests wait in the outbox, after the resync from 0 of
    # the very first connection, when the broker had no session yet)
    assert got == [1, 2] and gaps == [(3, 4)] and back.last_seq == 2
    wait_for(lambda: len(back.outbox) == 3)
    acks = [json.loads(p) for _, kind, p in back.outbox.pending() if kind == "ack"]
    assert sorted((a["seq"], a.get("resync", False)) for a in acks) == [
        (0, True), (2, False), (2, True)]
    back.stop()
    assert Outbox(back.outbox_path).get_state("last_seq") == "2"  # survives a restart


def test_presence_is_retained_and_clean_stop_says_offline(bridge, links, broker, device,
                                                          engine) -> None:
    bridge()
    link = links()
    link.start()
    presence = "SELECT presence FROM devices WHERE id = :d"

    def state():
        with engine.begin() as conn:
            return conn.scalar(text(presence), {"d": device["username"]})

    wait_for(lambda: state() == "online")
    link.stop()
    wait_for(lambda: state() == "offline")
    # the retained state is what a newcomer sees
    srv, _ = connect(broker, broker.server_user, broker.server_password)
    srv.subscribe(protocol.up_topic(device["username"], "presence"))
    msg = srv.next_message()
    assert msg is not None and msg.retain and json.loads(msg.payload)["state"] == "offline"


def test_a_handset_clock_an_hour_fast_learns_the_servers_time(bridge, links, clock,
                                                              engine) -> None:
    """The acks carry the server's clock; the link corrects its own with the median offset, so
    fixes stamped with link.server_now() are not refused as being from the future."""
    from datetime import timedelta

    bridge()
    fast = links(now=lambda: clock.now() + timedelta(hours=1))
    fast.start()
    wait_for(fast.connected.is_set)
    stamped_raw = fast.now()
    wrong = fast.send("positions", fixes=[{"lon": 24.9384, "lat": 60.1699,
                                           "at": stamped_raw.isoformat()}])
    wait_for(lambda: fast.clock_offset is not None)
    assert fast.clock_offset == pytest.approx(-3600, abs=5)
    assert abs((fast.server_now() - clock.now()).total_seconds()) < 5
    right = fast.send("positions", fixes=[{"lon": 24.9385, "lat": 60.1699,
                                           "at": fast.server_now().isoformat()}])
    wait_for(lambda: len(fast.outbox) == 0)

    def result(msg_id):
        with engine.begin() as conn:
            return conn.execute(text("SELECT result, error->>'code' FROM device_messages "
                                     "WHERE msg_id = :m AND applied_at IS NOT NULL"),
                                {"m": msg_id}).first()

    wait_for(lambda: result(wrong) and result(right))
    assert tuple(result(wrong)) == ("rejected", "invalid_input")  # a fix "from the future"
    assert tuple(result(right)) == ("accepted", None)
    fast.stop()
    assert float(Outbox(fast.outbox_path).get_state("clock_offset")) == pytest.approx(-3600, abs=5)
