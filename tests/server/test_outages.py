"""Outages: areas selected exactly (holes, boundaries, geodesic buffers, streets), the preview
count, notifications (declaration, each ETR change once, restoration, planned notices ahead),
the lifecycle, audit, roles and error JSON."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from server.outages import service
from server.outages.schemas import OutagePatch
from tests.support import cli_env

from .outage_support import (
    ETR,
    HOLE,
    INSIDE,
    OUTER,
    POLYGON_WITH_HOLE,
    add_customer,
    declare,
    messages,
    polygon,
)


@pytest.fixture
def ring(engine):
    """Customers around the polygon with a hole, labelled by where they are."""
    places = {
        "inside": INSIDE,
        "outer_edge": (24.91, 60.16),          # on the outer ring's south edge
        "outer_vertex": (24.92, 60.17),        # on a corner of the outer ring
        "hole_edge": (24.91, 60.163),          # on the hole's ring
        "in_hole": (24.91, 60.165),            # strictly inside the hole
        "just_outside": (24.92 + 1e-7, 60.165),
        "far": (24.95, 60.20),
    }
    return {name: add_customer(engine, *p) for name, p in places.items()}


AFFECTED = {"inside", "outer_edge", "outer_vertex", "hole_edge"}


def test_polygon_with_a_hole_selects_exactly_and_counts_the_boundary(api, engine, ring):
    preview = api.post("dispatcher", "/api/v1/outages/preview", json={"area": polygon()})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert (body["service_points"], body["customers"], body["reachable_by_sms"]) == (4, 4, 4)
    assert body["area"]["type"] == "MultiPolygon" and body["area_m2"] > 900_000
    assert messages(engine) == []  # a preview sends nothing

    outage = declare(api, polygon())
    assert outage["status"] == "confirmed" and outage["affected_customers"] == 4
    texted = {m["customer_id"] for m in messages(engine)}
    assert texted == {ring[n]["id"] for n in AFFECTED}


def test_point_buffer_is_geodesic_metres_and_its_edge_counts(api, engine):
    center = {"lon": 24.9384, "lat": 60.1699}
    with engine.connect() as conn:
        def at(distance, azimuth):
            return conn.execute(text(
                "SELECT ST_X(p::geometry), ST_Y(p::geometry) FROM (SELECT ST_Project("
                "geography(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)), :d, radians(:az)) AS p) x"),
                {**center, "d": distance, "az": azimuth}).one()
        near = [at(499.5, az) for az in (0, 45, 90, 200, 333)]
        beyond = [at(500.5, az) for az in (0, 45, 90, 200, 333)]
    inside = [add_customer(engine, *p)["id"] for p in near]
    for p in beyond:
        add_customer(engine, *p)
    area = {"kind": "buffer", "center": center, "radius_m": 500}
    assert api.post("dispatcher", "/api/v1/outages/preview",
                    json={"area": area}).json()["customers"] == 5
    declare(api, area)
    assert sorted(m["customer_id"] for m in messages(engine)) == sorted(inside)


@pytest.fixture
def streets(engine):
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO road_edges (id, source, target, cost, reverse_cost, length_m, speed_kmh,
                osm_id, highway, name, oneway, geom) VALUES
            (990001, 990001, 990002, 10, 10, 100, 30, 1, 'residential', 'Testikatu', 0,
             ST_GeomFromText('LINESTRING(24.9300 60.1800, 24.9320 60.1800)', 4326)),
            (990002, 990003, 990004, 10, 10, 100, 30, 2, 'residential', 'Koekuja', 0,
             ST_GeomFromText('LINESTRING(24.9400 60.1900, 24.9400 60.1920)', 4326))"""))
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM road_edges WHERE id IN (990001, 990002)"))


