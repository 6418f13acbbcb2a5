"""Handset registration: roles, validation, one-time MQTT credentials enforced by the real broker."""

from __future__ import annotations

import json
import threading
import time

from sqlalchemy import text

from tests.server import mqtt_support
from tests.server.mqtt_support import connect

# the real broker and an app wired to it (``app`` overrides conftest's, so ``api`` uses it)
app, broker, mqtt_settings = mqtt_support.app, mqtt_support.broker, mqtt_support.mqtt_settings

UP = "crewline/v1/devices/{}/up/positions"
DOWN = "crewline/v1/devices/{}/down/work_order"


def register(api, role, user_id, name="Van phone"):
    return api.post(role, "/api/v1/devices", json={"user_id": user_id, "name": name})


def test_registration_roles_and_validation(api, engine, broker) -> None:
    tech = api.user_ids["technician"]
    for role in ("technician", "agent"):
        r = register(api, role, tech)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert api.client.post("/api/v1/devices", json={"user_id": tech, "name": "x"}).status_code == 401
    r = register(api, "dispatcher", api.user_ids["agent"])
    assert r.status_code == 422 and r.json()["error"]["field"] == "user_id"
    r = register(api, "dispatcher", 999_999)
    assert r.status_code == 422 and r.json()["error"]["field"] == "user_id"
    assert register(api, "dispatcher", tech, name="").status_code == 422
    with engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM devices")) == 0

    for role in ("dispatcher", "manager", "admin"):
        r = register(api, role, tech, name=f"phone of {role}")
        assert r.status_code == 201, r.text
    body = r.json()
    dev, mqtt = body["device"], body["mqtt"]
    assert dev["user_id"] == tech and dev["revoked_at"] is None
    assert dev["created_by"] == api.user_ids["admin"]
    assert mqtt["username"] == dev["id"] == mqtt["client_id"]
    assert mqtt["downlink_filter"] == f"crewline/v1/devices/{dev['id']}/down/#"
    assert mqtt["uplink_prefix"] == f"crewline/v1/devices/{dev['id']}/up/"
    assert len(mqtt["password"]) >= 24
    # the password is shown once: stored only as hashes, in the database and in the broker
    with engine.begin() as conn:
        stored = conn.scalar(text("SELECT password_hash FROM devices WHERE id = :i"),
                             {"i": dev["id"]})
    assert stored.startswith("$argon2") and mqtt["password"] not in stored
    passwd = broker.password_file.read_text()
    assert f"{dev['id']}:" in passwd and mqtt["password"] not in passwd
    listed = api.get("dispatcher", "/api/v1/devices").json()
    assert len(listed) == 3 and "password" not in json.dumps(listed)
    assert api.get("manager", f"/api/v1/devices/{dev['id']}").json()["name"] == "phone of admin"
    r = api.get("dispatcher", "/api/v1/devices/nope")
    assert r.status_code == 404 and r.json()["error"]["field"] == "device_id"
    assert api.get("technician", "/api/v1/devices").status_code == 403


def test_acl_each_device_only_its_own_topics(api, broker) -> None:
    a = register(api, "dispatcher", api.user_ids["technician"], "A").json()["mqtt"]
    b = register(api, "dispatcher", api.user_ids["technician"], "B").json()["mqtt"]
    srv, rc = connect(broker, broker.server_user, broker.server_password)
    assert not rc.is_failure
    assert srv.subscribe("crewline/v1/devices/+/up/#").value == 1
    dev_a, rc = connect(broker, a["username"], a["password"], a["client_id"])
    assert not rc.is_failure
    dev_b, rc = connect(broker, b["username"], b["password"], b["client_id"])
    assert not rc.is_failure
    dev_a.subscribe(a["downlink_filter"])
    dev_b.subscribe(b["downlink_filter"])
    dev_a.subscribe(b["downlink_filter"])  # may be granted; every delivery is still checked

    # own uplink reaches the server, own downlink reaches the device
    dev_a.publish(UP.format(a["username"]), b"from a")
    got = srv.next_message()
    assert got is not None and (got.topic, got.payload) == (UP.format(a["username"]), b"from a")
    srv.publish(DOWN.format(a["username"]), b"order for a")
    got = dev_a.next_message()
    assert got is not None and got.payload == b"order for a"

    # a cannot read b's orders
    srv.publish(DOWN.format(b["username"]), b"order for b")
    got = dev_b.next_message()
    assert got is not None and got.payload == b"order for b"
    assert dev_a.next_message(timeout=1) is None
    # a cannot publish as b, nor on b's downlink
    dev_a.publish(UP.format(b["username"]), b"forged")
    dev_a.publish(DOWN.format(b["username"]), b"forged order")
    assert srv.next_message(timeout=1) is None
    assert dev_b.next_message(timeout=0.5) is None
    # another device's password does not open this one
    _, rc = connect(broker, a["username"], b["password"])
    assert rc.is_failure


def test_revoked_device_cannot_connect(api, broker) -> None:
    creds = register(api, "dispatcher", api.user_ids["technician"]).json()["mqtt"]
    dev_id = creds["username"]
    _, rc = connect(broker, dev_id, creds["password"])
    assert not rc.is_failure
    assert api.client.delete(f"/api/v1/devices/{dev_id}",
                             headers=api.headers("technician")).status_code == 403
    r = api.client.delete(f"/api/v1/devices/{dev_id}", headers=api.headers("dispatcher"))
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    r = api.client.delete(f"/api/v1/devices/{dev_id}", headers=api.headers("dispatcher"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "device_revoked"
    assert api.client.delete("/api/v1/devices/nope",
                             headers=api.headers("dispatcher")).status_code == 404
    assert api.get("dispatcher", "/api/v1/devices").json() == []
    assert len(api.get("dispatcher", "/api/v1/devices?include_revoked=true").json()) == 1
    assert f"{dev_id}:" not in broker.password_file.read_text()
    time.sleep(0.3)  # SIGHUP is asynchronous
    _, rc = connect(broker, dev_id, creds["password"])
    assert rc.is_failure


def test_concurrent_registrations_all_get_working_credentials(api, broker) -> None:
    results: list = []
    barrier = threading.Barrier(6)

    def go(i: int) -> None:
        barrier.wait()
        results.append(register(api, "dispatcher", api.user_ids["technician"], f"phone {i}"))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [201] * 6
    assert len({r.json()["device"]["id"] for r in results}) == 6
    time.sleep(0.3)
    for r in results:
        m = r.json()["mqtt"]
        _, rc = connect(broker, m["username"], m["password"])
        assert not rc.is_failure, m["username"]


def test_unwritable_broker_files_leave_no_device(api, app, engine, tmp_path) -> None:
    from server.devices.broker import MosquittoFilesAdmin

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    app.state.broker_admin = MosquittoFilesAdmin(blocker / "mqtt")
    r = register(api, "dispatcher", api.user_ids["technician"])
    assert r.status_code == 503 and r.json()["error"]["code"] == "broker_unavailable"
    with engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM devices")) == 0
