"""Pairing a handset with a one-time code: roles, expiry, single use under a race, hashed storage,
the lockout of wrong guesses, credentials the real broker accepts, and the scan-verdict question."""

from __future__ import annotations

import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import text

from mobile_app.link import protocol
from tests.server import mqtt_support
from tests.server.mqtt_support import connect

app, broker, mqtt_settings = mqtt_support.app, mqtt_support.broker, mqtt_support.mqtt_settings

CODES = "/api/v1/devices/pairing-codes"
PAIR = "/api/v1/devices/pair"


def new_code(api, role="dispatcher", user=None):
    return api.post(role, CODES, json={"user_id": user or api.user_ids["technician"]})


def test_codes_are_made_by_dispatchers_for_technicians_only(api, engine, clock) -> None:
    tech = api.user_ids["technician"]
    for role in ("technician", "agent"):
        r = new_code(api, role)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert api.client.post(CODES, json={"user_id": tech}).status_code == 401
    r = new_code(api, user=api.user_ids["agent"])
    assert r.status_code == 422 and r.json()["error"]["field"] == "user_id"
    assert new_code(api, user=999_999).status_code == 422
    for role in ("dispatcher", "manager", "admin"):
        r = new_code(api, role)
        assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["code"]) == 9 and body["code"][4] == "-"
    assert body["expires_at"].startswith((clock.now() + timedelta(minutes=10)).isoformat()[:16])
    qr = urlsplit(body["qr_payload"])
    assert (qr.scheme, qr.netloc, qr.path) == ("crewline", "pair", "")
    q = parse_qs(qr.query)
    assert q["code"] == [body["code"].replace("-", "")] and q["server"] == ["http://testserver"]
    with engine.begin() as conn:
        hashes = conn.scalars(text("SELECT code_hash FROM device_pairing_codes")).all()
    assert len(hashes) == 3
    # stored hashed: the code appears nowhere in the table
    assert all(body["code"].replace("-", "") not in h and len(h) == 64 for h in hashes)


def test_pair_once_and_the_credentials_work_on_the_broker(api, broker, engine, clock) -> None:
    code = new_code(api).json()["code"]
    # typed sloppily: lower case, no dash, O for 0 and I/L for 1 are accepted
    typed = code.replace("-", "").lower().replace("0", "o").replace("1", "l")
    r = api.client.post(PAIR, json={"code": typed, "name": "Van 7 phone"})
    assert r.status_code == 201, r.text
    paired = r.json()
    device_id = paired["device"]["id"]
    assert paired["device"]["user_id"] == api.user_ids["technician"]
    assert paired["device"]["created_by"] == api.user_ids["dispatcher"]
    assert paired["user"]["username"] == "technician"
    assert paired["broker"] == {"host": "127.0.0.1", "port": broker.bound_port, "tls": False}
    assert paired["mqtt"]["username"] == device_id
    assert paired["mqtt"]["downlink_filter"] == protocol.down_filter(device_id)

    _client, rc = connect(broker, device_id, paired["mqtt"]["password"], device_id)
    assert not rc.is_failure

    again = api.client.post(PAIR, json={"code": code, "name": "second phone"})
    assert again.status_code == 403 and again.json()["error"]["code"] == "pairing_refused"
    with engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM devices")) == 1
        row = conn.execute(text("SELECT used_at, device_id FROM device_pairing_codes")).one()
    assert row.used_at is not None and row.device_id == device_id


