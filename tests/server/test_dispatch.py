"""Dispatch on the real Helsinki road graph: suggestions by road ETA, filters, fallbacks,
one-way streets, assignment (with real concurrent requests), positions and geofence arrival."""

from __future__ import annotations

import json
import random
import threading
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text

from tests.server.dispatch_support import (
    LiveServer,
    brute_force_etas,
    import_roads_cli,
    make_crew,
    make_ticket,
    point_on_edge,
)
from tests.server.dispatch_support import (
    ensure_pbf as demo_pbf,
)

CENTRE = (24.9415, 60.1712)
# the extract spans about 24.935–24.953 E, 60.164–60.179 N
EXTENT = (24.9365, 60.1650, 24.9515, 60.1780)


@pytest.fixture(scope="session")
def roads(settings, engine):
    """The Helsinki road graph, imported once per session through the CLI."""
    proc = import_roads_cli(settings.database_url)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "writing the road graph" in proc.stderr  # the progress bar
    return report


def test_import_builds_a_routable_graph_with_one_way_streets(roads, engine):
    assert roads["edges"] > 1000 and roads["vertices"] > 900 and roads["one_way_edges"] > 100
    with engine.connect() as conn:
        bad = conn.execute(text(
            "SELECT count(*) FROM road_edges WHERE (oneway = 1 AND reverse_cost <> -1) "
            "OR (oneway = 0 AND abs(cost - reverse_cost) > 1e-9) "
            "OR (cost >= 0 AND abs(cost - length_m / (speed_kmh / 3.6)) > 1e-6)")).scalar_one()
        dangling = conn.execute(text(
            "SELECT count(*) FROM road_edges e LEFT JOIN road_vertices s ON s.id = e.source "
            "LEFT JOIN road_vertices t ON t.id = e.target WHERE s.id IS NULL OR t.id IS NULL"
        )).scalar_one()
        ends_match = conn.execute(text(
            "SELECT bool_and(ST_DWithin(ST_StartPoint(e.geom), s.geom, 1e-9) AND "
            "ST_DWithin(ST_EndPoint(e.geom), t.geom, 1e-9)) FROM road_edges e "
            "JOIN road_vertices s ON s.id = e.source JOIN road_vertices t ON t.id = e.target"
        )).scalar_one()
    assert bad == 0 and dangling == 0 and ends_match


def test_suggestions_equal_brute_force_over_all_crews(roads, api, clock, engine):
    rng = random.Random(5)
    crews = {}
    for i in range(14):
        lon = rng.uniform(EXTENT[0], EXTENT[2])
        lat = rng.uniform(EXTENT[1], EXTENT[3])
        crews[make_crew(api, clock, f"C{i}", lon, lat)["id"]] = (lon, lat)
    for _ in range(4):
        here = (rng.uniform(EXTENT[0], EXTENT[2]), rng.uniform(EXTENT[1], EXTENT[3]))
        ticket = make_ticket(api, *here)
        r = api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}/suggestions",
                    params={"limit": 14})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ticket_snapped"] and body["skill"] == "water_main"
        assert len(body["suggestions"]) == 14
        etas = [s["eta_s"] for s in body["suggestions"]]
        assert etas == sorted(etas)
        truth = brute_force_etas(engine, here, crews)
        # crews the clipped extract cannot route (a one-way pocket cut by its edge) are ranked
        # by a straight-line estimate, and flagged
        unrouted = [s for s in body["suggestions"] if s["crew_id"] not in truth]
        assert all(s["eta_source"] == "straight_line" and s["fallback_reason"] == "no_road_route"
                   for s in unrouted)
        got = [(s["crew_id"], s["eta_s"]) for s in body["suggestions"] if s["crew_id"] in truth]
        expected = sorted(truth.items(), key=lambda kv: kv[1])
        assert len(got) == len(expected) >= 10
        for (gid, geta), (eid, eeta) in zip(got, expected, strict=True):
            assert geta == pytest.approx(eeta, abs=0.2)
            assert gid == eid or geta == pytest.approx(truth[gid], abs=0.2)
        top = next(s for s in body["suggestions"] if s["eta_source"] == "road")
        assert top["eta_source"] == "road" and top["fallback_reason"] is None
        assert top["route"]["type"] == "LineString" and len(top["route"]["coordinates"]) >= 2
        start = crews[top["crew_id"]]
        assert top["route"]["coordinates"][0] == pytest.approx(list(start), abs=1e-6)
        assert top["route"]["coordinates"][-1] == pytest.approx(list(here), abs=1e-6)
        assert top["road_distance_m"] >= top["straight_distance_m"] * 0.99
        # the default answer is the top 5 of the same ranking
        r5 = api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}/suggestions").json()
        assert [s["crew_id"] for s in r5["suggestions"]] == [
            s["crew_id"] for s in body["suggestions"][:5]]


