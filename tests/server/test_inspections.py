"""Inspections: site types and checklist versions, evidence per visit for every tag verdict and
GPS state, the append-only hash chain (edits, deletions, reordering caught), corrections, the
MQTT uplink, roles and error JSON."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from mobile_app.link import protocol
from server.auth.service import Principal
from server.inspections import service
from server.inspections.schemas import VisitIn
from server.models import Device, Role
from tests.server.inspections_support import (
    GOOD_VALUES,
    ITEMS,
    PNG,
    World,
    attachment_refs,
    near,
    png,
)
from tests.server.tags_support import HELSINKI, PLAIN_UID, SUN_UID, sun_url
from tests.support import cli_env

GOOD = near(HELSINKI, 10)
FAR = near(HELSINKI, 400)


@pytest.fixture
def world(api, settings, clock) -> World:
    return World(api, settings, clock)


@pytest.fixture
def pump(world) -> dict:
    """A typed site with a SUN tag."""
    site = world.site("Pumping station 7", **HELSINKI)
    world.tag(site["id"], SUN_UID)
    return site


# --- site types, checklist versions, profiles -----------------------------------------------------

def test_checklist_versions_are_kept_for_old_visits(world, api, pump):
    st = world.site_type
    assert st["current"]["version"] == 1 and [i["key"] for i in st["current"]["items"]] == [
        i["key"] for i in ITEMS]
    v1 = world.visit(pump["id"], scan=world.scan(SUN_UID), position=GOOD)
    assert v1["template_version"] == 1
    r = api.post("manager", f"/api/v1/inspections/site-types/{st['id']}/templates", json={
        "items": [{"key": "pressure", "label": "Pressure", "kind": "number", "unit": "kPa",
                   "min": 200, "max": 600}]})
    assert r.status_code == 201 and r.json()["version"] == 2
    v2 = world.visit(pump["id"], scan=world.scan(SUN_UID), position=GOOD,
                     values={"pressure": 350})
    assert v2["template_version"] == 2 and v2["evidence"] == "verified" and v2["flags"] == []
    # the first visit still points at version 1, which still exists unchanged
    assert api.get("manager", f"/api/v1/inspections/visits/{v1['id']}").json()[
        "template_version"] == 1
    versions = api.get("technician", f"/api/v1/inspections/site-types/{st['id']}/templates").json()
    assert [v["version"] for v in versions] == [1, 2] and versions[0]["items"][0]["unit"] == "bar"
    # a handset still on version 1 may say so
    v3 = world.visit(pump["id"], scan=world.scan(SUN_UID), position=GOOD, template_version=1)
    assert v3["template_version"] == 1
    world.visit(pump["id"], scan=None, position=GOOD, template_version=9, expect=422)


def test_template_versions_cannot_be_changed(engine, world, pump):
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE inspection_checklist_templates SET items = '[]'"))


@pytest.mark.parametrize(("item", "field_part"), [
    ({"key": "p", "label": "P", "kind": "number", "min": 5, "max": 1}, "min is above max"),
    ({"key": "c", "label": "C", "kind": "choice", "options": ["only"]}, "at least two"),
    ({"key": "s", "label": "S", "kind": "signature"}, "names its signer"),
    ({"key": "Bad-Key", "label": "B", "kind": "text"}, "lower-case"),
    ({"key": "t", "label": "T", "kind": "text", "unit": "bar"}, "for number items"),
])
def test_bad_checklist_items_are_422_naming_the_problem(api, item, field_part):
    r = api.post("manager", "/api/v1/inspections/site-types",
                 json={"code": "x", "name": "X", "items": [item]})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_error" and field_part in err["message"]
    assert err["field"].startswith("items")


def test_site_type_codes_are_unique_and_profiles_validate(api, world, pump):
    r = api.post("manager", "/api/v1/inspections/site-types",
                 json={"code": "pump_station", "name": "again", "items": ITEMS})
    assert r.status_code == 409 and r.json()["error"]["code"] == "site_type_exists"
    r = api.put("manager", f"/api/v1/inspections/sites/{pump['id']}/profile",
                json={"site_type_id": 999})
    assert r.status_code == 422 and r.json()["error"]["field"] == "site_type_id"
    r = api.put("manager", f"/api/v1/inspections/sites/{pump['id']}/profile",
                json={"site_type_id": world.site_type["id"], "parent_site_id": pump["id"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "parent_site_id"
    hydrant = world.site("Hydrant H-3", HELSINKI["lon"] + 0.0003, HELSINKI["lat"])
    r = api.put("manager", f"/api/v1/inspections/sites/{hydrant['id']}/profile",
                json={"site_type_id": world.site_type["id"], "parent_site_id": pump["id"],
                      "tolerance_m": 20})
    assert r.status_code == 200 and r.json()["parent_site_id"] == pump["id"]
    assert api.get("technician", f"/api/v1/inspections/sites/{hydrant['id']}/profile"
                   ).json()["tolerance_m"] == 20
    r = api.put("manager", "/api/v1/inspections/sites/4242/profile",
                json={"site_type_id": world.site_type["id"]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_plan_validation_errors(api, world, pump):
    base = {"name": "P", "site_ids": [pump["id"]], "frequency": "daily", "window_start": "08:00",
            "window_end": "12:00", "starts_on": "2026-01-01",
            "technician_id": api.user_ids["technician"]}
    cases = [
        ({"site_ids": [pump["id"], 9999]}, 422, "site_ids"),
        ({"technician_id": api.user_ids["dispatcher"]}, 422, "technician_id"),
        ({"timezone": "Mars/Olympus"}, 422, "timezone"),
        ({"timezone": "Asia"}, 422, "timezone"),  # a directory of the zone database
        ({"window_end": "08:00"}, 422, "window_end"),
        ({"frequency": "weekly"}, 422, "weekday"),
        ({"day_of_month": 3}, 422, "day_of_month"),
        ({"crew_id": 1}, 422, "crew_id"),  # both assignees
        ({"site_ids": [pump["id"], pump["id"]]}, 422, "site_ids"),
        ({"frequency": "hourly"}, 422, "frequency"),
    ]
    for patch, status, field in cases:
        r = api.post("manager", "/api/v1/inspections/plans", json={**base, **patch})
        assert r.status_code == status, (patch, r.text)
        assert r.json()["error"]["field"] == field, (patch, r.json())
    r = api.post("manager", "/api/v1/inspections/plans",
                 json={**base, "frequency": "weekly", "weekday": 3})
    assert r.status_code == 201 and r.json()["weekday"] == 3
    plan = r.json()
    assert plan["timezone"] == "Asia/Shanghai"  # the default zone
    r = api.patch("manager", f"/api/v1/inspections/plans/{plan['id']}", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False


# --- evidence per visit ------------------------------------------------------------------------

def test_evidence_for_every_tag_verdict(world, api, pump):
    """With a good GPS fix: only a SUN-verified scan of this site's tag makes a visit verified."""
    other = world.site("Valve chamber 2", HELSINKI["lon"] + 0.01, HELSINKI["lat"])
    world.tag(other["id"], "04112233445566")
    plain_site = world.site("Meter room 5", HELSINKI["lon"] + 0.02, HELSINKI["lat"])
    world.tag(plain_site["id"], PLAIN_UID, sun=False)
    revoked_site = world.site("Hydrant 9", HELSINKI["lon"] + 0.03, HELSINKI["lat"])
    revoked_tag = world.tag(revoked_site["id"], "04AABBCCDDEE01", sun=False)
    assert api.post("manager", f"/api/v1/tags/{revoked_tag['id']}/revoke",
                    json={"reason": "stolen"}).status_code == 200

    verified = world.scan(SUN_UID)
    replayed = world.scan(url=verified["raw"]["sun_url"])
    cases = {
        "verified": (verified, pump, []),
        "replayed": (replayed, pump, ["tag_replayed"]),
        "bad_mac": (world.scan(SUN_UID, sun=False), pump, ["tag_bad_mac"]),
        "uid_only": (world.scan(PLAIN_UID, sun=False), plain_site, ["tag_uid_only"]),
        "unknown_tag": (world.scan("04FFEEDDCCBBAA", sun=False), pump,
                        ["scan_other_site", "tag_unknown_tag"]),
        "revoked": (world.scan("04AABBCCDDEE01", sun=False), revoked_site, ["tag_revoked"]),
        "malformed": (world.scan("not-a-uid", sun=False), pump,
                      ["scan_other_site", "tag_malformed"]),
        "other_site": (world.scan("04112233445566"), pump, ["scan_other_site"]),
    }
    for name, (scan, site, flags) in cases.items():
        if name != "other_site":
            assert scan["verdict"] == name, (name, scan)
        loc = api.get("manager", f"/api/v1/sites/{site['id']}").json()["location"]
        v = world.visit(site["id"], scan=scan, position=near(loc, 5))
        assert v["scan_verdict"] == scan["verdict"]
        assert v["flags"] == flags, name
        assert v["evidence"] == ("verified" if not flags else "flagged"), name
    # no scan at all
    v = world.visit(pump["id"], scan=None, position=GOOD)
    assert (v["evidence"], v["flags"]) == ("flagged", ["no_tag_scan"])


