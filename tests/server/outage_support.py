"""Helpers for the outage tests: customers placed at exact points, polygons, message counts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from sqlalchemy import text

_numbers = itertools.count(1)

# A square in Kamppi with a square hole (axis-aligned, so boundary points are exact doubles).
OUTER = [[24.90, 60.16], [24.92, 60.16], [24.92, 60.17], [24.90, 60.17], [24.90, 60.16]]
HOLE = [[24.905, 60.163], [24.915, 60.163], [24.915, 60.167], [24.905, 60.167], [24.905, 60.163]]
POLYGON_WITH_HOLE = {"type": "Polygon", "coordinates": [OUTER, HOLE]}
INSIDE = (24.902, 60.162)
ETR = "2026-01-05T18:00:00+08:00"  # 10:00 UTC, two hours after the test clock's 08:00 UTC


def add_customer(engine, lon: float, lat: float, *, language: str = "zh-CN", consent: bool = True,
                 phone: str | None = None, kind: str = "mobile", address: str | None = None) -> dict:
    """A customer with one phone and one service point at exactly (lon, lat)."""
    n = next(_numbers)
    phone = phone or f"+86139{n:08d}"
    with engine.begin() as conn:
        cid = conn.execute(text(
            "INSERT INTO customers (account_no, name, preferred_language, sms_consent) "
            "VALUES (:a, :n, :l, :c) RETURNING id"),
            {"a": f"T-{n}", "n": f"Customer {n}", "l": language, "c": consent}).scalar_one()
        conn.execute(text("INSERT INTO customer_phones (customer_id, e164, kind) "
                          "VALUES (:c, :e, :k)"), {"c": cid, "e": phone, "k": kind})
        sp = conn.execute(text(
            "INSERT INTO service_points (customer_id, address, geom) VALUES (:c, :a, "
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) RETURNING id"),
            {"c": cid, "a": address or f"Testikatu {n}", "lon": lon, "lat": lat}).scalar_one()
    return {"id": cid, "phone": phone, "service_point_id": sp, "lon": lon, "lat": lat}


def messages(engine, where: str = "true", **params) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            f"SELECT * FROM sms_messages WHERE outage_ref IS NOT NULL AND {where} ORDER BY id"),
            params).mappings()]


def declare(api, area: dict, *, role: str = "dispatcher", expect: int = 201, **body) -> dict:
    body.setdefault("type", "water_outage")
    body.setdefault("area_name", "Kamppi")
    body.setdefault("etr", ETR)
    r = api.post(role, "/api/v1/outages", json={"area": area, **body})
    assert r.status_code == expect, r.text
    return r.json()


def polygon(geometry: dict = POLYGON_WITH_HOLE) -> dict:
    return {"kind": "polygon", "geometry": geometry}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
