"""The durable, sequenced downlink (server/devices/downlink.py) and the work orders that dispatch
and the ticket lifecycle enqueue through it — against the real PostgreSQL, no broker needed."""

from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from mobile_app.link import protocol
from server.core.errors import Conflict, NotFound
from server.devices import downlink
from server.models import Device
from tests.server.dispatch_support import make_crew, make_ticket

HELSINKI = (24.9384, 60.1699)
CANCEL = {"ticket_id": 7, "reason": "unassigned"}


def add_device(engine, device_id: str, user_id: int, clock, *, revoked: bool = False) -> str:
    with Session(engine) as session:
        session.add(Device(id=device_id, user_id=user_id, name=device_id, password_hash="x",
                           created_at=clock.now(), created_by=user_id,
                           revoked_at=clock.now() if revoked else None))
        session.commit()
    return device_id


def rows(engine, device_id: str | None = None) -> list[tuple]:
    with engine.begin() as conn:
        return conn.execute(text(
            "SELECT device_id, seq, kind, payload FROM device_downlink "
            "WHERE CAST(:d AS varchar) IS NULL OR device_id = :d ORDER BY id"),
            {"d": device_id}).all()


def test_seqs_per_device_validation_and_refusals(engine, users, clock) -> None:
    tech = users["technician"]
    a, b = add_device(engine, "hs-a", tech, clock), add_device(engine, "hs-b", tech, clock)
    add_device(engine, "hs-gone", tech, clock, revoked=True)
    with Session(engine) as session:
        assert [downlink.enqueue(session, a, "cancel", CANCEL, clock.now()) for _ in range(3)] \
            == [1, 2, 3]
        assert downlink.enqueue(session, b, "cancel", CANCEL, clock.now()) == 1
        session.commit()
    got = rows(engine, a)
    assert [r.seq for r in got] == [1, 2, 3]
    assert got[0].payload == {"v": 1, "seq": 1, "ticket_id": 7, "reason": "unassigned"}
    protocol.validate("down", "cancel", got[2].payload)

    with Session(engine) as session:
        with pytest.raises(protocol.ProtocolError):  # a bad body is a bug: nothing written
            downlink.enqueue(session, a, "cancel", {"ticket_id": 0}, clock.now())
        with pytest.raises(ValueError):
            downlink.enqueue(session, a, "ack", {"msg_id": "x"}, clock.now())
        with pytest.raises(ValueError):
            downlink.enqueue(session, a, "cancel", {**CANCEL, "seq": 9}, clock.now())
        with pytest.raises(Conflict) as exc:
            downlink.enqueue(session, "hs-gone", "cancel", CANCEL, clock.now())
        assert exc.value.code == "device_revoked"
        session.rollback()
        with pytest.raises(NotFound):
            downlink.enqueue(session, "hs-nobody", "cancel", CANCEL, clock.now())
        session.rollback()
        # a rolled-back transaction leaves no row and consumes no seq
        assert downlink.enqueue(session, a, "cancel", CANCEL, clock.now()) == 4
        session.rollback()
    with Session(engine) as session:
        assert downlink.enqueue(session, a, "cancel", CANCEL, clock.now()) == 4
        session.commit()
    assert [r.seq for r in rows(engine, a)] == [1, 2, 3, 4]


def test_concurrent_writers_get_distinct_gapless_seqs(engine, users, clock) -> None:
    """Twelve transactions enqueue for the same two devices at once (in opposite orders through
    enqueue_for_user, which locks in device order): seqs 1..N each, no duplicate, no deadlock."""
    tech = users["technician"]
    add_device(engine, "hs-c1", tech, clock), add_device(engine, "hs-c2", tech, clock)
    start = threading.Barrier(12)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            with Session(engine) as session:
                start.wait()
                for _ in range(5):
                    downlink.enqueue_for_user(session, tech, "cancel",
                                              {"ticket_id": i + 1, "reason": "unassigned"},
                                              clock.now())
                session.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    for d in ("hs-c1", "hs-c2"):
        assert sorted(r.seq for r in rows(engine, d)) == list(range(1, 61))
        with engine.begin() as conn:
            assert conn.scalar(text("SELECT downlink_seq FROM devices WHERE id = :d"),
                               {"d": d}) == 60


