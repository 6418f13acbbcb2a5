"""Anomaly rules on crafted trails: impossible travel by road (pgRouting on a small synthetic
road) and by straight line when a site is off the road, the cloned-tag pattern, missing GPS,
values out of range, visits outside the window; and a technician's day as GeoJSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from server.inspections import service
from tests.server.dispatch_support import make_crew
from tests.server.inspections_support import ROAD_LAT, ROAD_LONS, World, add_road, remove_road

A = {"lon": ROAD_LONS[0], "lat": ROAD_LAT + 0.0001}  # 11 m from the road's west end
B = {"lon": ROAD_LONS[-1], "lat": ROAD_LAT + 0.0001}  # 3 km east along the road (≈ 300 s)
C = {"lon": ROAD_LONS[0], "lat": ROAD_LAT + 0.05}  # 5.6 km north, no road within 500 m
D = {"lon": 24.9384, "lat": 60.1699}
E = {"lon": 24.9584, "lat": 60.1699}  # 1.1 km east of D
UIDS = {"A": "04A1000000000A", "B": "04B1000000000B", "C": "04C1000000000C"}
PLAIN = {"D": "04D1000000000D", "E": "04E1000000000E"}


@pytest.fixture
def road(engine):
    add_road(engine)
    yield
    remove_road(engine)


@pytest.fixture
def trail(api, settings, clock, engine, road):
    """A crafted day of technician scans and visits (clock starts 2026-01-05 08:00 UTC)."""
    w = World(api, settings, clock)
    sites = {}
    for name, p in (("A", A), ("B", B), ("C", C)):
        sites[name] = w.site(f"Site {name}", **p)
        w.tag(sites[name]["id"], UIDS[name])
    for name, p in (("D", D), ("E", E)):
        sites[name] = w.site(f"Meter room {name}", **p)
        w.tag(sites[name]["id"], PLAIN[name], sun=False)
    plan = w.plan([sites["A"]["id"]], window=("07:00", "09:00"))
    with Session(engine) as session:
        (round_id,) = service.generate_rounds(session, clock.now())
        session.commit()
    scans = {"A1": w.scan(UIDS["A"], position=A)}
    clock.advance(seconds=60)
    scans["B"] = w.scan(UIDS["B"], position=B)  # 60 s for ~300 s of road: impossible
    clock.advance(seconds=600)
    scans["A2"] = w.scan(UIDS["A"], position=A)  # 10 min back: plausible
    clock.advance(seconds=60)
    scans["C"] = w.scan(UIDS["C"], position=C)  # 60 s for 5.6 km off-road: impossible
    visits = {"no_gps": w.visit(sites["A"]["id"], scan=scans["A2"], position=None)}
    clock.advance(seconds=60)
    visits["range"] = w.visit(sites["A"]["id"], scan=None, position=A,
                              values={"pressure": 9.0, "valve": "open", "leak": False})
    clock.set(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))
    visits["late"] = w.visit(sites["A"]["id"], scan=None, position=A, round_id=round_id)
    clock.advance(minutes=30)
    spot = {"lon": D["lon"] + 0.00002, "lat": D["lat"]}
    scans["D"] = w.scan(PLAIN["D"], sun=False, position=spot)
    clock.advance(seconds=40)
    scans["E"] = w.scan(PLAIN["E"], sun=False, position={"lon": spot["lon"] + 0.00005,
                                                         "lat": spot["lat"]})
    return {"world": w, "sites": sites, "scans": scans, "visits": visits, "plan": plan,
            "round_id": round_id}


def _exceptions(api, **params):
    q = "&".join(f"{k}={v}" for k, v in params.items())
    r = api.get("manager", "/api/v1/inspections/exceptions?since=2026-01-05T00:00:00Z"
                           "&until=2026-01-06T00:00:00Z" + (f"&{q}" if q else ""))
    assert r.status_code == 200, r.text
    return r.json()


def test_impossible_travel_by_road_and_by_straight_line(api, trail):
    sites, scans = trail["sites"], trail["scans"]
    travel = [e for e in _exceptions(api) if e["kind"] == "impossible_travel"]
    by_pair = {tuple(e["site_ids"]): e for e in travel}
    road = by_pair[(sites["A"]["id"], sites["B"]["id"])]
    assert road["scan_ids"] == [scans["A1"]["id"], scans["B"]["id"]]
    assert road["details"]["basis"] == "road" and road["details"]["fallback_reason"] is None
    assert road["details"]["travel_s"] == pytest.approx(300, rel=0.05)
    assert road["details"]["elapsed_s"] == 60
    assert road["message"]["zh-CN"].startswith("两次扫描")
    line = by_pair[(sites["A"]["id"], sites["C"]["id"])]
    assert line["details"]["basis"] == "straight_line"
    assert line["details"]["fallback_reason"] == "site_off_road"
    assert line["details"]["travel_s"] == pytest.approx(5560 / (80 / 3.6), rel=0.02)
    # B → A took ten minutes: plausible, not listed
    assert (sites["B"]["id"], sites["A"]["id"]) not in by_pair


def test_straight_line_when_there_is_no_road_graph_at_all(engine, settings):
    """Without any road (the graph is emptied inside a transaction that is rolled back)."""
    from sqlalchemy import text

    from server.inspections.views import travel_times

    cfg = service.InspectionConfig.from_settings(settings)
    points = {1: (A["lon"], A["lat"]), 2: (B["lon"], B["lat"])}
    with Session(engine) as session:
        session.execute(text("DELETE FROM road_edges"))
        got = travel_times(session, {(1, 2)}, points, cfg)[(1, 2)]
        session.rollback()
    assert (got.basis, got.fallback_reason) == ("straight_line", "no_road_graph")
    assert got.seconds == pytest.approx(got.distance_m / (80 / 3.6))
    assert got.distance_m == pytest.approx(3000, rel=0.02)


def test_cloned_tag_pattern(api, trail):
    sites, scans = trail["sites"], trail["scans"]
    (clone,) = [e for e in _exceptions(api) if e["kind"] == "cloned_tag_pattern"]
    assert clone["site_ids"] == sorted([sites["D"]["id"], sites["E"]["id"]])
    assert clone["scan_ids"] == [scans["D"]["id"], scans["E"]["id"]]
    assert clone["technician"] == "technician"


def test_cloned_tag_rule_ignores_tags_that_really_are_close(api, settings, clock):
    w = World(api, settings, clock)
    near_d = {"lon": D["lon"] + 0.0002, "lat": D["lat"]}  # 11 m apart: a valve beside a hydrant
    for name, p in (("D", D), ("E", near_d)):
        s = w.site(f"Pair {name}", **p)
        w.tag(s["id"], PLAIN[name], sun=False)
        w.scan(PLAIN[name], sun=False, position=D)
    assert [e for e in _exceptions(api) if e["kind"] == "cloned_tag_pattern"] == []


def test_visit_anomalies(api, trail):
    v = trail["visits"]
    ex = _exceptions(api)
    kinds = {(e["kind"], e["visit_ids"][0]) for e in ex if e["visit_ids"]}
    assert ("missing_gps", v["no_gps"]["id"]) in kinds
    assert ("value_out_of_range", v["range"]["id"]) in kinds
    assert ("outside_window", v["late"]["id"]) in kinds
    assert ("flagged_visit", v["range"]["id"]) in kinds  # no tag scan
    flagged = next(e for e in ex if e["kind"] == "flagged_visit" and e["visit_ids"] == [
        v["range"]["id"]])
    assert flagged["details"]["flags"] == ["no_tag_scan"]
    assert flagged["message"] == {"en": "no tag scan", "zh-CN": "未扫描标签"}
    assert [e["at"] for e in ex] == sorted(e["at"] for e in ex)
    # only one technician's trail
    assert _exceptions(api, technician_id=api.user_ids["admin"]) == []
    assert len(_exceptions(api, technician_id=api.user_ids["technician"])) == len(ex)


def test_technician_day_geojson(api, clock, trail):
    tech = api.user_ids["technician"]
    crew = make_crew(api, clock, "Crew T", None, None, members=[tech])
    start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    fixes = [{"lon": ROAD_LONS[0] + (ROAD_LONS[-1] - ROAD_LONS[0]) * i / 29,
              "lat": ROAD_LAT + (0.00001 if i % 2 else 0.0), "accuracy_m": 5,
              "at": (start + timedelta(minutes=i)).isoformat()} for i in range(30)]
    r = api.post("technician", f"/api/v1/crews/{crew['id']}/positions", json={"fixes": fixes})
    assert r.status_code == 200, r.text
    r = api.get("manager", f"/api/v1/inspections/technicians/{tech}/day?date=2026-01-05&tz=UTC")
    assert r.status_code == 200, r.text
    fc = r.json()
    assert fc["type"] == "FeatureCollection"
    by_kind: dict[str, list] = {}
    for f in fc["features"]:
        assert f["type"] == "Feature"
        by_kind.setdefault(f["properties"]["kind"], []).append(f)
    (track,) = by_kind["track"]
    assert track["geometry"]["type"] == "LineString"
    assert track["properties"]["fixes"] == 30 and 2 <= track["properties"]["kept"] < 30
    assert track["properties"]["length_m"] == pytest.approx(3000, rel=0.05)
    assert len(by_kind["scan"]) == 6 and len(by_kind["visit"]) == 3
    assert {f["properties"]["verdict"] for f in by_kind["scan"]} == {"verified", "uid_only"}
    no_gps = next(f for f in by_kind["visit"] if f["properties"]["id"] == trail["visits"]["no_gps"][
        "id"])
    assert no_gps["geometry"] is None
    assert {f["properties"]["name"] for f in by_kind["site"]} == {
        "Site A", "Site B", "Site C", "Meter room D", "Meter room E"}
    kinds = {a["kind"] for a in fc["properties"]["anomalies"]}
    assert {"impossible_travel", "cloned_tag_pattern", "missing_gps"} <= kinds
    # another day is empty; an unknown user is 404; a bad zone is 422
    empty = api.get("manager", f"/api/v1/inspections/technicians/{tech}/day?date=2026-01-06"
                               "&tz=UTC").json()
    assert empty["features"] == [] and empty["properties"]["anomalies"] == []
    assert api.get("manager", "/api/v1/inspections/technicians/999/day?date=2026-01-05"
                   ).status_code == 404
    for zone in ("Nope", "Asia"):  # "Asia" is a directory of the zone database
        r = api.get("manager", f"/api/v1/inspections/technicians/{tech}/day?date=2026-01-05"
                               f"&tz={zone}")
        assert r.status_code == 422 and r.json()["error"]["field"] == "tz", zone