def test_evidence_for_every_gps_state(world, api, pump):
    cases = [
        (GOOD, None, [], 10.0),
        (GOOD, 8.0, [], 10.0),
        (FAR, 5.0, ["gps_too_far"], 400.0),
        (GOOD, 500.0, ["gps_inaccurate"], 10.0),
        (None, None, ["no_gps"], None),
    ]
    for position, accuracy, flags, distance in cases:
        extra = {"accuracy_m": accuracy} if accuracy is not None else {}
        v = world.visit(pump["id"], scan=world.scan(SUN_UID), position=position, **extra)
        assert v["flags"] == flags, (position, accuracy)
        assert v["evidence"] == ("flagged" if flags else "verified")
        if distance is None:
            assert v["distance_m"] is None
        else:
            assert v["distance_m"] == pytest.approx(distance, rel=0.01)
    # a site's own tolerance overrides the setting (50 m): 20 m here, the fix is 30 m away
    api.put("manager", f"/api/v1/inspections/sites/{pump['id']}/profile",
            json={"site_type_id": world.site_type["id"], "tolerance_m": 20})
    v = world.visit(pump["id"], scan=world.scan(SUN_UID), position=near(HELSINKI, 30))
    assert v["flags"] == ["gps_too_far"]


def test_uid_only_counts_when_the_deployment_says_so(engine, world, api, settings, clock):
    site = world.site("Meter room 5", **HELSINKI)
    world.tag(site["id"], PLAIN_UID, sun=False)
    scan = world.scan(PLAIN_UID, sun=False)
    cfg = service.InspectionConfig.from_settings(settings.model_copy(
        update={"inspection_accept_uid_only": True}))
    tech = Principal(id=api.user_ids["technician"], username="technician", role=Role.technician)
    with Session(engine) as session:
        v = service.submit_visit(session, VisitIn(
            site_id=site["id"], started_at=clock.now() - timedelta(minutes=3),
            finished_at=clock.now(), tag_scan_id=scan["id"], position=GOOD,
            values=GOOD_VALUES, attachments=attachment_refs(PNG)), tech, clock.now(), cfg)
        session.commit()
    assert (v.evidence, v.flags) == ("verified", [])