def test_selected_streets_by_edge_id_or_name(api, engine, streets):
    on_testikatu = add_customer(engine, 24.931, 60.1802)   # ~22 m north of the street
    off_testikatu = add_customer(engine, 24.931, 60.1806)  # ~67 m north
    on_koekuja = add_customer(engine, 24.9403, 60.191)     # ~17 m east
    by_id = api.post("dispatcher", "/api/v1/outages/preview", json={
        "area": {"kind": "streets", "edge_ids": [990001], "buffer_m": 30}}).json()
    assert by_id["customers"] == 1
    outage = declare(api, {"kind": "streets", "names": ["testikatu", "KOEKUJA"], "buffer_m": 30})
    assert outage["area_kind"] == "streets"
    assert outage["area_spec"]["names"] == ["koekuja", "testikatu"]
    assert {m["customer_id"] for m in messages(engine)} == {on_testikatu["id"], on_koekuja["id"]}
    assert off_testikatu["id"] not in {m["customer_id"] for m in messages(engine)}
    r = api.post("dispatcher", "/api/v1/outages/preview",
                 json={"area": {"kind": "streets", "names": ["Nowhere street"]}})
    assert r.status_code == 422
    assert r.json()["error"] == {"code": "unknown_street", "field": "area.names",
                                 "message": "no street named 'nowhere street'"}
    r = api.post("dispatcher", "/api/v1/outages/preview",
                 json={"area": {"kind": "streets", "edge_ids": [990001, 12345678]}})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "area.edge_ids")


def test_invalid_areas_are_refused_with_the_reason(api):
    bowtie = {"type": "Polygon", "coordinates": [[[24.90, 60.16], [24.92, 60.17], [24.92, 60.16],
                                                  [24.90, 60.17], [24.90, 60.16]]]}
    r = api.post("dispatcher", "/api/v1/outages/preview", json={"area": polygon(bowtie)})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_area" and error["field"] == "area"
    assert "Self-intersection" in error["message"]
    unclosed = {"type": "Polygon", "coordinates": [[[24.90, 60.16], [24.92, 60.17],
                                                    [24.92, 60.16]]]}
    r = api.post("dispatcher", "/api/v1/outages/preview", json={"area": polygon(unclosed)})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_area")
    r = api.post("dispatcher", "/api/v1/outages/preview", json={"area": polygon(
        {"type": "Polygon", "coordinates": [[[190, 60], [24, 61], [25, 61], [190, 60]]]})})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_error")
    assert r.json()["error"]["field"].startswith("area.polygon.geometry")
    r = api.post("dispatcher", "/api/v1/outages/preview",
                 json={"area": {"kind": "buffer", "center": {"lon": 24.9, "lat": 60.1},
                                "radius_m": -5}})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "area.buffer.radius_m")


def test_declaration_texts_every_affected_customer_once_in_their_language(api, engine):
    zh = add_customer(engine, *INSIDE)
    en = add_customer(engine, 24.903, 60.161, language="en")
    no_consent = add_customer(engine, 24.904, 60.161, consent=False)
    opted_out = add_customer(engine, 24.9041, 60.1611)
    landline = add_customer(engine, 24.9042, 60.1612, phone="+861065529988", kind="landline")
    family = add_customer(engine, 24.9043, 60.1613, phone=zh["phone"])  # shares zh's mobile
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sms_opt_outs (e164, source, opted_out_at) "
                          "VALUES (:e, 'keyword', now())"), {"e": opted_out["phone"]})
    outage = declare(api, polygon())
    ms = {m["to_e164"]: m for m in messages(engine)}
    assert set(ms) == {zh["phone"], en["phone"], no_consent["phone"], opted_out["phone"]}
    assert len(messages(engine)) == 4  # the family sharing zh's mobile: one text to the number
    assert ms[zh["phone"]]["customer_id"] in (zh["id"], family["id"])
    assert landline["phone"] not in ms
    assert ms[zh["phone"]]["body"] == ("【Crewline】停供通知：Kamppi因故障暂停供应，预计01-05 18:00恢复。"
                                       "给您带来不便，敬请谅解。")
    assert ms[en["phone"]]["body"].startswith("Crewline: supply interrupted in Kamppi. Expected "
                                              "restoration 01-05 18:00.")
    assert all(m["urgent"] and m["outage_ref"] == outage["ref"] for m in ms.values())
    assert (ms[no_consent["phone"]]["status"], ms[no_consent["phone"]]["error_code"]) == \
        ("suppressed", "no_consent")
    assert (ms[opted_out["phone"]]["status"], ms[opted_out["phone"]]["error_code"]) == \
        ("suppressed", "opted_out")
    detail = api.get("agent", f"/api/v1/outages/{outage['id']}").json()
    assert detail["notice_sent_at"] is not None
    notified = [e for e in detail["events"] if e["kind"] == "notified"]
    assert notified[0]["data"] == {"template": "outage_notice", "queued": 4}
    assert {(s["status"], s["count"]) for s in detail["sms"]} == {("pending", 2),
                                                                  ("suppressed", 2)}