def test_notify_arrives_only_after_commit(engine, users, clock, settings) -> None:
    add_device(engine, "hs-n", users["technician"], clock)
    url = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute(f"LISTEN {downlink.CHANNEL}")
        with Session(engine) as session:
            downlink.enqueue(session, "hs-n", "cancel", CANCEL, clock.now())
            assert list(listener.notifies(timeout=0.3, stop_after=1)) == []
            session.rollback()
        assert list(listener.notifies(timeout=0.3, stop_after=1)) == []
        with Session(engine) as session:
            downlink.enqueue(session, "hs-n", "cancel", CANCEL, clock.now())
            session.commit()
        got = list(listener.notifies(timeout=5, stop_after=1))
        assert [(n.channel, n.payload) for n in got] == [(downlink.CHANNEL, "hs-n")]


def test_crew_and_user_fan_out_skips_revoked_devices(api, engine, clock, second_tech) -> None:
    tech = api.user_ids["technician"]
    crew = make_crew(api, clock, "Crew F", None, None, members=[tech, second_tech])
    add_device(engine, "hs-f2", tech, clock), add_device(engine, "hs-f1", second_tech, clock)
    add_device(engine, "hs-f0", tech, clock, revoked=True)
    with Session(engine) as session:
        sent = downlink.enqueue_for_crew(session, crew["id"], "cancel", CANCEL, clock.now())
        assert sent == [("hs-f1", 1), ("hs-f2", 1)]
        assert downlink.enqueue_for_user(session, tech, "cancel", CANCEL, clock.now()) \
            == [("hs-f2", 2)]
        assert downlink.enqueue_for_user(session, api.user_ids["agent"], "cancel", CANCEL,
                                         clock.now()) == []
        session.commit()


def test_record_ack_and_resync(engine, users, clock) -> None:
    add_device(engine, "hs-r", users["technician"], clock)
    with Session(engine) as session:
        for _ in range(5):
            downlink.enqueue(session, "hs-r", "cancel", CANCEL, clock.now())
        session.commit()
    with Session(engine) as session:
        pending = downlink.unpublished(session)
        assert [(r[2], r[5]) for r in pending] == [(s, 0) for s in range(1, 6)]
        first_publication = [(r[0], r[5]) for r in pending]
        assert downlink.mark_published(session, first_publication[:3], clock.now()) == 3
        assert downlink.record_ack(session, "hs-r", 2, False, clock.now()) == 0
        assert downlink.record_ack(session, "hs-r", 1, False, clock.now()) == 0  # never back
        assert [r[2] for r in downlink.unpublished(session)] == [4, 5]  # still in flight
        assert downlink.record_ack(session, "hs-r", 3, True, clock.now()) == 2
        # the PUBACKs of 4 and 5's first publication arrive after the resync re-queued them:
        # they must not mark the re-queued rows as published
        assert downlink.mark_published(session, first_publication[3:], clock.now()) == 0
        assert [(r[2], r[5]) for r in downlink.unpublished(session)] == [(4, 1), (5, 1)]
        again = [(r[0], r[5]) for r in downlink.unpublished(session)]
        assert downlink.mark_published(session, again, clock.now()) == 2
        assert downlink.unpublished(session) == []
        from server.core.errors import InvalidInput

        with pytest.raises(InvalidInput) as exc:
            downlink.record_ack(session, "hs-r", 6, False, clock.now())
        assert exc.value.code == "seq_ahead"
        session.commit()
    with engine.begin() as conn:
        assert conn.execute(text("SELECT acked_seq FROM devices WHERE id = 'hs-r'")).scalar() == 3