def test_expired_codes_are_refused(api, clock, engine) -> None:
    code = new_code(api).json()["code"]
    clock.advance(timedelta(minutes=10))
    r = api.client.post(PAIR, json={"code": code, "name": "late"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "pairing_refused"
    assert r.json()["error"]["field"] == "code"
    with engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM devices")) == 0


def test_one_code_two_handsets_racing_exactly_one_wins(api, app, engine) -> None:
    from fastapi.testclient import TestClient

    code = new_code(api).json()["code"]
    results: list[int] = []
    barrier = threading.Barrier(6)

    def attempt(i: int) -> None:
        with TestClient(app) as c:
            barrier.wait()
            results.append(c.post(PAIR, json={"code": code, "name": f"phone {i}"}).status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [403] * 5
    with engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM devices")) == 1


def test_wrong_codes_lock_the_address_out_then_it_recovers(api, clock, engine) -> None:
    good = new_code(api).json()["code"]
    for i in range(5):
        r = api.client.post(PAIR, json={"code": f"ZZZZ-ZZZ{i}", "name": "guess"})
        assert r.status_code == 403, r.text
    # the sixth attempt is locked out even with the right code
    r = api.client.post(PAIR, json={"code": good, "name": "real"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "pairing_locked"
    assert r.json()["error"]["details"]["retry_after_s"] == 900
    # garbage (not even code-shaped) counts too, and validation errors name the field
    assert api.client.post(PAIR, json={"code": "", "name": "x"}).json()["error"]["field"] == "code"
    with engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM device_pairing_failures")) == 5
    clock.advance(timedelta(minutes=15, seconds=1))
    # the window has passed (and the first code expired meanwhile): a fresh code pairs
    fresh = new_code(api).json()["code"]
    assert api.client.post(PAIR, json={"code": fresh, "name": "real"}).status_code == 201


def test_all_addresses_together_are_capped(api, app, clock, engine) -> None:
    from sqlalchemy.orm import Session

    from server.models import PairingFailure

    with Session(engine) as s:  # a distributed guesser: 200 failures from 200 addresses
        s.add_all(PairingFailure(client=f"10.0.{i // 250}.{i % 250}", at=clock.now())
                  for i in range(200))
        s.commit()
    code = new_code(api).json()["code"]
    r = api.client.post(PAIR, json={"code": code, "name": "real"})
    assert r.status_code == 429


def test_the_device_asks_for_its_scan_verdict(api, engine, clock) -> None:
    import uuid

    from tests.server.tags_support import make_site

    code = new_code(api).json()["code"]
    paired = api.client.post(PAIR, json={"code": code, "name": "phone"}).json()
    auth = (paired["mqtt"]["username"], paired["mqtt"]["password"])
    site = make_site(api)
    assert api.post("manager", "/api/v1/tags", json={
        "uid": "04AABBCCDDEEFF", "tag_type": "type2", "sun_enabled": False,
        "site_id": site["id"]}).status_code == 201
    msg_id = str(uuid.uuid4())
    url = f"/api/v1/devices/self/scans/{msg_id}"
    r = api.client.get(url, auth=auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "scan_not_received"
    # what the bridge does with an MQTT tag_scan: the technician's scan keyed by the msg_id
    assert api.post("technician", "/api/v1/tags/scans", json={
        "uid": "04AABBCCDDEEFF", "client_id": msg_id}).status_code == 201
    r = api.client.get(url, auth=auth)
    assert r.status_code == 200, r.text
    assert r.json()["verdict"] == "uid_only" and r.json()["site_id"] == site["id"]

    assert api.client.get(url).status_code == 401
    assert api.client.get(url, auth=(auth[0], "wrong")).status_code == 401
    assert api.client.get(url, auth=("hs-nobody", auth[1])).status_code == 401
    assert api.client.get("/api/v1/devices/self/scans/nope", auth=auth).status_code == 422
    # another technician's scan is not this device's business
    other = str(uuid.uuid4())
    assert api.post("dispatcher", "/api/v1/tags/scans", json={
        "uid": "04AABBCCDDEEFF", "client_id": other}).status_code == 201
    assert api.client.get(f"/api/v1/devices/self/scans/{other}", auth=auth).status_code == 404
    assert api.client.delete(f"/api/v1/devices/{paired['device']['id']}",
                             headers=api.headers("dispatcher")).status_code == 200
    assert api.client.get(url, auth=auth).status_code == 401