def test_each_etr_change_sends_exactly_one_update_per_customer(api, engine):
    people = [add_customer(engine, 24.901 + i * 0.001, 60.161) for i in range(5)]
    outage = declare(api, polygon())
    url = f"/api/v1/outages/{outage['id']}"
    for etr in ("2026-01-05T19:30:00+08:00", "2026-01-05T19:30:00+08:00",  # a retried PATCH
                "2026-01-05T21:00:00+08:00", ETR):  # and back to the first ETR
        r = api.patch("dispatcher", url, json={"etr": etr})
        assert r.status_code == 200, r.text
    updates = messages(engine, "template = 'etr_change'")
    assert len(updates) == 3 * len(people)
    for person in people:
        bodies = [m["body"] for m in updates if m["customer_id"] == person["id"]]
        assert [b[-12:-1] for b in bodies] == ["01-05 19:30", "01-05 21:00", "01-05 18:00"]
    detail = api.get("agent", url).json()
    assert detail["etr_revision"] == 3
    assert [e["data"]["etr_revision"] for e in detail["events"] if e["kind"] == "etr_changed"] \
        == [1, 2, 3]
    # a name change is audited but texts nobody
    assert api.patch("dispatcher", url, json={"area_name": "Kamppi west"}).status_code == 200
    assert len(messages(engine, "template = 'etr_change'")) == 15


def test_concurrent_identical_etr_changes_send_one_batch(app, api, engine, clock, users):
    from server.auth.service import Principal
    from server.models import Role

    for i in range(3):
        add_customer(engine, 24.901 + i * 0.001, 60.161)
    outage = declare(api, polygon())
    actor = Principal(users["dispatcher"], "dispatcher", Role.dispatcher)
    policy = service.OutagePolicy()
    barrier = threading.Barrier(4)
    errors = []

    def change():
        try:
            with app.state.sessionmaker() as session:
                barrier.wait(5)
                service.update(session, outage["id"], OutagePatch(etr=datetime.fromisoformat(
                    "2026-01-05T20:00:00+08:00")), actor, clock.now(), policy)
                session.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=change) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert len(messages(engine, "template = 'etr_change'")) == 3
    assert api.get("agent", f"/api/v1/outages/{outage['id']}").json()["etr_revision"] == 1


def test_lifecycle_restoration_and_invalid_moves(api, engine):
    add_customer(engine, *INSIDE)
    add_customer(engine, 24.903, 60.161, language="en")
    outage = declare(api, polygon())
    url = f"/api/v1/outages/{outage['id']}/transitions"
    r = api.post("dispatcher", url, json={"to": "restoring", "note": "crew on site"})
    assert r.status_code == 200 and r.json()["allowed_transitions"] == ["restored", "confirmed"]
    assert messages(engine, "template = 'restoration'") == []
    r = api.post("manager", url, json={"to": "restored"})
    assert r.status_code == 200 and r.json()["restored_at"] is not None
    assert len(messages(engine, "template = 'restoration'")) == 2
    r = api.post("dispatcher", url, json={"to": "confirmed"})
    assert r.status_code == 409
    assert r.json()["error"] == {"code": "invalid_transition", "field": "to", "message":
                                 f"outage {outage['ref']} is restored; it can go to nowhere "
                                 "(final)"}
    r = api.patch("dispatcher", f"/api/v1/outages/{outage['id']}", json={"etr": ETR})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "outage_closed")
    assert len(messages(engine)) == 4  # notice + restoration, nothing else
    kinds = [(e["kind"], e["from_status"], e["to_status"]) for e in
             api.get("agent", f"/api/v1/outages/{outage['id']}").json()["events"]]
    assert kinds == [("declared", None, "confirmed"), ("notified", None, None),
                     ("restoring", "confirmed", "restoring"), ("restored", "restoring", "restored"),
                     ("notified", None, None)]