def test_scan_misuse_is_flagged(world, api, pump, clock):
    scan = world.scan(SUN_UID)
    first = world.visit(pump["id"], scan=scan, position=GOOD)
    assert first["evidence"] == "verified"
    # the same scan for a second visit
    assert world.visit(pump["id"], scan=scan, position=GOOD)["flags"] == ["scan_reused"]
    # a scan made by someone else (the manager scanned the tag)
    mgr_scan = world.scan(SUN_UID, role="manager")
    assert world.visit(pump["id"], scan=mgr_scan, position=GOOD)["flags"] == ["scan_other_user"]
    # a scan from two hours before the visit
    old = world.scan(SUN_UID)
    clock.advance(hours=2)
    assert world.visit(pump["id"], scan=old, position=GOOD)["flags"] == ["scan_time_gap"]


def test_checklist_values_are_typed_and_judged(world, api, pump):
    scan = world.scan(SUN_UID)
    for values, field in [({"pressure": "high"}, "values.pressure"),
                          ({"valve": "half"}, "values.valve"), ({"leak": "no"}, "values.leak"),
                          ({"nonsense": 1}, "values.nonsense"), ({"photo": "x"}, "values.photo")]:
        r = api.post("technician", "/api/v1/inspections/visits", json={
            "site_id": pump["id"], "started_at": "2026-01-05T07:50:00Z",
            "finished_at": "2026-01-05T07:55:00Z", "values": values})
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    v = world.visit(pump["id"], scan=scan, position=GOOD, values={"pressure": 9.5, "leak": True})
    assert v["evidence"] == "verified"  # presence is proven; the findings are listed
    assert v["flags"] == ["value_out_of_range", "checklist_incomplete"]


