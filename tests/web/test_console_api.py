"""The console's pages, vendored map library and read endpoints (queue, crews, basemap tiles,
wall summary): served without a CDN, matching the npm lock, authenticated and role-checked."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from server.console import service
from server.console.router import TILES
from server.core.clock import ManualClock
from server.web.router import STATIC
from tests.server.dispatch_support import import_roads_cli
from tests.web.conftest import PASSWORD, SECRET

WEB = STATIC.parent
VENDOR = STATIC / "vendor" / "leaflet"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # this module's own day


def _app(pg_url, clock=None, **settings):
    from server.app import create_app
    from server.settings import Settings

    return create_app(Settings(env="test", database_url=pg_url, secret_key=SECRET,
                               _env_file=None, **settings), clock=clock)


@pytest.fixture(scope="module")
def clock():
    return ManualClock(START)


@pytest.fixture(scope="module")
def client(pg_url, clock, desk_users):
    app = _app(pg_url, clock)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.tokens = {}
        for role, name in desk_users.items():
            r = c.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
            c.tokens[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        yield c
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def roads(pg_url):
    proc = import_roads_cli(pg_url)
    assert proc.returncode == 0, proc.stderr


# -- the vendored library ----------------------------------------------------------------------
def test_vendored_leaflet_is_the_locked_npm_release() -> None:
    package = json.loads((WEB / "package.json").read_text())
    lock = json.loads((WEB / "package-lock.json").read_text())
    manifest = json.loads((VENDOR / "manifest.json").read_text())
    locked = lock["packages"]["node_modules/leaflet"]
    assert package["dependencies"] == {"leaflet": "1.9.4"}  # exact: no range drifts in
    assert manifest["version"] == locked["version"] == "1.9.4"
    assert manifest["integrity"] == locked["integrity"]
    assert locked["integrity"].startswith("sha512-")
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*")
               if p.is_file() and p.name != "manifest.json"}
    assert on_disk == set(manifest["files"])  # nothing added or dropped by hand
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert "Leaflet 1.9.4" in (VENDOR / "leaflet.js").read_text()[:200]


def test_pages_load_the_map_library_from_us(client) -> None:
    for page, script in (("/dispatch", "dispatch.js"), ("/wall", "wall.js"), ("/sms", "sms.js"),
                         ("/outages", "outages.js"), ("/inspections", "inspections.js")):
        r = client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert f'<script type="module" src="/static/{script}">' in r.text
        assert "img-src 'self' data:;" in r.headers["content-security-policy"]
    page = client.get("/dispatch").text
    assert '<script src="/static/vendor/leaflet/leaflet.js">' in page
    for path, media in (("/static/vendor/leaflet/leaflet.js", "text/javascript"),
                        ("/static/vendor/leaflet/leaflet.css", "text/css"),
                        ("/static/vendor/leaflet/images/layers.png", "image/png"),
                        ("/static/map.js", "text/javascript")):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(media), path


def test_a_configured_tile_server_is_allowed_by_the_pages_csp(pg_url, desk_users) -> None:
    app = _app(pg_url, tile_url="https://{s}.tiles.example.org/{z}/{x}/{y}.png",
               tile_attribution="© Example tiles")
    with TestClient(app) as c:
        csp = c.get("/dispatch").headers["content-security-policy"]
        assert "img-src 'self' data: https://*.tiles.example.org;" in csp
        token = c.post("/api/v1/auth/token", data={"username": desk_users["dispatcher"],
                                                   "password": PASSWORD}).json()["access_token"]
        cfg = c.get("/api/v1/console/config", headers={"Authorization": f"Bearer {token}"}).json()
        assert cfg["tile_url"] == "https://{s}.tiles.example.org/{z}/{x}/{y}.png"
        assert cfg["basemap"] == "tiles" and cfg["attribution"] == "© Example tiles"
    app.state.engine.dispose()
    from pydantic import ValidationError

    from server.settings import Settings

    for bad in ("javascript:alert(1)", "https://tiles.example.org/no-placeholders.png",
                "https://x.org/{z}/{x}/{y}.png' onerror='"):
        with pytest.raises(ValidationError):
            Settings(tile_url=bad, _env_file=None)


# -- authentication and roles --------------------------------------------------------------------
def _console_calls() -> set[str]:
    paths = set()
    for name in ("dispatch.js", "wall.js", "sms.js", "outages.js", "inspections.js", "map.js"):
        for p in re.findall(r'api\("(?:GET|POST|PATCH|DELETE)", [`"](/[^`"]+)[`"]',
                            (STATIC / name).read_text()):
            paths.add("/api/v1" + re.sub(r"\$\{[^}]+\}", "1", p).replace("/1/1/1.json", "/12/1/1.json"))
    return paths


def test_every_console_call_needs_a_token(client) -> None:
    calls = _console_calls()
    assert {"/api/v1/console/config", "/api/v1/console/tickets", "/api/v1/console/crews",
            "/api/v1/console/summary", "/api/v1/console/basemap/12/1/1.json",
            "/api/v1/sms/messages"} <= calls
    assert {"/api/v1/outages", "/api/v1/outages/preview", "/api/v1/outages/1/transitions",
            "/api/v1/inspections/technicians/1/day", "/api/v1/inspections/compliance",
            "/api/v1/tickets/1/assignment", "/api/v1/tickets/1/suggestions"} <= calls
    for path in sorted(calls):
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            method = "POST" if path.endswith(("/preview", "/transitions")) else "GET"
            r = client.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (path, r.text)


@pytest.mark.parametrize(("role", "path", "status"), [
    ("technician", "/api/v1/console/tickets", 403), ("technician", "/api/v1/console/summary", 403),
    ("technician", "/api/v1/console/crews", 403), ("agent", "/api/v1/console/crews", 403),
    ("agent", "/api/v1/console/tickets", 200), ("agent", "/api/v1/console/summary", 200),
    ("manager", "/api/v1/console/crews", 200), ("dispatcher", "/api/v1/console/summary", 200),
    ("technician", "/api/v1/console/config", 200),
    ("technician", "/api/v1/console/basemap/12/2331/1185.json", 200),
])
def test_roles(client, role: str, path: str, status: int) -> None:
    r = client.get(path, headers=client.tokens[role])
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["error"]["code"] == "forbidden"


# -- the basemap ---------------------------------------------------------------------------------
def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    import math

    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_basemap_tiles_carry_the_road_graph_simplified_by_zoom(client, roads) -> None:
    headers = client.tokens["dispatcher"]
    x, y = _tile(24.9415, 60.1712, 16)
    r = client.get(f"/api/v1/console/basemap/16/{x}/{y}.json", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    z16 = r.json()
    assert (z16["z"], z16["x"], z16["y"]) == (16, x, y)
    assert len(z16["roads"]) > 10
    classes = {road[0] for road in z16["roads"]}
    assert "residential" in classes or "service" in classes
    for cls, _name, line in z16["roads"]:
        assert len(line) >= 2 and all(len(pt) == 2 for pt in line), cls
    # a tile spans its bounds (+ a margin): every line touches it
    x1, y1, x2, y2 = service.tile_bounds(16, x, y)
    pad = (x2 - x1) * 0.05 + 1e-5  # the server pads the same; coordinates are rounded to 1e-6
    for _cls, _name, line in z16["roads"]:
        lons = [p[0] for p in line]
        lats = [p[1] for p in line]
        assert min(lons) <= x2 + pad and max(lons) >= x1 - pad
        assert min(lats) <= y2 + pad and max(lats) >= y1 - pad
    # zoomed out: only big roads, fewer points
    x12, y12 = _tile(24.9415, 60.1712, 12)
    z12 = client.get(f"/api/v1/console/basemap/12/{x12}/{y12}.json", headers=headers).json()
    assert {road[0] for road in z12["roads"]} <= {c for c, zmin in service.ROAD_MIN_ZOOM.items()
                                                  if zmin <= 12}
    assert sum(len(r[2]) for r in z12["roads"]) < sum(len(r[2]) for r in z16["roads"]) * 20
    # the second request is served from the cache
    hits = TILES.hits
    assert client.get(f"/api/v1/console/basemap/16/{x}/{y}.json", headers=headers).json() == z16
    assert TILES.hits == hits + 1
    # the open sea has no roads
    x, y = _tile(24.0, 59.5, 16)
    assert client.get(f"/api/v1/console/basemap/16/{x}/{y}.json", headers=headers).json()["roads"] == []


@pytest.mark.parametrize(("path", "field"), [("7/1/1", "z"), ("20/1/1", "z"), ("12/4096/1", "x"),
                                             ("12/1/4096", "y"), ("12/-1/1", "x")])
def test_basemap_refuses_tiles_that_do_not_exist(client, path: str, field: str) -> None:
    r = client.get(f"/api/v1/console/basemap/{path}.json", headers=client.tokens["dispatcher"])
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_config_opens_the_map_on_the_road_graph(client, roads) -> None:
    cfg = client.get("/api/v1/console/config", headers=client.tokens["agent"]).json()
    assert cfg["tile_url"] is None and cfg["basemap"] == "roads"
    lon1, lat1, lon2, lat2 = cfg["bounds"]
    assert 24.9 < lon1 < lon2 < 25.0 and 60.1 < lat1 < lat2 < 60.2
    assert cfg["attribution"] == "Map data © OpenStreetMap contributors, ODbL"


# -- queue and summary ----------------------------------------------------------------------------
def _ticket(client, priority: str, description: str = "漏水 leak") -> dict:
    r = client.post("/api/v1/tickets", headers=client.tokens["agent"], json={
        "category": "repair", "priority": priority, "description": description,
        "location": {"lon": 24.9401, "lat": 60.1701}})
    assert r.status_code == 201, r.text
    return r.json()["ticket"]


def test_queue_orders_by_the_nearest_sla_deadline(client, clock) -> None:
    tag = uuid.uuid4().hex[:6]
    low = _ticket(client, "low", f"queue {tag}")
    emergency = _ticket(client, "emergency", f"queue {tag}")
    rows = client.get("/api/v1/console/tickets", headers=client.tokens["dispatcher"]).json()
    mine = [r for r in rows if r["summary"] == f"queue {tag}"]
    assert [r["id"] for r in mine] == [emergency["id"], low["id"]]
    dues = [r["due_at"] for r in rows if r["due_at"]]
    assert dues == sorted(dues)  # the whole queue, not just ours
    row = mine[0]
    assert row["number"] == emergency["number"] and row["due_clock"] == "assign"
    assert row["open"] and row["crew_id"] is None and row["lon"] == pytest.approx(24.9401)
    assert datetime.fromisoformat(row["warn_at"]) < datetime.fromisoformat(row["due_at"])


def test_summary_counts_open_tickets_and_breaches(client, clock) -> None:
    headers = client.tokens["manager"]
    before = client.get("/api/v1/console/summary", headers=headers).json()
    ticket = _ticket(client, "emergency", "summary test")
    after = client.get("/api/v1/console/summary", headers=headers).json()
    assert after["tickets"]["open"] == before["tickets"]["open"] + 1
    by = after["tickets"]["open_by_category_status"]["repair"]
    assert by["new"] == before["tickets"]["open_by_category_status"].get("repair", {}).get("new", 0) + 1
    assert after["tickets"]["created_today"] == before["tickets"]["created_today"] + 1
    assert after["timezone"] == "Asia/Shanghai"
    assert datetime.fromisoformat(after["day_start"]).astimezone(UTC).hour == 16  # Shanghai midnight
    clock.advance(timedelta(hours=6))  # every clock of this ticket is past due
    late = client.get("/api/v1/console/summary", headers=headers).json()
    client.post(f"/api/v1/tickets/{ticket['id']}/transitions", headers=client.tokens["agent"],
                json={"to": "cancelled", "note": "test"})
    gone = client.get("/api/v1/console/summary", headers=headers).json()
    assert late["sla"]["breached_open"] == gone["sla"]["breached_open"] + 1
    assert gone["tickets"]["open"] == late["tickets"]["open"] - 1
    for key in ("by_status", "by_shift", "stale_on_shift"):
        assert key in gone["crews"]
    assert set(gone["sms"]) == {"by_status", "sent", "delivered", "failed"}
    # other domains' figures: present when their tables are (outages, inspections)
    for key in ("inspections", "outages"):
        assert key in gone


def test_live_crew_rows_are_the_crews_endpoints_rows(client, clock) -> None:
    """The live path builds crew rows in SQL; they must be what GET /console/crews gives."""
    r = client.post("/api/v1/crews", headers=client.tokens["manager"], json={
        "name": f"Rows {uuid.uuid4().hex[:6]}", "skills": ["meter", "valve"], "shift": "on_shift",
        "capacity": 3})
    crew = r.json()
    client.post(f"/api/v1/crews/{crew['id']}/positions", headers=client.tokens["dispatcher"],
                json={"fixes": [{"lon": 24.9412345, "lat": 60.1698765, "heading_deg": 271.6,
                                 "speed_mps": 4.44, "at": clock.now().isoformat()}]})
    bare = client.post("/api/v1/crews", headers=client.tokens["manager"], json={
        "name": f"Bare {uuid.uuid4().hex[:6]}", "skills": [], "shift": "off"}).json()
    rows = {c["id"]: c for c in client.get("/api/v1/console/crews",
                                            headers=client.tokens["dispatcher"]).json()}
    fresh = clock.now() - timedelta(minutes=10)
    with client.app.state.sessionmaker() as session:
        live = json.loads(service.crews_json(session, [crew["id"], bare["id"]], fresh))
        assert service.crews_json(session, [], fresh) == "[]"
    assert [c["id"] for c in live] == [crew["id"], bare["id"]]
    for row in live:
        want = rows[row["id"]]
        assert set(row) == set(want)
        for key, value in want.items():
            if key == "at" and value:
                assert datetime.fromisoformat(row[key]) == datetime.fromisoformat(value)
            else:
                assert row[key] == value, (key, row[key], value)
    assert live[0]["heading"] == 272 and live[0]["speed"] == 4.4 and not live[0]["stale"]
    assert live[1]["lon"] is None and live[1]["stale"]
