"""The MQTT bridge end to end against the real Mosquitto: a paho client plays the handset."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from mobile_app.link import protocol
from server.devices.bridge import Bridge
from tests.server import mqtt_support
from tests.server.mqtt_support import connect, wait_for

# the real broker and an app wired to it (``app`` overrides conftest's, so ``api`` uses it)
app, broker, mqtt_settings = mqtt_support.app, mqtt_support.broker, mqtt_support.mqtt_settings

HELSINKI = {"lon": 24.9384, "lat": 60.1699}


@pytest.fixture
def device(api, broker):
    r = api.post("dispatcher", "/api/v1/devices",
                 json={"user_id": api.user_ids["technician"], "name": "Van 7"})
    assert r.status_code == 201, r.text
    return r.json()["mqtt"]


@pytest.fixture
def crew(api):
    r = api.post("manager", "/api/v1/crews",
                 json={"name": "Crew 7", "members": [api.user_ids["technician"]]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
def bridges(mqtt_settings, app, clock):
    started: list[Bridge] = []

    def start(**kw) -> Bridge:
        b = Bridge(mqtt_settings, app.state.sessionmaker, clock, **kw)
        b.start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


@pytest.fixture
def handset(broker, device):
    c, rc = connect(broker, device["username"], device["password"], device["client_id"])
    assert not rc.is_failure
    assert not c.subscribe(device["downlink_filter"]).is_failure
    c.device_id = device["username"]
    c.downlink = []
    return c


def positions(clock, n: int = 1, msg_id: str | None = None) -> dict:
    fixes = [{"lon": HELSINKI["lon"] + i * 1e-4, "lat": HELSINKI["lat"],
              "at": clock.now().isoformat(), "accuracy_m": 5} for i in range(n)]
    return protocol.uplink("positions", clock.now(), msg_id=msg_id, fixes=fixes)


def send(handset, kind: str, message: dict | bytes) -> None:
    payload = message if isinstance(message, bytes) else json.dumps(message).encode()
    handset.publish(protocol.up_topic(handset.device_id, kind), payload)


def next_ack(handset, timeout: float = 10) -> dict:
    """The next application ack; work orders and cancels on the way are kept in
    ``handset.downlink``."""
    while True:
        msg = handset.next_message(timeout=timeout)
        assert msg is not None, "no ack"
        t, body = protocol.decode(msg.topic, msg.payload)
        if t.kind == "ack":
            assert msg.topic == protocol.down_topic(handset.device_id, "ack")
            return body
        handset.downlink.append((t.kind, body))


def drain_downlink(handset, n: int, timeout: float = 10) -> list:
    """Until ``handset.downlink`` holds ``n`` work orders/cancels."""
    deadline = time.monotonic() + timeout
    while len(handset.downlink) < n:
        msg = handset.next_message(timeout=max(0.01, deadline - time.monotonic()))
        assert msg is not None, f"only {handset.downlink}"
        t, body = protocol.decode(msg.topic, msg.payload)
        if t.kind != "ack":
            handset.downlink.append((t.kind, body))
    return handset.downlink


def count(engine, sql: str, **params) -> int:
    with engine.begin() as conn:
        return conn.scalar(text(sql), params)


def test_positions_persisted_applied_and_acked_once(bridges, handset, crew, clock, engine) -> None:
    bridges()
    msg = positions(clock, n=3)
    send(handset, "positions", msg)
    ack = next_ack(handset)
    assert ack == {"v": 1, "msg_id": msg["msg_id"], "result": "accepted",
                   "server_time": clock.now().isoformat()}
    # positions are deferred: stored and acked, applied by the bridge's applier right after
    wait_for(lambda: count(engine, "SELECT count(*) FROM crew_positions WHERE crew_id = :c",
                           c=crew) == 3)
    assert count(engine, "SELECT count(*) FROM device_messages WHERE applied_at IS NULL") == 0
    assert count(engine, "SELECT count(*) FROM crews WHERE id = :c AND position IS NOT NULL",
                 c=crew) == 1
    row = count(engine, "SELECT count(*) FROM device_messages WHERE msg_id = :m AND kind = "
                "'positions' AND result = 'accepted'", m=msg["msg_id"])
    assert row == 1

    # a redelivery (the handset missed the ack) is acked again and has no second effect
    send(handset, "positions", msg)
    send(handset, "positions", msg)
    assert next_ack(handset)["msg_id"] == msg["msg_id"]
    assert next_ack(handset)["msg_id"] == msg["msg_id"]
    assert count(engine, "SELECT count(*) FROM crew_positions WHERE crew_id = :c", c=crew) == 3
    assert count(engine, "SELECT count(*) FROM device_messages") == 1


def test_tag_scan_goes_to_the_tag_registry(bridges, handset, clock, engine) -> None:
    bridges()
    msg = protocol.uplink("tag_scan", clock.now(), scan={
        "uid": "04A1B2C3D4E5F6", "scanned_at": clock.now().isoformat(), "position": HELSINKI})
    send(handset, "tag_scan", msg)
    assert next_ack(handset) == {"v": 1, "msg_id": msg["msg_id"], "result": "accepted",
                                 "server_time": clock.now().isoformat()}
    send(handset, "tag_scan", msg)
    assert next_ack(handset)["result"] == "accepted"
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT source, verdict, client_id::text, actor_id FROM tag_scans"
                                 )).all()
    assert len(rows) == 1
    source, verdict, client_id, _ = rows[0]
    assert (source, verdict, client_id) == ("mqtt", "unknown_tag", msg["msg_id"])


def test_domain_refusal_is_stored_and_acked_as_rejected(bridges, handset, clock, engine) -> None:
    bridges()  # the technician is in no crew
    msg = protocol.uplink("status", clock.now(), ticket_id=12345, status="accepted",
                          at=clock.now().isoformat())
    send(handset, "status", msg)
    ack = next_ack(handset)
    assert ack["result"] == "rejected" and ack["error"]["code"] == "not_your_job"
    send(handset, "status", msg)
    assert next_ack(handset) == ack  # the stored verdict, not a second attempt
    assert count(engine, "SELECT count(*) FROM device_messages WHERE result = 'rejected'") == 1


def test_a_deferred_refusal_is_stored_after_the_ack(bridges, handset, clock, engine) -> None:
    """Positions are acked once stored; the applier's refusal (no crew; one fix in the future)
    is recorded on the message, and only the offending message of a merged group is refused."""
    b = bridges(apply_deferred=False)
    msg = positions(clock)
    send(handset, "positions", msg)
    assert next_ack(handset) == {"v": 1, "msg_id": msg["msg_id"], "result": "accepted",
                                 "server_time": clock.now().isoformat()}
    assert b.apply_now() == 1
    assert count(engine, "SELECT count(*) FROM crew_positions") == 0
    assert count(engine, "SELECT error->>'code' FROM device_messages WHERE result = 'rejected' "
                         "AND applied_at IS NOT NULL") == "no_crew"
    send(handset, "positions", msg)  # a resend changes nothing: acked as stored, not re-applied
    assert next_ack(handset)["msg_id"] == msg["msg_id"]
    assert b.apply_now() == 0


def test_merged_positions_refuse_only_the_bad_message(api, bridges, handset, crew, clock,
                                                      engine) -> None:
    b = bridges(apply_deferred=False)
    good1, good2 = positions(clock), positions(clock, n=2)
    bad = positions(clock)
    bad["fixes"][0]["at"] = clock.now().replace(year=2027).isoformat()
    for m in (good1, bad, good2):
        send(handset, "positions", m)
        assert next_ack(handset)["result"] == "accepted"
    assert b.apply_now() == 3
    with engine.begin() as conn:
        got = dict(conn.execute(text("SELECT msg_id::text, result FROM device_messages")).all())
    assert got == {good1["msg_id"]: "accepted", bad["msg_id"]: "rejected",
                   good2["msg_id"]: "accepted"}
    assert count(engine, "SELECT count(*) FROM crew_positions") == 3


def test_bad_payloads_are_dead_lettered_and_the_bridge_carries_on(
        bridges, handset, crew, clock, engine) -> None:
    bridges()
    oversize = positions(clock)
    oversize["fixes"] = oversize["fixes"] * 2000
    oversize_bytes = json.dumps(oversize).encode()
    assert len(oversize_bytes) > protocol.MAX_PAYLOAD
    no_msg_id = positions(clock)
    del no_msg_id["msg_id"]
    bad_lat = positions(clock)
    bad_lat["fixes"][0]["lat"] = 91
    bad = [
        ("positions", b"{not json", "malformed_json"),
        ("positions", b"\xff\xfe", "malformed_json"),
        ("positions", json.dumps(no_msg_id).encode(), "schema_invalid"),
        ("positions", json.dumps(bad_lat).encode(), "schema_invalid"),
        ("positions", b"[1, 2]", "schema_invalid"),
        ("positions", oversize_bytes, "oversize"),
    ]
    for kind, payload, _ in bad:
        send(handset, kind, payload)
    handset.publish(f"crewline/v1/devices/{handset.device_id}/up/selfie", b"{}")
    good = positions(clock)
    send(handset, "positions", good)
    assert next_ack(handset)["msg_id"] == good["msg_id"]  # bad ones were never acked
    assert handset.next_message(timeout=0.5) is None
    with engine.begin() as conn:
        letters = conn.execute(text("SELECT topic, device_id, reason, detail, payload FROM "
                                    "device_dead_letters ORDER BY id")).all()
    assert [r.reason for r in letters] == [r for _, _, r in bad] + ["unknown_kind"]
    for (kind, payload, _), letter in zip(bad, letters, strict=False):
        assert letter.payload == payload and letter.device_id == handset.device_id
        assert letter.topic == protocol.up_topic(handset.device_id, kind)
    assert "lat" in letters[3].detail and "msg_id" in letters[2].detail
    assert count(engine, "SELECT count(*) FROM device_messages") == 1


def test_revocation_cuts_the_live_session_and_refuses_the_rest(
        api, bridges, broker, device, crew, clock, engine, mqtt_settings, app) -> None:
    """DELETE /devices/{id}: the connected handset is disconnected at once (session takeover by
    the server account), cannot connect again, and anything it had in flight is dead-lettered."""
    import queue

    b = bridges()
    c, rc = connect(broker, device["username"], device["password"], device["client_id"],
                    clean_start=False, session_expiry=3600)
    assert not rc.is_failure
    dropped: queue.Queue = queue.Queue()
    c.client.on_disconnect = lambda *a: dropped.put(a[3])
    c.client.reconnect_delay_set(min_delay=1, max_delay=1)
    r = api.client.delete(f"/api/v1/devices/{device['username']}",
                          headers=api.headers("dispatcher"))
    assert r.status_code == 200
    assert dropped.get(timeout=5) is not None  # cut while the revocation request returned
    _, rc = connect(broker, device["username"], device["password"], device["client_id"])
    assert rc.is_failure and "authori" in str(rc).lower()
    # a message that was already on its way when the device was revoked
    out = b.handle(protocol.up_topic(device["username"], "positions"),
                   json.dumps(positions(clock)).encode())
    assert (out.status, out.reason, out.ack) == ("dead_letter", "revoked_device", None)
    assert count(engine, "SELECT count(*) FROM crew_positions") == 0
    # and nothing is queued for it any more: the downlink refuses a revoked device
    from server.core.errors import Conflict
    from server.devices import downlink

    with app.state.sessionmaker() as session, pytest.raises(Conflict):
        downlink.enqueue(session, device["username"], "cancel",
                         {"ticket_id": 1, "reason": "cancelled"}, clock.now())


def test_presence_and_last_will(bridges, broker, device, engine) -> None:
    import paho.mqtt.client as mqtt

    bridges()
    topic = protocol.up_topic(device["username"], "presence")
    c, rc = connect(broker, device["username"], device["password"])
    assert not rc.is_failure
    c.publish(topic, json.dumps({"v": 1, "state": "online"}).encode())
    presence = "SELECT presence FROM devices WHERE id = :d"
    wait_for(lambda: count(engine, presence, d=device["username"]) == "online")
    c.close()

    # a handset that vanishes (no DISCONNECT): the broker publishes its last will
    h = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device["client_id"],
                    protocol=mqtt.MQTTv5)
    h.username_pw_set(device["username"], device["password"])
    h.will_set(topic, json.dumps({"v": 1, "state": "offline"}), qos=1, retain=True)
    h.connect("127.0.0.1", broker.bound_port, keepalive=60)
    h.loop(timeout=2)
    h.publish(topic, json.dumps({"v": 1, "state": "online"}), qos=1, retain=True)
    for _ in range(5):
        h.loop(timeout=0.2)
    wait_for(lambda: count(engine, presence, d=device["username"]) == "online")
    h.socket().close()  # a dead network, not a clean disconnect
    wait_for(lambda: count(engine, presence, d=device["username"]) == "offline")


def test_bridge_restart_and_resend_after_a_missing_ack(bridges, handset, crew, clock, engine) -> None:
    first = bridges()
    m1 = positions(clock)
    send(handset, "positions", m1)
    assert next_ack(handset)["msg_id"] == m1["msg_id"]
    first.stop()

    # while no bridge runs, the uplink is not acked (the handset keeps it in its outbox)
    m2 = positions(clock)
    send(handset, "positions", m2)
    assert handset.next_message(timeout=1) is None

    bridges()
    send(handset, "positions", m2)  # the handset resends what was never acked
    send(handset, "positions", m1)  # and a stray redelivery of an acked one
    acks = {next_ack(handset)["msg_id"], next_ack(handset)["msg_id"]}
    assert acks == {m1["msg_id"], m2["msg_id"]}
    with engine.begin() as conn:
        ids = set(conn.scalars(text("SELECT msg_id::text FROM device_messages")))
    assert ids == {m1["msg_id"], m2["msg_id"]}
    wait_for(lambda: count(engine, "SELECT count(*) FROM crew_positions") == 2)


def test_two_bridges_share_the_uplink_exactly_once(bridges, handset, crew, clock, engine) -> None:
    bridges(), bridges()
    sent = [positions(clock) for _ in range(20)]
    for m in sent:
        send(handset, "positions", m)
    acked = {next_ack(handset)["msg_id"] for _ in sent}
    assert acked == {m["msg_id"] for m in sent}
    with engine.begin() as conn:
        ids = list(conn.scalars(text("SELECT msg_id::text FROM device_messages")))
    assert sorted(ids) == sorted(m["msg_id"] for m in sent)


def test_unknown_device_and_bad_topic_direct(mqtt_settings, app, clock, engine) -> None:
    b = Bridge(mqtt_settings, app.state.sessionmaker, clock)
    out = b.handle(protocol.up_topic("hs-nobody", "positions"),
                   json.dumps(positions(clock)).encode())
    assert (out.status, out.reason, out.ack) == ("dead_letter", "unknown_device", None)
    out = b.handle("crewline/v1/devices/a/b/up/positions", b"{}")
    assert (out.status, out.reason, out.device_id) == ("dead_letter", "bad_topic", None)
    assert count(engine, "SELECT count(*) FROM device_dead_letters") == 2


def test_a_kind_without_handler_is_dead_lettered(mqtt_settings, app, clock, engine, device) -> None:
    """A kind in the protocol whose domain has not registered its handler (yet)."""
    b = Bridge(mqtt_settings, app.state.sessionmaker, clock)
    del b.handlers["ack"]
    out = b.handle(protocol.up_topic(device["username"], "ack"),
                   json.dumps(protocol.uplink("ack", clock.now(), seq=0)).encode())
    assert (out.status, out.reason, out.ack) == ("dead_letter", "unsupported_kind", None)
    assert count(engine, "SELECT count(*) FROM device_messages") == 0


def test_crewline_bridge_command(mqtt_settings, handset, crew, clock, engine) -> None:
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "CREWLINE_ENV": "test", "CREWLINE_DATABASE_URL": mqtt_settings.database_url,
           "CREWLINE_MQTT_URL": mqtt_settings.mqtt_url,
           "CREWLINE_SECRET_KEY": mqtt_settings.secret_key.get_secret_value()}
    cli = Path(sys.executable).with_name("crewline")
    proc = subprocess.Popen([str(cli), "bridge"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        while not seen or "subscribed to" not in seen[-1]:
            seen.append(proc.stdout.readline())
            assert seen[-1] and len(seen) < 50, seen  # exited, or never subscribed
        assert "$share/crewline/crewline/v1/devices/+/up/#" in seen[-1]
        msg = positions(clock)
        send(handset, "positions", msg)
        assert next_ack(handset)["msg_id"] == msg["msg_id"]
        wait_for(lambda: count(engine, "SELECT count(*) FROM crew_positions WHERE crew_id = :c",
                               c=crew) == 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_status_uplink_moves_the_crews_ticket(api, bridges, handset, crew, clock, engine) -> None:
    """The technician works the job from the handset: accept, en route, on site, resolve — each
    through the ticket lifecycle with the technician as actor; another crew's ticket, a skipped
    step and a resolve without a code are rejected (and acked as such), nothing half-done."""
    bridges()
    ticket = api.post("agent", "/api/v1/tickets", json={
        "category": "repair", "description": "leak", "location": HELSINKI}).json()["ticket"]
    other = api.post("agent", "/api/v1/tickets", json={
        "category": "repair", "description": "elsewhere", "location": HELSINKI}).json()["ticket"]
    # the crew must be on shift with a fresh position to be assignable
    r = api.post("dispatcher", f"/api/v1/crews/{crew}/state", json={"shift": "on_shift"})
    assert r.status_code == 200, r.text
    r = api.patch("manager", f"/api/v1/crews/{crew}", json={"skills": ["water_main"]})
    assert r.status_code == 200, r.text
    send(handset, "positions", positions(clock))
    assert next_ack(handset)["result"] == "accepted"
    wait_for(lambda: count(engine, "SELECT count(*) FROM crews WHERE position IS NOT NULL"))
    r = api.post("dispatcher", f"/api/v1/tickets/{ticket['id']}/assignment",
                 json={"crew_id": crew})
    assert r.status_code == 201, r.text

    def status(ticket_id, to, **extra):
        msg = protocol.uplink("status", clock.now(), ticket_id=ticket_id, status=to,
                              at=clock.now().isoformat(), **extra)
        send(handset, "status", msg)
        return next_ack(handset)

    ack = status(other["id"], "accepted")
    assert ack["result"] == "rejected" and ack["error"]["code"] == "not_your_job"
    ack = status(ticket["id"], "on_site")
    assert ack["result"] == "rejected" and ack["error"]["code"] == "invalid_transition"
    for to in ("accepted", "en_route", "on_site"):
        assert status(ticket["id"], to)["result"] == "accepted"
    ack = status(ticket["id"], "resolved")
    assert ack["result"] == "rejected" and ack["error"]["field"] == "resolution_code"
    assert status(ticket["id"], "resolved", resolution_code="pipe_replaced",
                  note="gasket")["result"] == "accepted"
    t = api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}").json()
    assert t["status"] == "resolved" and t["resolution_code"] == "pipe_replaced"
    # the handset got the job, an update per accepted step, and a cancel once resolved
    drain_downlink(handset, 5)
    assert [(k, b["seq"], b.get("status") or b.get("reason")) for k, b in handset.downlink] == [
        ("work_order", 1, "assigned"), ("work_order", 2, "accepted"),
        ("work_order", 3, "en_route"), ("work_order", 4, "on_site"), ("cancel", 5, "resolved")]
    moves = [(e["kind"], e["actor"]) for e in t["events"] if e["kind"] in
             ("accepted", "en_route", "on_site", "resolved")]
    assert moves == [(k, "technician") for k in ("accepted", "en_route", "on_site", "resolved")]
    assert api.get("dispatcher", f"/api/v1/tickets/{other['id']}").json()["status"] == "new"


def test_attachment_metadata_is_stored_for_the_crews_ticket(api, bridges, handset, crew, clock,
                                                            engine) -> None:
    """Photo/signature metadata (the bytes stay on the handset): a ticket the crew held, or an
    inspection visit reference; a ticket the crew never had is refused."""
    bridges()
    mine = api.post("agent", "/api/v1/tickets", json={
        "category": "repair", "description": "leak", "location": HELSINKI}).json()["ticket"]
    other = api.post("agent", "/api/v1/tickets", json={
        "category": "repair", "description": "leak", "location": HELSINKI}).json()["ticket"]
    with engine.begin() as conn:  # the crew held the ticket once (the assignment has ended)
        conn.execute(text("INSERT INTO dispatch_assignments (ticket_id, crew_id, mode, assigned_at,"
                          " ended_at, end_reason) VALUES (:t, :c, 'manual', :now, :now, "
                          "'unassigned')"), {"t": mine["id"], "c": crew, "now": clock.now()})
    photo = protocol.uplink("attachment", clock.now(), ticket_id=mine["id"], kind="photo",
                            sha256="a" * 64, bytes=204800, mime="image/jpeg",
                            taken_at=clock.now().isoformat())
    signature = protocol.uplink("attachment", clock.now(), visit_ref="round-7/site-3",
                                kind="signature", sha256="b" * 64, bytes=5120,
                                mime="image/png", taken_at=clock.now().isoformat())
    foreign = protocol.uplink("attachment", clock.now(), ticket_id=other["id"], kind="photo",
                              sha256="c" * 64, bytes=1, mime="image/jpeg",
                              taken_at=clock.now().isoformat())
    for m in (photo, signature, photo, foreign):
        send(handset, "attachment", m)
    acks = [next_ack(handset) for _ in range(4)]
    assert [a["result"] for a in acks] == ["accepted", "accepted", "accepted", "rejected"]
    assert acks[3]["error"]["code"] == "not_your_job"
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT ticket_id, visit_ref, kind, sha256, bytes, mime, "
                                 "user_id FROM device_attachments ORDER BY id")).all()
    tech = api.user_ids["technician"]
    assert [tuple(r) for r in rows] == [
        (mine["id"], None, "photo", "a" * 64, 204800, "image/jpeg", tech),
        (None, "round-7/site-3", "signature", "b" * 64, 5120, "image/png", tech)]


def test_handler_registry_refuses_a_second_handler_for_a_kind() -> None:
    from server.devices import handlers

    spec = handlers.get("positions")
    assert spec is not None and spec.deferred and spec.merge is not None
    assert not handlers.get("status").deferred

    with pytest.raises(RuntimeError):
        @handlers.handler("positions")
        def other(session, actor, device, message, now, ctx) -> None: ...


def test_attachment_files_are_uploaded_with_the_device_credentials(
        api, app, bridges, handset, device, crew, clock, engine, tmp_path) -> None:
    """The file follows its metadata over HTTP: device credentials, hash and size checked,
    stored once by content, readable by staff."""
    import hashlib

    app.state.settings = app.state.settings.model_copy(
        update={"attachments_dir": str(tmp_path / "files")})
    bridges()
    data = b"\xff\xd8\xff" + bytes(range(256)) * 40  # "a JPEG"
    sha = hashlib.sha256(data).hexdigest()
    msg = protocol.uplink("attachment", clock.now(), visit_ref="visit-1", kind="photo",
                          sha256=sha, bytes=len(data), mime="image/jpeg",
                          taken_at=clock.now().isoformat())
    send(handset, "attachment", msg)
    assert next_ack(handset)["result"] == "accepted"
    url = f"/api/v1/devices/self/attachments/{sha}"
    auth = (device["username"], device["password"])
    c = api.client

    assert c.put(url, content=data).status_code == 401  # no credentials
    assert c.put(url, content=data, auth=(device["username"], "wrong")).status_code == 401
    r = c.put(url, content=data[:-1], auth=auth)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "size_mismatch")
    r = c.put(url, content=data[:-1] + b"\x00", auth=auth)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "hash_mismatch")
    other = "0" * 64
    assert c.put(f"/api/v1/devices/self/attachments/{other}", content=data,
                 auth=auth).status_code == 404  # never announced
    assert count(engine, "SELECT count(*) FROM device_attachments WHERE uploaded_at IS NOT NULL"
                 ) == 0
    assert api.get("dispatcher", f"/api/v1/devices/attachments/{sha}").status_code == 404

    for _ in range(2):  # idempotent
        r = c.put(url, content=data, auth=auth)
        assert r.status_code == 200, r.text
        assert r.json()["bytes"] == len(data) and r.json()["mime"] == "image/jpeg"
    assert (tmp_path / "files" / sha[:2] / sha).read_bytes() == data
    assert count(engine, "SELECT count(*) FROM device_attachments WHERE uploaded_at IS NOT NULL"
                 ) == 1
    r = api.get("dispatcher", f"/api/v1/devices/attachments/{sha}")
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "image/jpeg"
    assert api.get("technician", f"/api/v1/devices/attachments/{sha}").status_code == 403

    # a revoked device may not upload any more
    api.client.delete(f"/api/v1/devices/{device['username']}", headers=api.headers("dispatcher"))
    assert c.put(url, content=data, auth=auth).status_code == 401
