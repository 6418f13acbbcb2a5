"""Faults against the real Mosquitto, the real bridge and the real handset library: broker
restarts, bridge restarts, long offline spells, duplicates, lost downlink — and afterwards every
uplink event persisted exactly once (sets of msg_ids) and every downlink message handled once, in
order."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from mobile_app.link import protocol
from mobile_app.link.client import HandsetLink
from server.devices import downlink
from server.devices.bridge import Bridge
from tests.server import mqtt_support
from tests.server.mqtt_support import connect, wait_for

app, broker, mqtt_settings = mqtt_support.app, mqtt_support.broker, mqtt_support.mqtt_settings


@pytest.fixture
def device(api, broker):
    r = api.post("dispatcher", "/api/v1/devices",
                 json={"user_id": api.user_ids["technician"], "name": "Van 9"})
    assert r.status_code == 201, r.text
    assert api.post("manager", "/api/v1/crews", json={
        "name": "Crew 9", "members": [api.user_ids["technician"]]}).status_code == 201
    return r.json()["mqtt"]


@pytest.fixture
def bridges(mqtt_settings, app, clock):
    started: list[Bridge] = []

    def start(**kw) -> Bridge:
        b = Bridge(mqtt_settings, app.state.sessionmaker, clock, poll_interval=0.5, **kw)
        b.start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


class Handset:
    """A HandsetLink plus what its app saw."""

    def __init__(self, link: HandsetLink) -> None:
        self.link = link
        self.seqs: list[int] = []
        self.gaps: list[tuple[int, int]] = []


@pytest.fixture
def handsets(broker, device, clock, tmp_path):
    made: list[Handset] = []

    def make(name: str = "outbox", **kw) -> Handset:
        h: Handset

        def on_downlink(kind, body):
            h.seqs.append(body["seq"])

        link = HandsetLink("127.0.0.1", broker.bound_port, device["username"], device["password"],
                           tmp_path / f"{name}.sqlite", now=clock.now, on_downlink=on_downlink,
                           on_gap=lambda e, g: h.gaps.append((e, g)), **kw)
        h = Handset(link)
        made.append(h)
        return h

    yield make
    for h in made:
        if not h.link._stopping.is_set():
            h.link.stop()


def fix(clock, i: int) -> list[dict]:
    return [{"lon": 24.9384 + (i % 100) * 1e-5, "lat": 60.1699, "at": clock.now().isoformat()}]


def stored(engine, kind: str = "positions") -> list[str]:
    with engine.begin() as conn:
        return list(conn.scalars(text("SELECT msg_id::text FROM device_messages WHERE kind = :k"),
                                 {"k": kind}))


def scalar(engine, sql: str, **params):
    with engine.begin() as conn:
        return conn.scalar(text(sql), params)


def enqueue(app, device_id: str, n: int, clock, first_ticket: int = 1) -> list[int]:
    with app.state.sessionmaker() as session:
        seqs = [downlink.enqueue(session, device_id, "cancel",
                                 {"ticket_id": first_ticket + i, "reason": "unassigned"},
                                 clock.now()) for i in range(n)]
        session.commit()
    return seqs


def test_uplink_exactly_once_through_broker_and_bridge_restarts(
        bridges, handsets, broker, clock, engine) -> None:
    """2,000 events stream out while the broker restarts and the bridge is replaced; a raw
    client replays some of them on top. Every msg_id is stored once, every fix applied once."""
    first = bridges()
    h = handsets(resend_after=1.0)
    h.link.start()
    wait_for(h.link.connected.is_set)
    sent: list[str] = []

    def produce() -> None:
        for i in range(2000):
            sent.append(h.link.send("positions", fixes=fix(clock, i)))
            if i % 50 == 0:
                time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    wait_for(lambda: len(sent) >= 400, timeout=60)
    broker.stop()  # mid-stream: the handset keeps queueing durably
    time.sleep(0.5)
    broker.start()
    wait_for(lambda: len(sent) >= 1200, timeout=60)
    first.stop()  # the bridge dies mid-stream (its in-memory queue is lost)
    bridges()
    producer.join(120)
    assert len(sent) == 2000
    # duplicated deliveries on top: a stray copy of already-sent events
    srv, _ = connect(broker, broker.server_user, broker.server_password)
    for _, kind, payload in h.link.outbox.pending()[:20]:
        srv.publish(protocol.up_topic(h.link.device_id, kind), payload)
    wait_for(lambda: len(h.link.outbox) == 0, timeout=180)
    got = stored(engine)
    assert len(got) == len(set(got)) == 2000 and set(got) == set(sent)
    wait_for(lambda: scalar(engine, "SELECT count(*) FROM device_messages WHERE applied_at "
                                    "IS NULL") == 0, timeout=60)
    assert scalar(engine, "SELECT count(*) FROM crew_positions") == 2000


def test_thousands_queued_offline_then_reconnect(bridges, handsets, clock, engine) -> None:
    bridges()
    offline = handsets()  # never connects: a basement
    sent = [offline.link.send("positions", fixes=fix(clock, i)) for i in range(3000)]
    assert len(offline.link.outbox) == 3000
    offline.link.start()
    wait_for(lambda: len(offline.link.outbox) == 0, timeout=240)
    got = stored(engine)
    assert len(got) == len(set(got)) and set(got) == set(sent)


def test_downlink_waits_for_an_offline_handset_and_arrives_in_order(
        app, bridges, handsets, device, clock, engine) -> None:
    h = handsets()
    h.link.start()
    wait_for(h.link.connected.is_set)
    h.link.stop()  # away; the broker keeps its session
    b = bridges()
    seqs = enqueue(app, device["username"], 120, clock)
    assert seqs == list(range(1, 121))
    # published into the waiting session, confirmed by the broker
    wait_for(lambda: scalar(engine, "SELECT count(*) FROM device_downlink WHERE published_at IS "
                                    "NOT NULL") == 120, timeout=30)
    assert b.is_publisher.is_set()
    back = handsets()
    back.link.start()
    wait_for(lambda: back.link.last_seq == 120, timeout=30)
    assert back.seqs == list(range(1, 121)) and back.gaps == []
    # the handset acknowledged them (uplink ack), the server recorded it
    wait_for(lambda: scalar(engine, "SELECT acked_seq FROM devices WHERE id = :d",
                            d=device["username"]) == 120)


def test_a_gap_triggers_a_resync_that_repairs_it(app, bridges, handsets, device, clock,
                                                 engine) -> None:
    h = handsets()
    h.link.start()
    wait_for(h.link.connected.is_set)
    enqueue(app, device["username"], 10, clock)
    # seqs 3 and 4 were "published" but lost on the way (a broker that crashed before saving)
    with engine.begin() as conn:
        conn.execute(text("UPDATE device_downlink SET published_at = now() WHERE seq IN (3, 4)"))
    bridges()
    wait_for(lambda: h.link.last_seq == 10, timeout=30)
    assert h.seqs == list(range(1, 11))  # each handled once, in order
    assert h.gaps and h.gaps[0] == (3, 5)
    with engine.begin() as conn:
        resyncs = conn.execute(text("SELECT payload->>'seq' FROM device_messages WHERE kind = "
                                    "'ack' AND (payload->>'resync')::boolean")).scalars().all()
    assert "2" in resyncs


def test_downlink_survives_a_broker_restart_and_a_lost_session(
        app, bridges, handsets, broker, device, clock, engine) -> None:
    b = bridges()
    h = handsets()
    h.link.start()
    wait_for(h.link.connected.is_set)
    enqueue(app, device["username"], 100, clock)
    broker.stop()  # mid-stream
    enqueue(app, device["username"], 100, clock, first_ticket=101)  # while it is down
    broker.start()
    wait_for(lambda: h.link.last_seq == 200, timeout=60)
    assert h.seqs == list(range(1, 201))
    wait_for(lambda: scalar(engine, "SELECT count(*) FROM device_downlink WHERE published_at "
                                    "IS NULL") == 0, timeout=30)

    # the broker forgets everything (persistence wiped): the handset's session is gone, so it
    # asks for a resync when it reconnects and gets what was sent meanwhile
    h.link.stop()
    b.stop()
    broker.kill()
    for f in broker.data.iterdir():
        f.unlink()
    broker.start()
    bridges()
    enqueue(app, device["username"], 5, clock, first_ticket=500)
    wait_for(lambda: scalar(engine, "SELECT count(*) FROM device_downlink WHERE published_at "
                                    "IS NULL") == 0, timeout=30)  # into the void
    back = handsets()
    back.link.start()
    wait_for(lambda: back.link.last_seq == 205, timeout=30)
    assert back.seqs == list(range(201, 206))


def test_one_downlink_publisher_at_a_time_and_failover(app, bridges, handsets, device, clock,
                                                       engine) -> None:
    """Two bridges: exactly one holds the publisher lock; when it stops, the other takes over
    and the downlink keeps flowing, in order, each seq handled once."""
    first, second = bridges(), bridges()
    wait_for(lambda: first.is_publisher.is_set() or second.is_publisher.is_set())
    time.sleep(1.5)  # both have tried the lock by now
    assert first.is_publisher.is_set() != second.is_publisher.is_set()
    leader, other = (first, second) if first.is_publisher.is_set() else (second, first)
    h = handsets()
    h.link.start()
    wait_for(h.link.connected.is_set)
    enqueue(app, device["username"], 20, clock)
    wait_for(lambda: h.link.last_seq == 20, timeout=30)
    leader.stop()
    wait_for(other.is_publisher.is_set, timeout=15)
    enqueue(app, device["username"], 20, clock, first_ticket=100)
    wait_for(lambda: h.link.last_seq == 40, timeout=30)
    assert h.seqs == list(range(1, 41))