def test_one_way_street_changes_the_ranking(roads, api, clock, engine):
    with engine.connect() as conn:
        one_way = conn.execute(text(
            "SELECT id FROM road_edges WHERE oneway = 1 AND cost >= 0 AND length_m > 90 "
            "ORDER BY length_m DESC LIMIT 1")).scalar_one()
        two_way = conn.execute(text(
            "SELECT id FROM road_edges WHERE oneway = 0 AND length_m > 90 "
            "ORDER BY length_m DESC LIMIT 1")).scalar_one()
    outcomes = {}
    for label, edge in (("one_way", one_way), ("two_way", two_way)):
        ticket = make_ticket(api, *point_on_edge(engine, edge, 0.40))
        down = make_crew(api, clock, f"{label}-downstream", *point_on_edge(engine, edge, 0.55))
        up = make_crew(api, clock, f"{label}-upstream", *point_on_edge(engine, edge, 0.15))
        body = api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}/suggestions").json()
        ranked = {s["crew_id"]: s for s in body["suggestions"]}
        d, u = ranked[down["id"]], ranked[up["id"]]
        assert d["straight_distance_m"] < u["straight_distance_m"]
        outcomes[label] = (d, u)
        api.patch("manager", f"/api/v1/crews/{down['id']}", json={"capacity": 1})
        for c in (down, up):  # out of the way for the next round
            api.post("dispatcher", f"/api/v1/crews/{c['id']}/state", json={"shift": "off"})
    d, u = outcomes["one_way"]
    assert u["rank"] < d["rank"], "the crew behind the one-way street must drive around"
    assert d["road_distance_m"] > 2 * d["straight_distance_m"]
    d, u = outcomes["two_way"]
    assert d["rank"] < u["rank"]
    assert d["road_distance_m"] == pytest.approx(d["straight_distance_m"], rel=0.05, abs=2)


def test_skill_shift_capacity_and_staleness_filters(roads, api, clock):
    lon, lat = CENTRE
    ok = make_crew(api, clock, "ok", lon + 0.002, lat)
    meter = make_crew(api, clock, "meter-only", lon + 0.0005, lat, skills=["meter"])
    off = make_crew(api, clock, "off", lon + 0.0006, lat, shift="off")
    on_break = make_crew(api, clock, "break", lon + 0.0007, lat, shift="break")
    busy = make_crew(api, clock, "busy", lon + 0.0008, lat)
    offline = make_crew(api, clock, "offline", lon + 0.0009, lat)
    api.post("dispatcher", f"/api/v1/crews/{offline['id']}/state", json={"status": "offline"})
    nowhere = make_crew(api, clock, "never-reported", None, None)
    other = make_ticket(api, lon + 0.0008, lat + 0.0002)
    assert api.post("dispatcher", f"/api/v1/tickets/{other['id']}/assignment",
                    json={"crew_id": busy["id"]}).status_code == 201
    ticket = make_ticket(api, lon, lat)

    def ids(**params):
        r = api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}/suggestions", params=params)
        assert r.status_code == 200, r.text
        return [s["crew_id"] for s in r.json()["suggestions"]]

    assert ids() == [ok["id"]]
    assert set(ids(skill="any")) == {ok["id"], meter["id"]}
    assert ids(skill="meter") == [meter["id"]]
    # a second slot makes the busy crew eligible again
    api.patch("manager", f"/api/v1/crews/{busy['id']}", json={"capacity": 2})
    assert ids() == [busy["id"], ok["id"]]
    # positions older than 10 minutes do not count; a new fix brings the crew back
    clock.advance(minutes=11)
    api.renew_tokens()
    assert ids() == []
    r = api.post("dispatcher", f"/api/v1/crews/{ok['id']}/positions", json={
        "fixes": [{"lon": lon + 0.002, "lat": lat, "at": clock.now().isoformat()}]})
    assert r.status_code == 200
    assert ids() == [ok["id"]]
    assert nowhere["position"] is None and off and on_break