def test_suspected_outage_confirmed_or_dismissed(api, engine):
    add_customer(engine, *INSIDE)
    suspected = declare(api, polygon(), status="suspected", etr=None)
    assert suspected["notice_sent_at"] is None and messages(engine) == []
    url = f"/api/v1/outages/{suspected['id']}/transitions"
    r = api.post("dispatcher", url, json={"to": "restored"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "invalid_transition")
    assert "confirmed, dismissed" in r.json()["error"]["message"]
    r = api.post("dispatcher", url, json={"to": "confirmed"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "etr_required")
    r = api.post("dispatcher", url, json={"to": "confirmed", "etr": ETR})
    assert r.status_code == 200 and r.json()["notice_sent_at"] is not None
    assert len(messages(engine, "template = 'outage_notice'")) == 1
    other = declare(api, polygon(), status="suspected", etr=None)
    r = api.post("dispatcher", f"/api/v1/outages/{other['id']}/transitions",
                 json={"to": "dismissed", "note": "a single burst pipe"})
    assert r.status_code == 200 and r.json()["closed_at"] is not None
    assert len(messages(engine)) == 1


def test_declaration_errors(api):
    r = api.post("dispatcher", "/api/v1/outages", json={
        "type": "water_outage", "area_name": "X", "area": polygon()})
    assert r.status_code == 422 and r.json()["error"]["code"] == "etr_required"
    r = api.post("dispatcher", "/api/v1/outages", json={
        "type": "water_outage", "area_name": "X", "area": polygon(),
        "starts_at": "2026-01-05T20:00:00+08:00", "etr": "2026-01-05T19:00:00+08:00"})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "etr")
    r = api.post("dispatcher", "/api/v1/outages", json={
        "type": "water_outage", "area_name": "X", "area": polygon(), "etr": "2026-01-05T19:00"})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "etr")
    r = api.post("dispatcher", "/api/v1/outages", json={
        "type": "flood", "area_name": "X", "area": polygon(), "etr": ETR})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "type")
    assert api.get("agent", "/api/v1/outages/999").json()["error"]["code"] == "not_found"


def test_every_time_given_needs_a_zone_and_the_error_names_its_field(api):
    naive = "2026-01-05T19:00:00"

    def refused(r, field):
        error = r.json()["error"]
        assert (r.status_code, error["code"], error["field"]) == (422, "validation_error", field)
        assert error["details"][0]["type"] == "timezone_aware"

    refused(api.post("dispatcher", "/api/v1/outages", json={
        "type": "water_outage", "area_name": "X", "area": polygon(), "starts_at": naive,
        "etr": ETR}), "starts_at")
    suspected = declare(api, polygon(), status="suspected", etr=None)
    refused(api.client.patch(f"/api/v1/outages/{suspected['id']}", json={"etr": naive},
                             headers=api.headers("dispatcher")), "etr")
    refused(api.post("dispatcher", f"/api/v1/outages/{suspected['id']}/transitions",
                     json={"to": "confirmed", "etr": naive}), "etr")
    assert api.get("agent", f"/api/v1/outages/{suspected['id']}").json()["status"] == "suspected"