def test_attachments_are_content_addressed_and_checked(world, api, pump):
    data = png()
    r = api.client.post("/api/v1/inspections/attachments", content=data,
                        headers={**api.headers("technician"), "Content-Type": "image/png"})
    assert r.status_code == 201, r.text
    sha = r.json()["sha256"]
    again = api.client.post("/api/v1/inspections/attachments", content=data,
                            headers={**api.headers("technician"), "Content-Type": "image/png"})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    bad = api.client.post("/api/v1/inspections/attachments", content=b"GIF89a....",
                          headers={**api.headers("technician"), "Content-Type": "image/png"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "body"
    gif = api.client.post("/api/v1/inspections/attachments", content=b"GIF89a",
                          headers={**api.headers("technician"), "Content-Type": "image/gif"})
    assert gif.status_code == 422 and gif.json()["error"]["field"] == "content_type"
    got = api.get("manager", f"/api/v1/inspections/attachments/{sha}")
    assert got.status_code == 200 and got.content == data
    atts = [{"item": "photo", "kind": "photo", "sha256": sha, "content_type": "image/png",
             "size": len(data)},
            {"item": "sign", "kind": "signature", "sha256": sha, "content_type": "image/png",
             "size": len(data), "signer_name": "王芳"}]
    v = world.visit(pump["id"], scan=world.scan(SUN_UID), position=GOOD, attachments=atts)
    assert (v["evidence"], v["flags"]) == ("verified", [])
    assert v["attachments"][1]["signer_name"] == "王芳"
    wrong = [{**atts[0], "item": "sign"}]
    world.visit(pump["id"], scan=None, position=GOOD, attachments=wrong, expect=422)


def test_an_oversize_attachment_is_refused_before_it_is_read_whole_and_nothing_is_stored(
        app, api, engine, settings):
    url = "/api/v1/inspections/attachments"
    limit = settings.inspection_attachment_max_bytes
    headers = {**api.headers("technician"), "Content-Type": "image/png"}
    r = api.client.post(url, content=png() + bytes(limit), headers=headers)  # Content-Length says
    assert r.status_code == 413, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["field"]) == ("too_large", "body")

    # A chunked body (no Content-Length) of 4x the limit: reading stops once past the limit.
    chunk, chunks = 64 * 1024, 4 * limit // (64 * 1024)
    pulled = 0

    async def receive():
        nonlocal pulled
        pulled += 1
        body = png()[:8] + bytes(chunk - 8) if pulled == 1 else bytes(chunk)
        return {"type": "http.request", "body": body, "more_body": pulled < chunks}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": url, "raw_path": url.encode(), "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
             "headers": [(b"host", b"testserver"), (b"content-type", b"image/png"),
                         (b"authorization", headers["Authorization"].encode())]}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert start["status"] == 413 and body["error"]["field"] == "body"
    assert pulled <= limit // chunk + 1 < chunks
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM inspection_attachments")).scalar_one() == 0
    # exactly at the limit is accepted (and stored, through the thread pool)
    at_limit = png()
    at_limit += bytes(limit - len(at_limit))
    r = api.client.post(url, content=at_limit, headers=headers)
    assert r.status_code == 201 and r.json()["size"] == limit, r.text
    with engine.connect() as conn:
        assert conn.execute(text("SELECT size FROM inspection_attachments")).scalars().all() \
            == [limit]


# --- the hash chain ----------------------------------------------------------------------------

def _chain(world, pump, n=4) -> list[dict]:
    return [world.visit(pump["id"], scan=world.scan(SUN_UID), position=GOOD) for _ in range(n)]


def _tamper(pg_url: str, sql: str) -> None:
    """As the database superuser, with the append-only trigger switched off for this session."""
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=False) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql)
        conn.commit()