def test_work_orders_follow_dispatch_and_the_lifecycle(api, engine, clock, customer,
                                                       second_tech) -> None:
    tech = api.user_ids["technician"]
    crew_a = make_crew(api, clock, "Crew A", *HELSINKI, members=[tech])
    crew_b = make_crew(api, clock, "Crew B", HELSINKI[0] + 0.001, HELSINKI[1],
                       members=[second_tech])
    add_device(engine, "hs-wa", tech, clock), add_device(engine, "hs-wb", second_tech, clock)
    r = api.post("agent", "/api/v1/tickets", json={
        "category": "repair", "priority": "high", "customer_id": customer["id"],
        "description": "水管漏水\nsecond line"})
    assert r.status_code == 201, r.text
    ticket = r.json()["ticket"]
    tid = ticket["id"]

    r = api.post("dispatcher", f"/api/v1/tickets/{tid}/assignment", json={"crew_id": crew_a["id"]})
    assert r.status_code == 201, r.text
    (wo,) = rows(engine, "hs-wa")
    assert wo.kind == "work_order" and wo.seq == 1
    body = wo.payload
    protocol.validate("down", "work_order", body)
    assert body["ticket_id"] == tid and body["status"] == "assigned"
    assert body["summary"].startswith(f"CL-{tid:07d} repair/high: 水管漏水")
    assert body["description"] == "水管漏水\nsecond line"
    assert body["customer_name"] == "李明" and body["customer_phone"].startswith("+86")
    assert body["address"] == "Mannerheimintie 1, Helsinki"
    assert body["location"] == {"lon": HELSINKI[0], "lat": HELSINKI[1]}
    assert body["due_at"] is not None and body["assigned_at"] == clock.now().isoformat()
    assert rows(engine, "hs-wb") == []

    # the crew accepts through the desk API: an updated work order (higher revision)
    r = api.post("technician", f"/api/v1/tickets/{tid}/transitions", json={"to": "accepted"})
    assert r.status_code == 200, r.text
    update = rows(engine, "hs-wa")[-1].payload
    assert (update["seq"], update["status"]) == (2, "accepted")
    assert update["revision"] > body["revision"]

    # reassigned to crew B: A's handset gets a cancel, B's the job
    r = api.put("dispatcher", f"/api/v1/tickets/{tid}/assignment", json={"crew_id": crew_b["id"]})
    assert r.status_code == 200, r.text
    assert rows(engine, "hs-wa")[-1].payload == {"v": 1, "seq": 3, "ticket_id": tid,
                                                 "reason": "reassigned"}
    (wo_b,) = rows(engine, "hs-wb")
    assert (wo_b.kind, wo_b.payload["status"]) == ("work_order", "assigned")

    # unassigned: B's handset drops it
    r = api.client.delete(f"/api/v1/tickets/{tid}/assignment", headers=api.headers("dispatcher"))
    assert r.status_code == 200, r.text
    assert rows(engine, "hs-wb")[-1].payload["reason"] == "unassigned"

    # assigned again and cancelled by the desk: a cancel with that reason
    r = api.post("dispatcher", f"/api/v1/tickets/{tid}/assignment", json={"crew_id": crew_a["id"]})
    assert r.status_code == 201, r.text
    r = api.post("dispatcher", f"/api/v1/tickets/{tid}/transitions",
                 json={"to": "cancelled", "reason": "customer fixed it"})
    assert r.status_code == 200, r.text
    assert [(r.kind, r.payload.get("reason")) for r in rows(engine, "hs-wa")] == [
        ("work_order", None), ("work_order", None), ("cancel", "reassigned"),
        ("work_order", None), ("cancel", "cancelled")]
    assert [r.seq for r in rows(engine, "hs-wa")] == [1, 2, 3, 4, 5]


def test_a_refused_assignment_enqueues_nothing(api, engine, clock) -> None:
    tech = api.user_ids["technician"]
    crew = make_crew(api, clock, "Crew Off", *HELSINKI, members=[tech], shift="off")
    add_device(engine, "hs-off", tech, clock)
    ticket = make_ticket(api, *HELSINKI)
    r = api.post("dispatcher", f"/api/v1/tickets/{ticket['id']}/assignment",
                 json={"crew_id": crew["id"]})
    assert r.status_code == 409
    assert rows(engine) == []