def test_snapping_fallback_is_said_in_the_answer(roads, api, clock):
    lon, lat = CENTRE
    near = make_crew(api, clock, "near", lon + 0.001, lat)
    far_off_road = make_crew(api, clock, "in-the-bay", 24.9700, 60.1600)  # ~1.5 km off the graph
    ticket = make_ticket(api, lon, lat)
    body = api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}/suggestions").json()
    by_id = {s["crew_id"]: s for s in body["suggestions"]}
    assert body["fallback"] is None and body["ticket_snapped"]
    assert by_id[near["id"]]["eta_source"] == "road"
    far = by_id[far_off_road["id"]]
    assert far["eta_source"] == "straight_line" and far["fallback_reason"] == "crew_off_road"
    assert far["road_distance_m"] is None
    assert far["eta_s"] == pytest.approx(far["straight_distance_m"] * 1.3 / (30 / 3.6), rel=0.01)
    # a ticket out in the water: every ETA is an estimate, and the answer says so
    offshore = make_ticket(api, 24.9750, 60.1700)
    body = api.get("dispatcher", f"/api/v1/tickets/{offshore['id']}/suggestions").json()
    assert not body["ticket_snapped"] and body["ticket_snap_distance_m"] > 500
    assert body["fallback"] == "ticket_off_road"
    assert [s["crew_id"] for s in body["suggestions"]] == [far_off_road["id"], near["id"]]
    assert all(s["eta_source"] == "straight_line" for s in body["suggestions"])
    # straight-line only on request
    body = api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}/suggestions",
                   params={"road": "false"}).json()
    assert body["fallback"] == "road_routing_off"
    assert body["suggestions"][0]["crew_id"] == near["id"]