def test_records_are_append_only_and_chained(engine, world, api, pump):
    visits = _chain(world, pump)
    assert [v["site_seq"] for v in visits] == [1, 2, 3, 4]
    assert visits[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(visits))
    for sql in ("UPDATE inspection_records SET note = 'x'", "DELETE FROM inspection_records"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    r = api.get("manager", "/api/v1/inspections/verify")
    assert r.json() == {"ok": True, "sites": 1, "records": 4, "problems": []}


def test_verify_catches_an_edited_row(pg_url, world, api, pump):
    visits = _chain(world, pump)
    _tamper(pg_url, "UPDATE inspection_records SET \"values\" = jsonb_set(\"values\", "
                    "'{pressure}', '4.5') WHERE site_seq = 2")
    out = api.get("manager", f"/api/v1/inspections/verify?site_id={pump['id']}").json()
    assert out["ok"] is False
    assert [(p["problem"], p["site_seq"], p["record_id"]) for p in out["problems"]] == [
        ("edited", 2, visits[1]["id"])]


def test_verify_catches_an_edited_and_rehashed_row(pg_url, world, api, pump):
    """Rewriting a record together with its hash breaks the next record's link."""
    _chain(world, pump)
    _tamper(pg_url, "UPDATE inspection_records SET flags = '[]', evidence = 'verified', "
                    "hash = repeat('a', 64) WHERE site_seq = 2")
    problems = api.get("manager", "/api/v1/inspections/verify").json()["problems"]
    assert {(p["problem"], p["site_seq"]) for p in problems} == {("edited", 2), ("edited", 3)}


def test_verify_catches_a_deleted_row_and_a_deleted_tail(pg_url, world, api, pump):
    _chain(world, pump)
    _tamper(pg_url, "DELETE FROM inspection_records WHERE site_seq = 2")
    problems = api.get("manager", "/api/v1/inspections/verify").json()["problems"]
    assert [(p["problem"], p["site_seq"]) for p in problems] == [("missing", 3)]
    _tamper(pg_url, "DELETE FROM inspection_records WHERE site_seq = 4")
    problems = api.get("manager", "/api/v1/inspections/verify").json()["problems"]
    assert [(p["problem"], p["site_seq"]) for p in problems] == [("missing", 3), ("missing", None)]
    assert "newest records were deleted" in problems[1]["detail"]


def test_verify_catches_a_reordered_row(pg_url, world, api, pump):
    _chain(world, pump)
    _tamper(pg_url, "UPDATE inspection_records SET site_seq = site_seq + 100 WHERE site_seq IN "
                    "(2, 3); UPDATE inspection_records SET site_seq = 3 WHERE site_seq = 102;"
                    "UPDATE inspection_records SET site_seq = 2 WHERE site_seq = 103")
    problems = api.get("manager", "/api/v1/inspections/verify").json()["problems"]
    kinds = {(p["problem"], p["site_seq"]) for p in problems}
    assert ("reordered", 2) in kinds and ("reordered", 3) in kinds


def test_cli_verify_exit_codes(pg_url, world, pump):
    _chain(world, pump, 2)
    env = cli_env(CREWLINE_DATABASE_URL=pg_url, CREWLINE_ENV="test")

    def run():
        return subprocess.run([sys.executable, "-m", "server.cli", "inspections", "verify",
                               "--json"], env=env, capture_output=True, text=True, timeout=120)

    ok = run()
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    _tamper(pg_url, "UPDATE inspection_records SET note = 'changed later' WHERE site_seq = 1")
    bad = run()
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["problems"][0]["problem"] == "edited"


def test_concurrent_visits_to_one_site_make_one_unbroken_chain(engine, world, api, pump, clock,
                                                               settings):
    scans = [world.scan(SUN_UID) for _ in range(8)]
    cfg = service.InspectionConfig.from_settings(settings)
    tech = Principal(id=api.user_ids["technician"], username="technician", role=Role.technician)
    make = sessionmaker(engine)
    barrier, errors = threading.Barrier(8), []

    def submit(scan):
        try:
            with make() as session:
                barrier.wait()
                service.submit_visit(session, VisitIn(
                    site_id=pump["id"], started_at=clock.now() - timedelta(minutes=1),
                    finished_at=clock.now(), tag_scan_id=scan["id"], position=GOOD,
                    values=GOOD_VALUES), tech, clock.now(), cfg)
                session.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(s,)) for s in scans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    out = api.get("manager", "/api/v1/inspections/verify").json()
    assert out["ok"] and out["records"] == 8
    seqs = sorted(v["site_seq"] for v in api.get("manager", "/api/v1/inspections/visits").json())
    assert seqs == list(range(1, 9))