def test_planned_maintenance_is_announced_ahead_exactly_once(app, api, engine, clock):
    add_customer(engine, *INSIDE)
    add_customer(engine, 24.903, 60.161, language="en")
    start = clock.now() + timedelta(hours=48)
    outage = declare(api, polygon(), type="planned_maintenance", area_name="Kamppi",
                     starts_at=start.isoformat(), etr=(start + timedelta(hours=6)).isoformat())
    assert outage["notice_sent_at"] is None and messages(engine) == []
    policy = service.OutagePolicy(planned_notice_hours=24)
    with app.state.sessionmaker() as session:
        assert service.send_due_planned_notices(session, clock.now(), policy) == []
        session.commit()
    clock.advance(hours=24, minutes=1)
    api.renew_tokens()
    sent = []
    for _ in range(3):  # the periodic task runs again and again
        with app.state.sessionmaker() as session:
            sent += service.send_due_planned_notices(session, clock.now(), policy)
            session.commit()
    assert sent == [outage["id"]]
    ms = messages(engine)
    assert len(ms) == 2 and {m["template"] for m in ms} == {"planned_notice"}
    # 08:01 UTC = 16:01 in Shanghai: no quiet hours, so not urgent; start 01-07 16:00 local
    assert not any(m["urgent"] for m in ms)
    assert "01-07 16:00至01-07 22:00" in next(m["body"] for m in ms if m["language"] == "zh-CN")
    # an outage starting before the quiet hours end is urgent: its notice must not wait
    clock.set(clock.now().replace(hour=14))  # 22:00 in Shanghai
    api.renew_tokens()
    start = clock.now() + timedelta(hours=5)  # 03:00 local, before 08:00
    soon = declare(api, polygon(), type="planned_maintenance", starts_at=start.isoformat(),
                   etr=(start + timedelta(hours=2)).isoformat())
    assert soon["notice_sent_at"] is not None  # within the lead: at once
    assert all(m["urgent"] for m in messages(engine, "outage_ref = :r", r=soon["ref"]))


def test_linking_a_ticket_by_hand(api, engine):
    outage = declare(api, polygon())
    ticket = api.post("agent", "/api/v1/tickets", json={
        "category": "complaint", "description": "billing", "location": {"lon": 24.95,
                                                                          "lat": 60.2}}).json()
    tid = ticket["ticket"]["id"]
    url = f"/api/v1/outages/{outage['id']}/tickets"
    r = api.post("dispatcher", url, json={"ticket_id": tid})
    assert r.status_code == 201 and [t["ticket_id"] for t in r.json()["tickets"]] == [tid]
    r = api.post("dispatcher", url, json={"ticket_id": tid})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "already_linked")
    r = api.post("dispatcher", url, json={"ticket_id": 999999})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "ticket_id")
    events = api.get("agent", f"/api/v1/tickets/{tid}").json()["events"]
    assert events[-1]["kind"] == "outage_linked" and events[-1]["data"]["ref"] == outage["ref"]