def test_assign_reassign_unassign_lifecycle(roads, api, clock, engine):
    lon, lat = CENTRE
    a = make_crew(api, clock, "A", lon + 0.001, lat)
    b = make_crew(api, clock, "B", lon + 0.003, lat)
    ticket = make_ticket(api, lon, lat)
    url = f"/api/v1/tickets/{ticket['id']}/assignment"
    assert api.get("dispatcher", url).json() is None
    r = api.post("dispatcher", url, json={"crew_id": b["id"], "note": "B knows the site"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["mode"] == "manual" and first["rank"] == 2 and first["assigned_by"] == "dispatcher"
    assert first["eta_source"] == "road" and first["eta_s"] > 0
    assert first["ticket_status"] == "assigned"
    t = api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}").json()
    assert t["status"] == "assigned" and t["events"][-1]["data"]["crew_id"] == b["id"]
    assert [c["state"] for c in t["sla"] if c["clock"] == "assign"] == ["met"]
    assert api.get("dispatcher", f"/api/v1/crews/{b['id']}").json()["status"] == "assigned"
    r = api.post("dispatcher", url, json={"crew_id": a["id"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_assigned"
    current = api.get("technician", url).json()
    assert current["crew_id"] == b["id"] and current["route"]["type"] == "LineString"
    # reassign to A
    r = api.put("dispatcher", url, json={"crew_id": a["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["crew_id"] == a["id"] and r.json()["rank"] == 1
    r = api.put("dispatcher", url, json={"crew_id": a["id"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "same_crew"
    assert api.get("dispatcher", f"/api/v1/crews/{b['id']}").json()["status"] == "available"
    # unassign
    r = api.client.delete(url, headers=api.headers("dispatcher"))
    assert r.status_code == 200 and r.json()["end_reason"] == "unassigned"
    assert r.json()["ticket_status"] == "new"
    r = api.client.delete(url, headers=api.headers("dispatcher"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_assigned"
    history = api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}/assignments").json()
    assert [(h["crew_id"], h["end_reason"]) for h in history] == [
        (b["id"], "reassigned"), (a["id"], "unassigned")]
    t = api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}").json()
    kinds = [e["kind"] for e in t["events"]]
    assert kinds == ["created", "assigned", "unassigned", "assigned", "unassigned"]
    assert [c["state"] for c in t["sla"] if c["clock"] == "assign"][-1] == "running"


def test_assignment_refusals(roads, api, clock):
    lon, lat = CENTRE
    crew = make_crew(api, clock, "A", lon + 0.001, lat)
    meter = make_crew(api, clock, "M", lon + 0.001, lat, skills=["meter"])
    off = make_crew(api, clock, "Off", lon + 0.001, lat, shift="off")
    ticket = make_ticket(api, lon, lat)
    url = f"/api/v1/tickets/{ticket['id']}/assignment"
    cases = [({"crew_id": meter["id"]}, 409, "crew_lacks_skill"),
             ({"crew_id": off["id"]}, 409, "crew_off_shift"),
             ({"crew_id": 999999}, 404, "not_found"),
             ({"crew_id": 0}, 422, "validation_error"),
             ({}, 422, "validation_error")]
    for body, status, code in cases:
        r = api.post("dispatcher", url, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text)
        assert r.json()["error"].get("field")
    r = api.post("dispatcher", "/api/v1/tickets/999999/assignment", json={"crew_id": crew["id"]})
    assert r.status_code == 404 and r.json()["error"]["field"] == "ticket_id"
    cancelled = make_ticket(api, lon, lat)
    api.post("agent", f"/api/v1/tickets/{cancelled['id']}/transitions", json={"to": "cancelled"})
    r = api.post("dispatcher", f"/api/v1/tickets/{cancelled['id']}/assignment",
                 json={"crew_id": crew["id"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_assignable"
    # nothing was written by the refused attempts
    assert api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}/assignments").json() == []
    assert api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}").json()["status"] == "new"


def test_concurrent_dispatchers_never_double_book(roads, app, api, clock, engine):
    lon, lat = CENTRE
    crew = make_crew(api, clock, "solo", lon + 0.001, lat, capacity=2)
    others = [make_crew(api, clock, f"o{i}", lon + 0.002, lat + i * 0.0003) for i in range(4)]
    tickets = [make_ticket(api, lon + i * 0.0002, lat) for i in range(8)]
    headers = api.headers("dispatcher")
    with LiveServer(app) as live:
        def fire(requests):
            barrier = threading.Barrier(len(requests))
            results = [None] * len(requests)

            def go(i, method, url, body):
                with httpx.Client(base_url=live.base, headers=headers, timeout=60) as c:
                    barrier.wait()
                    results[i] = c.request(method, url, json=body)

            threads = [threading.Thread(target=go, args=(i, *req))
                       for i, req in enumerate(requests)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return results

        # eight dispatchers give the same two-slot crew eight different tickets at once
        results = fire([("POST", f"/api/v1/tickets/{t['id']}/assignment", {"crew_id": crew["id"]})
                        for t in tickets])
        codes = sorted(r.status_code for r in results)
        assert codes == [201, 201] + [409] * 6, [r.text for r in results]
        assert {r.json()["error"]["code"] for r in results if r.status_code == 409} == {
            "crew_at_capacity"}
        # four dispatchers give one ticket to four different crews at once, three times
        free = [t for t, r in zip(tickets, results, strict=True) if r.status_code == 409][:3]
        for t in free:
            results = fire([("POST", f"/api/v1/tickets/{t['id']}/assignment", {"crew_id": o["id"]})
                            for o in others])
            assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
            winner = next(r.json()["crew_id"] for r in results if r.status_code == 201)
            api.patch("manager", f"/api/v1/crews/{winner}", json={"capacity": 2})
    with engine.connect() as conn:
        per_crew = conn.execute(text(
            "SELECT crew_id, count(*) FROM dispatch_assignments WHERE ended_at IS NULL "
            "GROUP BY crew_id")).all()
        per_ticket = conn.execute(text(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM dispatch_assignments "
            "WHERE ended_at IS NULL GROUP BY ticket_id) s")).scalar_one()
        statuses = conn.execute(text(
            "SELECT count(*) FROM tickets WHERE status = 'assigned'")).scalar_one()
    assert dict(per_crew)[crew["id"]] == 2 and per_ticket == 1
    assert statuses == 2 + 3 and sum(n for _, n in per_crew) == 5


def test_positions_refresh_eta_and_geofence_arrival(roads, api, clock, users):
    lon, lat = CENTRE
    crew = make_crew(api, clock, "A", lon + 0.004, lat, members=[users["technician"]])
    ticket = make_ticket(api, lon, lat)
    url = f"/api/v1/tickets/{ticket['id']}/assignment"
    first = api.post("dispatcher", url, json={"crew_id": crew["id"]}).json()
    for to in ("accepted", "en_route"):
        r = api.post("technician", f"/api/v1/tickets/{ticket['id']}/transitions", json={"to": to})
        assert r.status_code == 200, r.text
    clock.advance(seconds=30)
    r = api.post("technician", f"/api/v1/crews/{crew['id']}/positions", json={"fixes": [
        {"lon": lon + 0.002, "lat": lat, "at": clock.now().isoformat(), "heading_deg": 270,
         "speed_mps": 8}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["arrivals"] == [] and body["eta_updates"][0]["ticket_id"] == ticket["id"]
    assert body["eta_updates"][0]["eta_s"] < first["eta_s"]
    assert api.get("dispatcher", url).json()["current_eta_s"] == body["eta_updates"][0]["eta_s"]
    clock.advance(seconds=30)
    r = api.post("technician", f"/api/v1/crews/{crew['id']}/positions", json={"fixes": [
        {"lon": lon + 0.0004, "lat": lat, "at": clock.now().isoformat()}]})  # ~22 m away
    body = r.json()
    assert [a["ticket_id"] for a in body["arrivals"]] == [ticket["id"]]
    assert body["arrivals"][0]["ticket_status"] == "on_site"
    assert body["arrivals"][0]["distance_m"] < 50
    t = api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}").json()
    assert t["status"] == "on_site"
    assert [e["kind"] for e in t["events"]][-2:] == ["crew_arrived", "on_site"]
    assert api.get("dispatcher", f"/api/v1/crews/{crew['id']}").json()["status"] == "on_site"
    assert api.get("dispatcher", url).json()["arrived_at"] is not None
    # arrival happens once
    clock.advance(seconds=30)
    r = api.post("technician", f"/api/v1/crews/{crew['id']}/positions", json={"fixes": [
        {"lon": lon + 0.0001, "lat": lat, "at": clock.now().isoformat()}]})
    assert r.json()["arrivals"] == []


def test_implausible_jumps_are_flagged_not_dropped(roads, api, clock, engine):
    lon, lat = CENTRE
    crew = make_crew(api, clock, "A", lon, lat)
    t0 = clock.now()
    fixes = [{"lon": lon + 0.0005, "lat": lat, "at": (t0 + timedelta(seconds=10)).isoformat()},
             # 5.5 km in 20 s is ~1000 km/h
             {"lon": lon + 0.1, "lat": lat, "at": (t0 + timedelta(seconds=30)).isoformat()},
             {"lon": lon + 0.0010, "lat": lat, "at": (t0 + timedelta(seconds=40)).isoformat()}]
    r = api.post("dispatcher", f"/api/v1/crews/{crew['id']}/positions",
                 json={"fixes": list(reversed(fixes))})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 3 and body["implausible"] == 1
    assert [f["implausible"] for f in sorted(body["fixes"], key=lambda f: f["at"])] == [
        False, True, False]
    assert body["position"]["lon"] == pytest.approx(lon + 0.0010)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*), count(*) FILTER (WHERE implausible) "
                                   "FROM crew_positions WHERE crew_id = :c"),
                              {"c": crew["id"]}).one()
    assert tuple(stored) == (4, 1)
    track = api.get("dispatcher", f"/api/v1/crews/{crew['id']}/track",
                    params={"since": (t0 - timedelta(minutes=1)).isoformat(),
                            "until": (t0 + timedelta(minutes=1)).isoformat()}).json()
    flags = [f["properties"]["implausible"] for f in track["features"]]
    assert flags == [False, False, True, False]


def test_auto_assign_policy(roads, app, api, clock):
    from server.dispatch import service

    lon, lat = CENTRE
    near = make_crew(api, clock, "near", lon + 0.001, lat)
    make_crew(api, clock, "far", lon + 0.004, lat)
    emergency = make_ticket(api, lon, lat, priority="emergency", description="water main burst")
    normal = make_ticket(api, lon, lat + 0.001, priority="normal")
    cfg = service.DispatchConfig.from_settings(app.state.settings)
    with app.state.sessionmaker() as session:
        done = service.auto_assign_sweep(session, clock.now(), cfg)
        session.commit()
    assert [(a.ticket_id, a.crew_id, a.mode, a.rank, a.assigned_by) for a in done] == [
        (emergency["id"], near["id"], "auto", 1, None)]
    t = api.get("dispatcher", f"/api/v1/tickets/{emergency['id']}").json()
    assert t["status"] == "assigned" and t["events"][-1]["data"]["mode"] == "auto"
    assert api.get("dispatcher", f"/api/v1/tickets/{normal['id']}").json()["status"] == "new"
    # a dispatcher's unassign is respected: the sweep does not take the ticket back
    api.client.delete(f"/api/v1/tickets/{emergency['id']}/assignment",
                      headers=api.headers("dispatcher"))
    with app.state.sessionmaker() as session:
        assert service.auto_assign_sweep(session, clock.now(), cfg) == []
        session.commit()


def test_geojson_endpoints_filter_by_bbox(roads, api, clock):
    lon, lat = CENTRE
    inside = make_crew(api, clock, "in", lon, lat)
    make_crew(api, clock, "out", lon + 0.05, lat)
    ticket = make_ticket(api, lon, lat)
    make_ticket(api, lon + 0.05, lat)
    bbox = f"{lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}"
    crews = api.get("dispatcher", "/api/v1/crews/geojson", params={"bbox": bbox}).json()
    assert [f["id"] for f in crews["features"]] == [inside["id"]]
    assert crews["features"][0]["properties"]["stale"] is False
    tickets = api.get("manager", "/api/v1/dispatch/tickets/geojson", params={"bbox": bbox}).json()
    assert [f["id"] for f in tickets["features"]] == [ticket["id"]]
    for bad in ("1,2,3", "a,b,c,d", "10,10,5,5"):
        r = api.get("dispatcher", "/api/v1/crews/geojson", params={"bbox": bad})
        assert r.status_code == 422 and r.json()["error"]["field"] == "bbox"


def test_roles(roads, api, clock, users):
    lon, lat = CENTRE
    crew = make_crew(api, clock, "A", lon, lat)
    ticket = make_ticket(api, lon, lat)
    s = f"/api/v1/tickets/{ticket['id']}/suggestions"
    assert api.get("agent", s).status_code == 403
    assert api.get("technician", s).status_code == 403
    assert api.get("manager", s).status_code == 200
    assert api.get("admin", s).status_code == 200
    assert api.client.get(s).status_code == 401
    a = f"/api/v1/tickets/{ticket['id']}/assignment"
    assert api.post("agent", a, json={"crew_id": crew["id"]}).status_code == 403
    assert api.post("technician", a, json={"crew_id": crew["id"]}).status_code == 403
    assert api.post("dispatcher", "/api/v1/crews", json={"name": "x"}).status_code == 403
    fix = {"fixes": [{"lon": lon, "lat": lat, "at": clock.now().isoformat()}]}
    r = api.post("technician", f"/api/v1/crews/{crew['id']}/positions", json=fix)
    assert r.status_code == 403 and r.json()["error"]["field"] == "crew_id"
    assert api.post("agent", f"/api/v1/crews/{crew['id']}/positions", json=fix).status_code == 403
    api.patch("manager", f"/api/v1/crews/{crew['id']}", json={"members": [users["technician"]]})
    r = api.post("technician", f"/api/v1/crews/{crew['id']}/positions", json=fix)
    assert r.status_code == 200
    r = api.post("technician", f"/api/v1/crews/{crew['id']}/state", json={"shift": "break"})
    assert r.status_code == 200 and r.json()["shift"] == "break"


def test_bad_input(roads, api, clock, users):
    lon, lat = CENTRE
    crew = make_crew(api, clock, "A", lon, lat)
    ticket = make_ticket(api, lon, lat)
    s = f"/api/v1/tickets/{ticket['id']}/suggestions"
    for params in ({"limit": 0}, {"limit": 51}, {"skill": "plumbing"}):
        r = api.get("dispatcher", s, params=params)
        assert r.status_code == 422 and r.json()["error"]["field"] in ("limit", "skill")
    assert api.get("dispatcher", "/api/v1/tickets/999999/suggestions").status_code == 404
    desk = api.post("agent", "/api/v1/tickets", json={"category": "consultation",
                                                        "description": "billing question"})
    r = api.get("dispatcher", f"/api/v1/tickets/{desk.json()['ticket']['id']}/suggestions")
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_location"
    p = f"/api/v1/crews/{crew['id']}/positions"
    future = (clock.now() + timedelta(minutes=10)).isoformat()
    bad = [({"fixes": []}, "fixes"),
           ({"fixes": [{"lon": 200, "lat": lat, "at": clock.now().isoformat()}]}, "fixes.0.lon"),
           ({"fixes": [{"lon": lon, "lat": lat, "at": "2026-01-05T08:00:00"}]}, "fixes.0.at"),
           ({"fixes": [{"lon": lon, "lat": lat, "at": future}]}, "fixes.0.at"),
           ({"fixes": [{"lon": lon, "lat": lat, "at": clock.now().isoformat(),
                        "heading_deg": 360}]}, "fixes.0.heading_deg")]
    for body, field in bad:
        r = api.post("dispatcher", p, json=body)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, (body, r.text)
    assert api.post("dispatcher", "/api/v1/crews/999999/positions", json={"fixes": [
        {"lon": lon, "lat": lat, "at": clock.now().isoformat()}]}).status_code == 404
    # crews: members must be technicians, once; names unique; capacity bounds
    cases = [({"name": "B", "members": [users["agent"]]}, 422, "members.0"),
             ({"name": "B", "members": [999999]}, 422, "members.0"),
             ({"name": "B", "capacity": 0}, 422, "capacity"),
             ({"name": "B", "skills": ["juggling"]}, 422, "skills.0"),
             ({"name": "A"}, 409, "name")]
    for body, status, field in cases:
        r = api.post("manager", "/api/v1/crews", json=body)
        assert (r.status_code, r.json()["error"]["field"]) == (status, field), (body, r.text)


def test_crew_crud_and_membership(roads, api, clock, users):
    a = make_crew(api, clock, "A", None, None, members=[users["technician"]])
    assert [m["username"] for m in a["members"]] == ["technician"]
    r = api.post("manager", "/api/v1/crews", json={"name": "B", "members": [users["technician"]]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "member_in_other_crew"
    r = api.patch("manager", f"/api/v1/crews/{a['id']}", json={"skills": ["meter", "valve"],
                                                               "vehicle": "truck 7"})
    assert r.json()["skills"] == ["meter", "valve"] and r.json()["vehicle"] == "truck 7"
    listed = api.get("dispatcher", "/api/v1/crews", params={"skill": "meter"}).json()
    assert [c["id"] for c in listed] == [a["id"]]
    r = api.client.delete(f"/api/v1/crews/{a['id']}", headers=api.headers("manager"))
    assert r.status_code == 200 and r.json()["active"] is False and r.json()["members"] == []
    assert api.get("dispatcher", "/api/v1/crews").json() == []
    assert api.post("dispatcher", f"/api/v1/crews/{a['id']}/state",
                    json={"shift": "on_shift"}).status_code == 409



def test_demo_crews_are_created_once_and_dispatchable(roads, settings, engine, api, clock):
    from server.dispatch import demo

    first = demo.load(settings, demo_pbf())
    again = demo.load(settings, demo_pbf())
    assert first == {"road_edges": roads["edges"], "crews_created": 12}
    assert again["crews_created"] == 0
    with engine.connect() as conn:
        snapped, on_shift = conn.execute(text(
            "SELECT count(*) FILTER (WHERE snap_distance_m < 500), "
            "count(*) FILTER (WHERE shift = 'on_shift') FROM crews")).one()
    assert snapped == 12 and on_shift == 10
    # demo positions are stamped with the real time; look at them from then
    with engine.connect() as conn:
        clock.set(conn.execute(text("SELECT max(position_at) FROM crews")).scalar_one())
    api.renew_tokens()
    ticket = make_ticket(api, *CENTRE, description="主管道爆裂 water main burst")
    body = api.get("dispatcher", f"/api/v1/tickets/{ticket['id']}/suggestions").json()
    assert body["suggestions"] and body["suggestions"][0]["eta_source"] == "road"


def test_assignment_texts_the_customer_the_crew_eta(roads, api, clock, engine):
    """Dispatch and the SMS outbox meet in one transaction: assigning queues "crew assigned,
    about N minutes" in the reporter's language; unassigning and assigning the same crew again
    does not repeat the identical text."""
    lon, lat = CENTRE
    crew = make_crew(api, clock, "SMS crew", lon + 0.002, lat)
    r = api.post("agent", "/api/v1/tickets", json={
        "category": "repair", "description": "leaking pipe", "language": "en",
        "reporter_phone": "139 0013 9000", "location": {"lon": lon, "lat": lat}})
    ticket = r.json()["ticket"]
    url = f"/api/v1/tickets/{ticket['id']}/assignment"
    eta_s = api.post("dispatcher", url, json={"crew_id": crew["id"]}).json()["eta_s"]
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT template, body, to_e164 FROM sms_messages WHERE ticket_id = :t ORDER BY id"),
            {"t": ticket["id"]}).all()
    assert [r.template for r in rows] == ["ticket_received", "crew_assigned"]
    assigned = rows[1]
    assert assigned.to_e164 == "+8613900139000"
    assert f"{max(1, round(eta_s / 60))} min" in assigned.body and ticket["number"] in assigned.body
    api.client.delete(url, headers=api.headers("dispatcher"))
    assert api.post("dispatcher", url, json={"crew_id": crew["id"]}).status_code == 201
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sms_messages WHERE ticket_id = :t "
                                 "AND template = 'crew_assigned'"),
                            {"t": ticket["id"]}).scalar_one() == 1


def test_assignment_texts_the_crews_technicians(roads, api, clock, engine):
    """Responsible staff hear of a new job right after the call: each active member of the
    assigned crew with a mobile number gets "new job for your crew" in their own language."""
    made = {}
    for name, phone, language in (("tech-zh", "138 0000 1111", "zh-CN"),
                                  ("tech-en", "+86 139 0000 2222", "en"),
                                  ("tech-nophone", None, "zh-CN")):
        body = {"username": name, "password": "long-enough-pw", "role": "technician",
                "language": language, **({"phone": phone} if phone else {})}
        r = api.post("admin", "/api/v1/users", json=body)
        assert r.status_code == 201, r.text
        made[name] = r.json()
    assert made["tech-en"]["phone"] == "+8613900002222"
    r = api.post("admin", "/api/v1/users", json={
        "username": "tech-bad", "password": "long-enough-pw", "role": "technician", "phone": "12"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "phone"
    lon, lat = CENTRE
    crew = make_crew(api, clock, "Staff SMS crew", lon + 0.002, lat,
                     members=[u["id"] for u in made.values()])
    ticket = make_ticket(api, lon, lat, priority="high")
    r = api.post("dispatcher", f"/api/v1/tickets/{ticket['id']}/assignment",
                 json={"crew_id": crew["id"]})
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT to_e164, language, body, customer_id FROM sms_messages "
            "WHERE ticket_id = :t AND template = 'staff_assigned' ORDER BY to_e164"),
            {"t": ticket["id"]}).all()
    assert [(r.to_e164, r.language) for r in rows] == [("+8613800001111", "zh-CN"),
                                                       ("+8613900002222", "en")]
    assert all(ticket["number"] in r.body and r.customer_id is None for r in rows)
    assert "高" in rows[0].body and "(high)" in rows[1].body
    # a phone can be changed or removed by an admin
    r = api.patch("admin", f"/api/v1/users/{made['tech-en']['id']}", json={"phone": ""})
    assert r.status_code == 200 and r.json()["phone"] is None
