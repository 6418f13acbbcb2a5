"""Helpers for the inspections tests: sites with tags, a site type with a checklist, plans,
scans of every verdict, visits, PNG bytes, and a small synthetic road graph."""

from __future__ import annotations

import struct
import zlib
from datetime import timedelta

from sqlalchemy import text

from server.settings import Settings
from server.tags.keys import keyring_from_settings
from tests.server.tags_support import sun_url

ITEMS = [
    {"key": "pressure", "label": "Pressure", "label_zh": "压力", "kind": "number", "unit": "bar",
     "min": 2, "max": 6},
    {"key": "valve", "label": "Valve position", "label_zh": "阀门位置", "kind": "choice",
     "options": ["open", "closed"]},
    {"key": "leak", "label": "Leak found", "label_zh": "发现泄漏", "kind": "yes_no"},
    {"key": "remarks", "label": "Remarks", "label_zh": "备注", "kind": "text", "required": False},
    {"key": "photo", "label": "Meter photo", "label_zh": "仪表照片", "kind": "photo"},
    {"key": "sign", "label": "Witness signature", "label_zh": "见证人签名", "kind": "signature",
     "signer": "witness"},
]
GOOD_VALUES = {"pressure": 3.5, "valve": "open", "leak": False, "remarks": "正常 / all normal"}


def attachment_refs(data: bytes) -> list[dict]:
    """Metadata of a meter photo and a witness signature (both ``data``)."""
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    return [{"item": "photo", "kind": "photo", "sha256": sha, "content_type": "image/png",
             "size": len(data)},
            {"item": "sign", "kind": "signature", "sha256": sha, "content_type": "image/png",
             "size": len(data), "signer_name": "王芳"}]


