"""Scan ingest: a stored verdict for every scan, replay protection under concurrency, history."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from rfid import KeyRing
from server.tags.keys import keyring_from_settings
from tests.server.tags_support import HELSINKI, PLAIN_UID, SUN_UID, enroll, make_site, sun_url

SCANS = "/api/v1/tags/scans"


@pytest.fixture
def keyring(settings) -> KeyRing:
    return keyring_from_settings(settings)


@pytest.fixture
def site(api) -> dict:
    return make_site(api)


@pytest.fixture
def sun_tag(api, site) -> dict:
    r = enroll(api, site["id"])
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def plain_tag(api, site) -> dict:
    r = enroll(api, site["id"], PLAIN_UID, sun=False, tag_type="type2")
    assert r.status_code == 201, r.text
    return r.json()


def scan(api, role="technician", **body):
    r = api.post(role, SCANS, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def stored_counter(engine, tag_id):
    with engine.connect() as conn:
        return conn.execute(text("SELECT last_counter FROM tags WHERE id = :id"),
                            {"id": tag_id}).scalar()


def test_verified_then_replayed(api, engine, keyring, sun_tag, site, clock):
    url = sun_url(keyring, SUN_UID, 5)
    first = scan(api, uid=SUN_UID, sun_url=url, position={"lon": 24.9385, "lat": 60.1698},
                 accuracy_m=8.5, scanned_at="2026-01-05T07:59:58Z", reader="android-nfc")
    assert first["verdict"] == "verified" and first["accepted"] is True
    assert (first["tag_id"], first["site_id"], first["uid"]) == (sun_tag["id"], site["id"],
                                                                 SUN_UID)
    assert first["counter"] == 5 and first["key_version"] == 1
    assert first["actor"] == "technician" and first["source"] == "http"
    assert first["position"] == {"lon": 24.9385, "lat": 60.1698} and first["accuracy_m"] == 8.5
    assert first["raw"]["sun_url"] == url and first["raw"]["reader"] == "android-nfc"
    assert stored_counter(engine, sun_tag["id"]) == 5

    clock.advance(seconds=30)
    again = scan(api, uid=SUN_UID, sun_url=url)
    assert again["verdict"] == "replayed" and again["accepted"] is False
    assert "not above last accepted 5" in again["reason"]
    older = scan(api, sun_url=sun_url(keyring, SUN_UID, 4))  # a URL alone identifies the tag
    assert older["verdict"] == "replayed" and older["tag_id"] == sun_tag["id"]
    newer = scan(api, role="dispatcher", sun_url=sun_url(keyring, SUN_UID, 9))
    assert newer["verdict"] == "verified" and newer["counter"] == 9
    assert stored_counter(engine, sun_tag["id"]) == 9

    history = api.get("manager", SCANS).json()
    assert [s["verdict"] for s in history] == ["verified", "replayed", "replayed", "verified"]
    assert history[-1] == {**first, "duplicate": False}


def test_every_verdict_is_stored(api, engine, keyring, sun_tag, plain_tag, site):
    other_ring = KeyRing({1: bytes(16)})
    revoked = enroll(api, site["id"], "04112233445566").json()
    api.post("manager", f"/api/v1/tags/{revoked['id']}/revoke", json={"reason": "stolen"})
    good = sun_url(keyring, SUN_UID, 1)
    tampered = good[:-1] + ("0" if good[-1] != "0" else "1")
    cases = [
        ({"uid": PLAIN_UID}, "uid_only"),
        ({"uid": "04:a2:b3:c4:d5:e6:f7", "reader": "keyboard-wedge"}, "uid_only"),
        ({"uid": "04FFFFFFFFFF01"}, "unknown_tag"),
        ({"uid": "04112233445566"}, "revoked"),
        ({"sun_url": sun_url(keyring, "04112233445566", 3)}, "revoked"),
        ({"uid": SUN_UID}, "bad_mac"),  # a clone answering with the UID only
        ({"uid": SUN_UID, "sun_url": tampered}, "bad_mac"),
        ({"sun_url": tampered}, "bad_mac"),
        ({"uid": SUN_UID, "sun_url": sun_url(other_ring, SUN_UID, 2)}, "bad_mac"),
        ({"uid": "04DE5F1EACC041", "sun_url": sun_url(keyring, SUN_UID, 2)}, "bad_mac"),
        ({"uid": "not hex"}, "malformed"),
        ({"uid": "0102"}, "malformed"),
        ({"sun_url": "https://t.example/v?picc_data=XYZ&cmac=00"}, "malformed"),
        ({"uid": SUN_UID, "sun_url": "https://t.example/v?picc_data=" + "0" * 48
          + "&cmac=" + "0" * 16}, "malformed"),
        ({}, "malformed"),
        ({"reader": "acr122u"}, "malformed"),
        ({"uid": SUN_UID, "sun_url": good}, "verified"),
    ]
    results = [(scan(api, **body), expected) for body, expected in cases]
    for result, expected in results:
        assert result["verdict"] == expected, (result, expected)
        assert result["accepted"] == (expected in ("verified", "uid_only"))
        assert result["reason"]
    assert {r["verdict"] for r, _ in results} == {
        "verified", "uid_only", "unknown_tag", "revoked", "replayed", "bad_mac",
        "malformed"} - {"replayed"}
    assert results[0][0]["tag_id"] == plain_tag["id"] and results[0][0]["counter"] is None
    assert results[3][0]["tag_id"] == revoked["id"]
    assert results[2][0]["tag_id"] is None and results[2][0]["uid"] == "04FFFFFFFFFF01"
    assert results[10][0]["uid"] is None and results[10][0]["raw"] == {"uid": "not hex"}
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT verdict FROM tag_scans ORDER BY id")).scalars().all()
    assert stored == [expected for _, expected in cases]
    # bad MACs do not move the counter; the good scan does
    assert stored_counter(engine, sun_tag["id"]) == 1


def test_scan_validation_is_bounds_only(api):
    for body, field in (({"uid": "a" * 65}, "uid"), ({"sun_url": "x" * 2049}, "sun_url"),
                        ({"uid": "04A1", "position": {"lon": 0}}, "position.lat"),
                        ({"uid": "04A1", "scanned_at": "2026-01-05T08:00:00"}, "scanned_at"),
                        ({"uid": "04A1", "accuracy_m": -1}, "accuracy_m"),
                        ({"uid": "04A1", "client_id": "nope"}, "client_id")):
        r = api.post("technician", SCANS, json=body)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    assert api.post("agent", SCANS, json={"uid": PLAIN_UID}).status_code == 403
    assert api.get("manager", SCANS).json() == []


def test_concurrent_scans_with_one_counter_cannot_both_pass(api, engine, keyring, sun_tag):
    url = sun_url(keyring, SUN_UID, 42)
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda _: scan(api, uid=SUN_UID, sun_url=url)["verdict"],
                                 range(16)))
    assert verdicts.count("verified") == 1 and verdicts.count("replayed") == 15
    assert stored_counter(engine, sun_tag["id"]) == 42
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tag_scans")).scalar() == 16


def test_concurrent_rising_counters_keep_the_highest(api, engine, keyring, sun_tag):
    urls = [sun_url(keyring, SUN_UID, c) for c in range(10, 26)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda u: scan(api, sun_url=u), urls))
    verified = [r["counter"] for r in results if r["verdict"] == "verified"]
    assert verified and set(r["verdict"] for r in results) <= {"verified", "replayed"}
    # each accepted counter was above every counter accepted before it
    with engine.connect() as conn:
        accepted = conn.execute(text("SELECT counter FROM tag_scans WHERE verdict = 'verified' "
                                     "ORDER BY id")).scalars().all()
    assert accepted == sorted(accepted) and len(set(accepted)) == len(accepted)
    assert stored_counter(engine, sun_tag["id"]) == max(accepted)


def test_a_stale_read_is_judged_again_under_the_lock(app, api, keyring, sun_tag, users):
    """Scan B reads the counter before scan A commits: B's conditional UPDATE waits for A,
    matches nothing, and B is judged again under the row lock, as replayed."""
    import threading

    from server.auth.service import Principal
    from server.models import Role
    from server.tags.schemas import ScanIn
    from server.tags.service import ingest_scan

    who = Principal(users["technician"], "technician", Role.technician)
    body = ScanIn(sun_url=sun_url(keyring, SUN_UID, 5))
    now = api.client.app.state.clock.now()
    with app.state.sessionmaker() as a, app.state.sessionmaker() as b:
        assert ingest_scan(a, body, who, now, keyring).verdict.value == "verified"
        result = {}
        racer = threading.Thread(target=lambda: result.update(
            b=ingest_scan(b, body, who, now, keyring)))
        racer.start()
        racer.join(1.0)
        assert racer.is_alive()  # B waits on A's row lock, having judged "verified" already
        a.commit()
        racer.join(10)
        b.commit()
    assert result["b"].verdict.value == "replayed"
    assert "not above last accepted 5" in result["b"].scan.reason


def test_client_id_makes_a_resend_idempotent(api, engine, keyring, sun_tag):
    client_id = str(uuid.uuid4())
    body = {"uid": SUN_UID, "sun_url": sun_url(keyring, SUN_UID, 7), "client_id": client_id}
    r1 = api.post("technician", SCANS, json=body)
    r2 = api.post("technician", SCANS, json=body)
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r1.json()["verdict"] == r2.json()["verdict"] == "verified"
    assert r2.json()["id"] == r1.json()["id"] and r2.json()["duplicate"] is True
    r3 = api.post("technician", SCANS, json={**body, "uid": PLAIN_UID})
    assert r3.status_code == 409
    assert r3.json()["error"]["code"] == "client_id_reused"
    assert r3.json()["error"]["field"] == "client_id"

    # the same resend arriving many times at once: one stored scan, one verdict
    body = {"sun_url": sun_url(keyring, SUN_UID, 8), "client_id": str(uuid.uuid4())}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: api.post("technician", SCANS, json=body), range(8)))
    assert sorted(r.status_code for r in results) == [200] * 7 + [201]
    assert {r.json()["id"] for r in results} == {results[0].json()["id"]}
    assert {r.json()["verdict"] for r in results} == {"verified"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tag_scans")).scalar() == 2


def test_key_rotation(app, api, settings, site):
    version_1 = bytes.fromhex(settings.tag_master_keys[1].get_secret_value())
    rotated = KeyRing({1: version_1, 2: bytes(range(16))}, current_version=2)
    app.state.tag_keyring = rotated
    old = enroll(api, site["id"], SUN_UID, key_version=1).json()
    new = enroll(api, site["id"], "04112233445566").json()
    assert (old["key_version"], new["key_version"]) == (1, 2)
    assert scan(api, sun_url=sun_url(rotated, SUN_UID, 1, 1))["verdict"] == "verified"
    assert scan(api, sun_url=sun_url(rotated, "04112233445566", 1, 2))["verdict"] == "verified"
    # a message under a version the tag is not enrolled with does not pass
    assert scan(api, sun_url=sun_url(rotated, SUN_UID, 2, 2))["verdict"] == "bad_mac"

    # the master key of an enrolled version disappears: a deployment error, nothing stored
    app.state.tag_keyring = KeyRing({2: bytes(range(16))})
    r = api.post("technician", SCANS, json={"sun_url": sun_url(rotated, SUN_UID, 3, 1),
                                             "uid": SUN_UID})
    assert r.status_code == 503 and r.json()["error"]["code"] == "tag_keys_unavailable"
    assert len(api.get("manager", SCANS).json()) == 3


def test_encrypted_file_data(api, keyring, sun_tag):
    url = sun_url(keyring, SUN_UID, 3, file_data=b"meter 4711 ok   ")
    result = scan(api, sun_url=url)
    assert result["verdict"] == "verified" and "&enc=" in result["raw"]["sun_url"]


def test_history_filters(api, keyring, sun_tag, plain_tag, site):
    other = make_site(api, name="Other")
    moved = api.post("manager", f"/api/v1/tags/{plain_tag['id']}/move",
                     json={"site_id": other["id"]})
    assert moved.status_code == 200
    scan(api, uid=SUN_UID, sun_url=sun_url(keyring, SUN_UID, 1))
    scan(api, uid=PLAIN_UID)
    scan(api, uid="04FFFFFFFFFF01")
    scan(api, uid=SUN_UID, sun_url=sun_url(keyring, SUN_UID, 1))

    def ids(**params):
        r = api.get("manager", SCANS, params=params)
        assert r.status_code == 200, r.text
        return [(s["uid"], s["verdict"]) for s in r.json()]

    assert ids(site_id=site["id"]) == [(SUN_UID, "replayed"), (SUN_UID, "verified")]
    assert ids(site_id=other["id"]) == [(PLAIN_UID, "uid_only")]
    assert ids(tag_uid="04:de:5f:1e:ac:c0:40", verdict="verified") == [(SUN_UID, "verified")]
    assert ids(verdict="unknown_tag") == [("04FFFFFFFFFF01", "unknown_tag")]
    everything = api.get("admin", SCANS).json()
    assert len(everything) == 4
    page = api.get("manager", SCANS, params={"before_id": everything[1]["id"], "limit": 1})
    assert [s["id"] for s in page.json()] == [everything[2]["id"]]
    for params, field in (({"tag_uid": "xyz"}, "tag_uid"), ({"verdict": "ok"}, "verdict"),
                          ({"limit": 0}, "limit"), ({"site_id": 0}, "site_id")):
        r = api.get("manager", SCANS, params=params)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    assert api.get("technician", SCANS).status_code == 403


def test_scans_are_append_only(api, engine, plain_tag):
    scan(api, uid=PLAIN_UID)
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE tag_scans SET verdict = 'verified'"))
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM tag_scans"))


def test_counter_survives_a_server_restart(api, settings, clock, keyring, sun_tag):
    from server.app import create_app

    url = sun_url(keyring, SUN_UID, 11)
    assert scan(api, sun_url=url)["verdict"] == "verified"
    fresh = create_app(settings, clock=clock)  # a new process would start exactly like this
    try:
        with TestClient(fresh) as client:
            r = client.post(SCANS, json={"sun_url": url}, headers=api.headers("technician"))
            assert r.status_code == 201 and r.json()["verdict"] == "replayed"
    finally:
        fresh.state.engine.dispose()


def test_site_of_a_scan_is_the_tag_site_at_scan_time(api, keyring, plain_tag, site):
    other = make_site(api, name="Other", location={"lon": 24.95, "lat": 60.17})
    first = scan(api, uid=PLAIN_UID, position=HELSINKI)
    api.post("manager", f"/api/v1/tags/{plain_tag['id']}/move", json={"site_id": other["id"]})
    second = scan(api, uid=PLAIN_UID)
    assert (first["site_id"], second["site_id"]) == (site["id"], other["id"])
    assert first["position"] == HELSINKI and second["position"] is None