def test_a_link_made_meanwhile_answers_a_manual_link_409_not_500(api, engine):
    mine = declare(api, polygon())
    theirs = declare(api, polygon(), area_name="Töölö")
    ticket = api.post("agent", "/api/v1/tickets", json={
        "category": "complaint", "description": "billing", "location": {"lon": 24.95,
                                                                          "lat": 60.2}}).json()
    tid = ticket["ticket"]["id"]
    answers: list = []
    with engine.connect() as conn:
        # inference (or absorption) links the ticket to the other outage, not committed yet
        conn.execute(text("INSERT INTO outage_tickets (ticket_id, outage_id, source, linked_at) "
                          "VALUES (:t, :o, 'inferred', now())"), {"t": tid, "o": theirs["id"]})
        thread = threading.Thread(target=lambda: answers.append(api.post(
            "dispatcher", f"/api/v1/outages/{mine['id']}/tickets", json={"ticket_id": tid})))
        thread.start()
        with engine.connect() as watch:  # the manual link waits on the uncommitted one
            while thread.is_alive() and not watch.execute(text(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one():
                watch.rollback()
                threading.Event().wait(0.01)
        conn.commit()
        thread.join()
    r = answers[0]
    assert (r.status_code, r.json()["error"]["code"]) == (409, "already_linked"), r.text
    assert theirs["ref"] in r.json()["error"]["message"]
    detail = api.get("agent", f"/api/v1/outages/{mine['id']}").json()
    assert detail["tickets"] == [] and [e for e in detail["events"]
                                     if e["kind"] == "ticket_linked"] == []


def test_roles(api):
    area = {"area": polygon()}
    for role in ("agent", "technician"):
        r = api.post(role, "/api/v1/outages/preview", json=area)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        r = api.post(role, "/api/v1/outages", json={"type": "water_outage", "area_name": "X",
                                                    "etr": ETR, **area})
        assert r.status_code == 403
    outage = declare(api, polygon(), role="manager")
    declare(api, polygon(), role="admin")
    for role in ("agent", "dispatcher", "manager", "admin"):
        assert api.get(role, "/api/v1/outages").status_code == 200
        assert api.get(role, f"/api/v1/outages/{outage['id']}").status_code == 200
    assert api.get("technician", "/api/v1/outages").status_code == 403
    r = api.post("agent", f"/api/v1/outages/{outage['id']}/transitions", json={"to": "restored"})
    assert r.status_code == 403
    assert api.client.get("/api/v1/outages").status_code == 401


def test_list_filters_and_geojson(api):
    a = declare(api, polygon())
    b = declare(api, {"kind": "buffer", "center": {"lon": 25.0, "lat": 60.2}, "radius_m": 300},
                status="suspected", etr=None)
    api.post("dispatcher", f"/api/v1/outages/{a['id']}/transitions", json={"to": "restored"})
    assert [o["id"] for o in api.get("agent", "/api/v1/outages").json()] == [b["id"], a["id"]]
    assert [o["id"] for o in api.get("agent", "/api/v1/outages?active=true").json()] == [b["id"]]
    assert [o["id"] for o in api.get("agent", "/api/v1/outages?status=restored").json()] == \
        [a["id"]]
    assert [o["id"] for o in api.get(
        "agent", "/api/v1/outages?bbox=24.89,60.15,24.93,60.18").json()] == [a["id"]]
    r = api.get("agent", "/api/v1/outages?bbox=1,2,3")
    assert (r.status_code, r.json()["error"]["field"]) == (422, "bbox")
    fc = api.get("agent", "/api/v1/outages/geojson").json()
    assert fc["type"] == "FeatureCollection" and [f["id"] for f in fc["features"]] == [b["id"]]
    feature = fc["features"][0]
    assert feature["geometry"]["type"] == "MultiPolygon"
    assert feature["properties"]["status"] == "suspected" and "area" not in feature["properties"]


def test_audit_trail_is_append_only(api, engine):
    declare(api, polygon())
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE outage_events SET kind = 'x'"))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM outage_events"))


def test_geometry_helpers_are_what_the_tests_assume():
    assert POLYGON_WITH_HOLE["coordinates"] == [OUTER, HOLE]


def test_an_outage_reference_is_spelt_alike_in_python_and_sql(engine):
    from server.models.outages import outage_ref
    from server.outages import sql

    with engine.connect() as conn:
        for outage_id in (1, 42, 999_999, 1_234_567):
            in_sql = conn.execute(text(f"SELECT {sql.ref('CAST(:id AS bigint)')}"),
                                  {"id": outage_id}).scalar_one()
            assert in_sql == outage_ref(outage_id)
    assert (outage_ref(42), outage_ref(1_234_567)) == ("OUT-000042", "OUT-1234567")


def test_the_hint_and_the_voice_line_call_each_outage_type_the_same():
    from server.outages import absorb, ivr
    from server.outages.schemas import OutageType
    from server.outages.words import type_word

    for outage_type in OutageType:
        [hint] = absorb.lookup_hints([{
            "id": 1, "ref": "OUT-000001", "type": outage_type, "status": "confirmed",
            "area_name": "Kamppi", "starts_at": "2026-01-05T08:00:00Z", "etr": None,
            "service_point_id": 1}], "Asia/Shanghai")
        for language in ("zh-CN", "en"):
            word = type_word(outage_type, language)
            assert word in hint.hint[language]
            spoken = ivr.TEXTS[language]["no_etr"].format(
                area="Kamppi", type=type_word(outage_type, language, spoken=True))
            assert word in spoken, (outage_type, language)