def png(width: int = 40, height: int = 30, rgb: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    """A real PNG (solid colour with a diagonal line), no imaging library needed."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            row += bytes((0, 0, 0)) if abs(x - y * width // height) < 2 else bytes(rgb)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


PNG = png()


class World:
    """Sites, tags, a site type and scans, made through the HTTP API like an operator would."""

    def __init__(self, api, settings: Settings, clock) -> None:
        self.api, self.clock = api, clock
        self.keyring = keyring_from_settings(settings)
        self.counters: dict[str, int] = {}
        self.site_type: dict | None = None

    def site_type_with_checklist(self, code: str = "pump_station", items=None) -> dict:
        r = self.api.post("manager", "/api/v1/inspections/site-types",
                          json={"code": code, "name": "Pump station 泵站", "items": items or ITEMS})
        assert r.status_code == 201, r.text
        self.site_type = r.json()
        return self.site_type

    def site(self, name: str, lon: float, lat: float, *, typed: bool = True,
             tolerance_m: float | None = None) -> dict:
        r = self.api.post("manager", "/api/v1/sites", json={
            "name": name, "kind": "site", "location": {"lon": lon, "lat": lat},
            "address": f"{name} 1, Helsinki"})
        assert r.status_code == 201, r.text
        site = r.json()
        if typed:
            if self.site_type is None:
                self.site_type_with_checklist()
            r = self.api.put("manager", f"/api/v1/inspections/sites/{site['id']}/profile",
                             json={"site_type_id": self.site_type["id"],
                                   "tolerance_m": tolerance_m})
            assert r.status_code == 200, r.text
        return site

    def tag(self, site_id: int, uid: str, *, sun: bool = True) -> dict:
        r = self.api.post("manager", "/api/v1/tags", json={
            "uid": uid, "tag_type": "type4" if sun else "type2", "sun_enabled": sun,
            "site_id": site_id})
        assert r.status_code == 201, r.text
        return r.json()

    def scan(self, uid: str | None = None, *, sun: bool = True, url: str | None = None,
             position: dict | None = None, role: str = "technician", **extra) -> dict:
        body: dict = {**extra}
        if url is not None:
            body["sun_url"] = url
        elif sun:
            self.counters[uid] = self.counters.get(uid, 0) + 1
            body["sun_url"] = sun_url(self.keyring, uid, self.counters[uid])
        else:
            body["uid"] = uid
        if position is not None:
            body["position"] = position
        r = self.api.post(role, "/api/v1/tags/scans", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def visit(self, site_id: int, *, scan: dict | None, position: dict | None,
              role: str = "technician", minutes: float = 5, values=None, expect: int = 201,
              **extra) -> dict:
        now = self.clock.now()
        body = {"site_id": site_id, "started_at": (now - timedelta(minutes=minutes)).isoformat(),
                "finished_at": now.isoformat(),
                "values": GOOD_VALUES if values is None else values,
                "attachments": attachment_refs(PNG) if values is None else [], **extra}
        if scan is not None:
            body["tag_scan_id"] = scan["id"]
        if position is not None:
            body["position"] = position
        r = self.api.post(role, "/api/v1/inspections/visits", json=body)
        assert r.status_code == expect, r.text
        return r.json()

    def plan(self, site_ids: list[int], *, frequency: str = "daily", window=("07:00", "17:00"),
             timezone: str = "UTC", starts_on: str = "2026-01-01", **assignee) -> dict:
        if not assignee:
            assignee = {"technician_id": self.api.user_ids["technician"]}
        r = self.api.post("manager", "/api/v1/inspections/plans", json={
            "name": "Daily pump round 泵站日巡", "site_ids": site_ids, "frequency": frequency,
            "window_start": window[0], "window_end": window[1], "timezone": timezone,
            "starts_on": starts_on, **assignee})
        assert r.status_code == 201, r.text
        return r.json()


def near(point: dict, metres_north: float) -> dict:
    """A point ``metres_north`` of ``point`` (1° of latitude ≈ 111.2 km)."""
    return {"lon": point["lon"], "lat": point["lat"] + metres_north / 111_195.0}


# --- a synthetic road far from the Helsinki demo graph ----------------------------------------
ROAD_IDS = (990_000_001, 990_000_002, 990_000_003)
ROAD_LAT = 61.0
ROAD_LONS = (26.0, 26.0186, 26.0372, 26.0558)  # ≈ 1 km apart at 61° N


def add_road(engine) -> None:
    """Three 1 km edges in a line at 36 km/h (100 s each), both directions."""
    with engine.begin() as conn:
        for i, edge in enumerate(ROAD_IDS):
            conn.execute(text("""
                INSERT INTO road_edges (id, source, target, cost, reverse_cost, length_m,
                                        speed_kmh, osm_id, highway, name, oneway, geom)
                SELECT :id, :s, :t, len / 10.0, len / 10.0, len, 36, 0, 'residential',
                       'Test road', 0, g
                FROM (SELECT ST_SetSRID(ST_MakeLine(ST_MakePoint(:x1, :y), ST_MakePoint(:x2, :y)),
                                        4326) AS g) q,
                     LATERAL (SELECT ST_Length(geography(q.g)) AS len) l
                ON CONFLICT (id) DO NOTHING"""),
                {"id": edge, "s": 990_000_100 + i, "t": 990_000_101 + i,
                 "x1": ROAD_LONS[i], "x2": ROAD_LONS[i + 1], "y": ROAD_LAT})


def remove_road(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM road_edges WHERE id = ANY(:ids)"), {"ids": list(ROAD_IDS)})


def generate(engine, now, ahead: timedelta = timedelta(0)) -> list[int]:
    """One round-generation sweep in its own transaction; the new rounds' ids."""
    from sqlalchemy.orm import Session

    from server.inspections import service

    with Session(engine) as session:
        created = service.generate_rounds(session, now, ahead=ahead)
        session.commit()
    return created


def close(engine, now):
    """One closing sweep in its own transaction (a ``service.SweepResult``)."""
    from sqlalchemy.orm import Session

    from server.inspections import service

    with Session(engine) as session:
        result = service.close_due_rounds(session, now)
        session.commit()
    return result