def test_one_scan_cited_concurrently_by_visits_at_two_sites_is_flagged_reused(
        world, api, pump, engine, settings, clock):
    other = world.site("Valve chamber 3", HELSINKI["lon"] + 0.0001, HELSINKI["lat"])
    scan = world.scan(SUN_UID)
    cfg = service.InspectionConfig.from_settings(settings)
    tech = Principal(id=api.user_ids["technician"], username="technician", role=Role.technician)
    make = sessionmaker(engine)

    def visit(session, site_id):
        return service.submit_visit(session, VisitIn(
            site_id=site_id, started_at=clock.now() - timedelta(minutes=1),
            finished_at=clock.now(), tag_scan_id=scan["id"], position=GOOD, values=GOOD_VALUES,
            attachments=attachment_refs(PNG)), tech, clock.now(), cfg)

    second: list = []
    with make() as first_session:
        first = visit(first_session, pump["id"])  # appended, not committed yet
        assert "scan_reused" not in first.flags

        def submit_second():
            with make() as session:
                second.append(visit(session, other["id"]))
                session.commit()

        thread = threading.Thread(target=submit_second)
        thread.start()
        # the second visit must wait for the first (blocked on a lock) or it has judged blind
        with engine.connect() as conn:
            while thread.is_alive() and not conn.execute(text(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one():
                conn.rollback()
                threading.Event().wait(0.01)
        first_session.commit()
        thread.join()
    assert "scan_reused" in second[0].flags


def test_corrections_are_new_records_pointing_at_the_old(world, api, pump):
    scan = world.scan(SUN_UID)
    original = world.visit(pump["id"], scan=scan, position=GOOD, values={**GOOD_VALUES,
                                                                         "pressure": 35})
    assert "value_out_of_range" in original["flags"]
    fixed = world.visit(pump["id"], scan=scan, position=GOOD, corrects_id=original["id"],
                        note="typo: 3.5 bar, not 35")
    assert fixed["corrects_id"] == original["id"] and fixed["flags"] == []  # scan reuse allowed
    assert api.get("manager", f"/api/v1/inspections/visits/{original['id']}").json()[
        "values"]["pressure"] == 35  # the original stays as it was
    # nobody else corrects a technician's visit; a correction names a visit of the same site
    other = world.site("Valve chamber 2", HELSINKI["lon"] + 0.01, HELSINKI["lat"])
    r = api.post("technician", "/api/v1/inspections/visits", json={
        "site_id": other["id"], "started_at": "2026-01-05T07:00:00Z",
        "finished_at": "2026-01-05T07:01:00Z", "corrects_id": original["id"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "corrects_id"
    r = api.post("admin", "/api/v1/inspections/visits", json={
        "site_id": pump["id"], "started_at": "2026-01-05T07:00:00Z",
        "finished_at": "2026-01-05T07:01:00Z", "corrects_id": original["id"],
        "values": GOOD_VALUES})
    assert r.status_code == 201  # admin is always allowed
    assert api.get("manager", "/api/v1/inspections/verify").json()["ok"]


def test_client_id_makes_a_resend_harmless(world, api, pump):
    cid = str(uuid.uuid4())
    first = world.visit(pump["id"], scan=world.scan(SUN_UID), position=GOOD, client_id=cid)
    again = world.visit(pump["id"], scan=None, position=GOOD, client_id=cid, expect=200)
    assert again["id"] == first["id"] and again["duplicate"] is True
    other = world.site("Valve chamber 2", HELSINKI["lon"] + 0.01, HELSINKI["lat"])
    r = world.visit(other["id"], scan=None, position=GOOD, client_id=cid, expect=409)
    assert r["error"]["code"] == "client_id_reused"


# --- MQTT ----------------------------------------------------------------------------------------

def test_mqtt_inspection_uplink_through_the_bridge(app, engine, api, world, pump, clock, settings):
    from server.devices.bridge import Bridge

    with Session(engine) as session:
        session.add(Device(id="hs-insp", user_id=api.user_ids["technician"], name="hs-insp",
                           password_hash="x", created_at=clock.now(),
                           created_by=api.user_ids["admin"]))
        session.commit()
    bridge = Bridge(settings, app.state.sessionmaker, clock)
    scan_msg = protocol.uplink("tag_scan", clock.now(), scan={
        "sun_url": sun_url(world.keyring, SUN_UID, 50), "position": GOOD})
    visit = {"site_id": pump["id"], "started_at": (clock.now() - timedelta(minutes=4)).isoformat(),
             "finished_at": clock.now().isoformat(), "tag_scan_msg_id": scan_msg["msg_id"],
             "position": GOOD, "accuracy_m": 6, "values": GOOD_VALUES,
             "attachments": attachment_refs(PNG)}
    msg = protocol.uplink("inspection", clock.now(), visit=visit)
    # the visit overtakes its scan: not acked, so the handset sends it again later
    early = bridge.handle_batch([(protocol.up_topic("hs-insp", "inspection"),
                                  json.dumps(msg).encode())])
    assert early[0].status == "failed" and early[0].ack is None
    outs = bridge.handle_batch([
        (protocol.up_topic("hs-insp", "tag_scan"), json.dumps(scan_msg).encode()),
        (protocol.up_topic("hs-insp", "inspection"), json.dumps(msg).encode())])
    assert [o.status for o in outs] == ["accepted", "accepted"], outs
    again = bridge.handle(protocol.up_topic("hs-insp", "inspection"), json.dumps(msg).encode())
    assert again.status == "duplicate" and again.ack["result"] == "accepted"
    visits = api.get("manager", "/api/v1/inspections/visits").json()
    assert len(visits) == 1
    v = visits[0]
    assert (v["source"], v["client_id"], v["evidence"], v["flags"]) == (
        "mqtt", msg["msg_id"], "verified", [])
    # a visit the domain refuses is acked as rejected
    bad = protocol.uplink("inspection", clock.now(), visit={**visit, "site_id": 9999,
                                                            "tag_scan_msg_id": None})
    out = bridge.handle(protocol.up_topic("hs-insp", "inspection"), json.dumps(bad).encode())
    assert out.status == "rejected" and out.ack["error"]["field"] == "site_id"
    # a scan that never comes: resent for an hour, then rejected for good
    lost = protocol.uplink("inspection", clock.now(), visit={
        **visit, "tag_scan_msg_id": str(uuid.uuid4())})
    topic = protocol.up_topic("hs-insp", "inspection")
    assert bridge.handle_batch([(topic, json.dumps(lost).encode())])[0].status == "failed"
    clock.advance(minutes=61)
    out = bridge.handle(topic, json.dumps(lost).encode())
    assert out.status == "rejected" and out.ack["error"]["code"] == "tag_scan_missing"
    # a schema-invalid one is a dead letter
    broken = protocol.uplink("inspection", clock.now(), visit={"site_id": "x"})
    out = bridge.handle(protocol.up_topic("hs-insp", "inspection"), json.dumps(broken).encode())
    assert (out.status, out.reason) == ("dead_letter", "schema_invalid")


# --- roles and errors ----------------------------------------------------------------------------

def test_roles(api, world, pump):
    st = world.site_type
    visit = world.visit(pump["id"], scan=world.scan(SUN_UID), position=GOOD)
    expect = {
        ("GET", "/api/v1/inspections/plans"): {"dispatcher", "manager", "admin"},
        ("GET", "/api/v1/inspections/rounds"): {"technician", "dispatcher", "manager", "admin"},
        ("GET", "/api/v1/inspections/visits"): {"technician", "dispatcher", "manager", "admin"},
        ("GET", f"/api/v1/inspections/visits/{visit['id']}"): {"technician", "dispatcher",
                                                               "manager", "admin"},
        ("GET", "/api/v1/inspections/verify"): {"dispatcher", "manager", "admin"},
        ("GET", "/api/v1/inspections/exceptions?since=2026-01-05T00:00:00Z"
                "&until=2026-01-06T00:00:00Z"): {"dispatcher", "manager", "admin"},
        ("GET", "/api/v1/inspections/compliance?date_from=2026-01-05&date_to=2026-01-05"):
            {"dispatcher", "manager", "admin"},
        ("GET", f"/api/v1/inspections/technicians/{api.user_ids['technician']}/day"
                "?date=2026-01-05"): {"dispatcher", "manager", "admin"},
        ("POST", f"/api/v1/inspections/site-types/{st['id']}/templates"): {"manager", "admin"},
        ("POST", "/api/v1/inspections/visits"): {"technician", "admin"},
    }
    bodies = {"templates": {"items": ITEMS},
              "visits": {"site_id": pump["id"], "started_at": "2026-01-05T07:00:00Z",
                         "finished_at": "2026-01-05T07:01:00Z", "values": GOOD_VALUES}}
    for (method, url), allowed in expect.items():
        for role in ("agent", "technician", "dispatcher", "manager", "admin"):
            if method == "GET":
                r = api.get(role, url)
            else:
                r = api.post(role, url, json=bodies[url.rsplit("/", 1)[-1]])
            ok = r.status_code in (200, 201)
            assert ok == (role in allowed), (method, url, role, r.status_code, r.text)
            if not ok:
                assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert api.client.get("/api/v1/inspections/plans").status_code == 401
    # technicians see only their own visits
    assert api.get("technician", "/api/v1/inspections/visits").json()
    other_visit = api.get("admin", "/api/v1/inspections/visits").json()[0]
    assert other_visit["technician"] == "admin"
    r = api.get("technician", f"/api/v1/inspections/visits/{other_visit['id']}")
    assert r.status_code == 403


def test_error_json(api):
    r = api.get("manager", "/api/v1/inspections/rounds/12345")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message": "round 12345 does not exist",
                                  "field": "round_id"}}
    r = api.post("technician", "/api/v1/inspections/visits", json={
        "site_id": 1, "started_at": "2026-01-05T08:00:00", "finished_at": "2026-01-05T08:01:00Z"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "started_at"
    r = api.post("technician", "/api/v1/inspections/visits", json={
        "site_id": 1, "started_at": "2026-01-05T08:00:00Z", "finished_at": "2026-01-05T07:00:00Z"})
    assert r.status_code == 422 and "before started_at" in r.json()["error"]["message"]
    r = api.post("technician", "/api/v1/inspections/visits", json={
        "site_id": 777, "started_at": "2026-01-05T07:00:00Z",
        "finished_at": "2026-01-05T07:01:00Z", "tag_scan_id": 5})
    assert r.status_code == 422 and r.json()["error"]["field"] == "site_id"
    r = api.get("manager", "/api/v1/inspections/exceptions?since=2026-01-05T00:00:00"
                           "&until=2026-01-06T00:00:00Z")
    assert r.status_code == 422 and r.json()["error"]["field"] == "since"
    reasons = api.get("technician", "/api/v1/inspections/reasons").json()
    assert reasons["tag_uid_only"]["zh-CN"].startswith("普通标签")


def test_a_plan_whose_round_would_not_fit_one_message_is_refused(api, world):
    big = [{"key": f"item_{i}", "label": "L" * 200, "label_zh": "检" * 200, "kind": "yes_no"}
           for i in range(100)]
    world.site_type_with_checklist("big", items=big)
    site = world.site("Big station", **HELSINKI)
    r = api.post("manager", "/api/v1/inspections/plans", json={
        "name": "P", "site_ids": [site["id"]], "frequency": "daily", "window_start": "08:00",
        "window_end": "12:00", "starts_on": "2026-01-01",
        "technician_id": api.user_ids["technician"]})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "plan_too_large"
    assert r.json()["error"]["field"] == "site_ids"


def test_visit_times_in_the_future_are_refused(api, world, pump):
    r = api.post("technician", "/api/v1/inspections/visits", json={
        "site_id": pump["id"], "started_at": "2026-01-05T08:00:00Z",
        "finished_at": "2026-01-05T08:10:00Z"})  # the server's clock says 08:00
    assert r.status_code == 422
    assert (r.json()["error"]["code"], r.json()["error"]["field"]) == ("in_the_future",
                                                                       "finished_at")


def test_odd_numbers_hash_the_same_after_the_database_round_trip(world, api, pump):
    for value in (5, 5.0, 0.1 + 0.2, 1e-7, 123456789012.5, -0.0, 2.5e-300, 999999999999999):
        world.visit(pump["id"], scan=None, position=None, values={"pressure": value})
    out = api.get("manager", "/api/v1/inspections/verify").json()
    assert out["ok"] and out["records"] == 8, out["problems"]
    for bad in (1e16, -2e15):
        r = api.post("technician", "/api/v1/inspections/visits", json={
            "site_id": pump["id"], "started_at": "2026-01-05T07:00:00Z",
            "finished_at": "2026-01-05T07:01:00Z", "values": {"pressure": bad}})
        assert r.status_code == 422 and r.json()["error"]["field"] == "values.pressure"
    r = api.post("technician", "/api/v1/inspections/visits", json={
        "site_id": pump["id"], "started_at": "2026-01-05T07:00:00Z",
        "finished_at": "2026-01-05T07:01:00Z", "values": {"remarks": "a\u0000b"}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "values.remarks"


def test_every_flag_and_anomaly_has_both_languages():
    from server.inspections.evidence import ALL_FLAGS
    from server.inspections.texts import REASONS, VERDICTS

    kinds = ("impossible_travel", "cloned_tag_pattern", "missing_gps", "missed_checkpoint",
             "done", "late", "missed", "pending", "verified", "flagged")
    for code in (*ALL_FLAGS, *kinds):
        en, zh = REASONS[code]
        assert en and zh and en != zh, code
    assert set(VERDICTS) == {"verified", "uid_only", "unknown_tag", "revoked", "replayed",
                             "bad_mac", "malformed"}