def test_concurrent_planned_sweeps_announce_once(app, api, engine, clock):
    for i in range(4):
        add_customer(engine, 24.901 + i * 0.001, 60.161)
    start = clock.now() + timedelta(hours=30)
    declare(api, polygon(), type="planned_maintenance", starts_at=start.isoformat(),
            etr=(start + timedelta(hours=4)).isoformat())
    clock.advance(hours=7)
    policy = service.OutagePolicy(planned_notice_hours=24)
    barrier = threading.Barrier(3)
    done, errors = [], []

    def sweep():
        try:
            with app.state.sessionmaker() as session:
                barrier.wait(5)
                done.extend(service.send_due_planned_notices(session, clock.now(), policy))
                session.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == [] and len(done) == 1
    assert len(messages(engine)) == 4


def test_the_worker_runs_both_periodic_tasks(settings):
    from server.jobs import make_app

    job_app = make_app(settings.libpq_url)
    tasks = {name for name in job_app.tasks}
    assert {"outages:planned_notices", "outages:inference"} <= tasks
    periodic = {t.task.name for t in job_app.periodic_registry.periodic_tasks.values()}
    assert {"outages:planned_notices", "outages:inference"} <= periodic


def _worker(settings, tmp_path):
    env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="test",
                  CREWLINE_OUTAGE_PLANNED_CRON="* * * * * *",
                  CREWLINE_OUTAGE_INFER_CRON="0 0 1 1 *")
    return subprocess.Popen([sys.executable, "-m", "server.cli", "worker"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


@pytest.mark.slow
def test_real_workers_send_the_planned_notice_once(api, engine, settings, clock, tmp_path):
    """Two `crewline worker` processes run the periodic sweep every second on the real clock
    (long after this January outage's notice time): the notice goes out once."""
    for i in range(3):
        add_customer(engine, 24.901 + i * 0.001, 60.161)
    start = clock.now() + timedelta(hours=48)
    outage = declare(api, polygon(), type="planned_maintenance", starts_at=start.isoformat(),
                     etr=(start + timedelta(hours=4)).isoformat())
    workers = [_worker(settings, tmp_path) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while len(messages(engine)) < 3 and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(2.5)  # more sweeps by both workers: nothing new
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
    ms = messages(engine)
    assert len(ms) == 3 and {m["template"] for m in ms} == {"planned_notice"}
    events = api.get("agent", f"/api/v1/outages/{outage['id']}").json()["events"]
    assert [e["kind"] for e in events].count("notified") == 1


def test_growing_the_area_texts_only_the_newcomers(api, engine):
    near = add_customer(engine, 24.9384, 60.1717)   # ~200 m north of the centre
    further = add_customer(engine, 24.9384, 60.1735)  # ~400 m north
    center = {"lon": 24.9384, "lat": 60.1699}
    outage = declare(api, {"kind": "buffer", "center": center, "radius_m": 300})
    url = f"/api/v1/outages/{outage['id']}"
    assert [m["customer_id"] for m in messages(engine)] == [near["id"]]
    api.patch("dispatcher", url, json={"etr": "2026-01-05T19:00:00+08:00"})
    bigger = {"kind": "buffer", "center": center, "radius_m": 500}
    r = api.patch("dispatcher", url, json={"area": bigger})
    assert r.status_code == 200 and r.json()["affected_customers"] == 2
    assert r.json()["area_spec"]["radius_m"] == 500
    notices = messages(engine, "template = 'outage_notice'")
    assert [m["customer_id"] for m in notices] == [near["id"], further["id"]]
    assert "01-05 19:00" in notices[1]["body"]  # the newcomer hears the ETR of the moment
    assert api.patch("dispatcher", url, json={"area": bigger}).json()["revision"] == \
        r.json()["revision"]  # the same area again: no change
    r = api.patch("dispatcher", url, json={"area": {**bigger, "radius_m": 600},
                                            "etr": "2026-01-05T20:00:00+08:00"})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "area")
    api.patch("dispatcher", url, json={"etr": "2026-01-05T20:00:00+08:00"})
    assert len(messages(engine, "template = 'etr_change'")) == 1 + 2
    events = api.get("agent", url).json()["events"]
    change = next(e for e in events if e["kind"] == "area_changed")
    assert change["data"]["changes"]["area"][1]["affected_customers"] == 2
    assert events[events.index(change) + 1]["data"] == {
        "template": "outage_notice", "queued": 1, "reason": "area_changed"}
