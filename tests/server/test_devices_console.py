"""What the console's Devices page asks of the devices API: technicians with their handsets, the
state of a pairing code it shows (and voiding it), and the pairing QR code as SVG (segno)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
import segno
from sqlalchemy import text

from tests.server import mqtt_support

app, broker, mqtt_settings = mqtt_support.app, mqtt_support.broker, mqtt_support.mqtt_settings

CODES = "/api/v1/devices/pairing-codes"
PAIR = "/api/v1/devices/pair"
TECHS = "/api/v1/devices/technicians"
QR = "/api/v1/devices/pairing-codes/qr"
MANAGERS = ("dispatcher", "manager", "admin")


def new_code(api, role="dispatcher") -> dict:
    r = api.post(role, CODES, json={"user_id": api.user_ids["technician"]})
    assert r.status_code == 201, r.text
    return r.json()


def refused(r, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] in {401: ("not_authenticated", "invalid_token"),
                                         403: ("forbidden",)}[status]


def mine(listed: list[dict], user_id: int) -> dict:
    (found,) = [t for t in listed if t["id"] == user_id]
    return found


def test_technicians_with_their_handsets(api, broker, engine, clock) -> None:
    tech = api.user_ids["technician"]
    for role in ("agent", "technician"):
        refused(api.get(role, TECHS), 403)
    refused(api.client.get(TECHS), 401)
    refused(api.client.get(TECHS, headers={"Authorization": "Bearer forged"}), 401)
    for role in MANAGERS:
        r = api.get(role, TECHS)
        assert r.status_code == 200, r.text
    listed = r.json()
    with engine.connect() as conn:  # technicians only (other tests may have made more of them)
        roles = conn.execute(text("SELECT role FROM users WHERE id = ANY(:ids)"),
                             {"ids": [t["id"] for t in listed]}).scalars().all()
    assert set(roles) == {"technician"} and len(roles) == len(listed)
    ours = mine(listed, tech)
    assert ours["username"] == "technician" and ours["devices"] == []

    kept = api.client.post(PAIR, json={"code": new_code(api)["code"], "name": "Van 7 phone"}).json()
    clock.advance(timedelta(minutes=1))
    gone = api.client.post(PAIR, json={"code": new_code(api)["code"], "name": "Old phone"}).json()
    assert api.client.delete(f"/api/v1/devices/{gone['device']['id']}",
                             headers=api.headers("dispatcher")).status_code == 200
    devices = mine(api.get("dispatcher", TECHS).json(), tech)["devices"]
    assert [(d["id"], d["name"], d["revoked_at"] is not None) for d in devices] == [
        (gone["device"]["id"], "Old phone", True), (kept["device"]["id"], "Van 7 phone", False)]
    assert devices[1]["presence"] is None and devices[1]["created_at"].startswith("2026-01-05T08:00")
    only_active = mine(api.get("dispatcher", TECHS, params={"include_revoked": "false"}).json(), tech)
    assert [d["id"] for d in only_active["devices"]] == [kept["device"]["id"]]

    # an inactive technician is listed as such (the page greys out "Pair a handset")
    assert api.patch("admin", f"/api/v1/users/{tech}", json={"is_active": False}).status_code == 200
    assert mine(api.get("manager", TECHS).json(), tech)["is_active"] is False


def test_the_state_of_a_code_pending_used_expired(api, broker, clock) -> None:
    code = new_code(api)
    url = f"{CODES}/{code['id']}"
    for role in ("agent", "technician"):
        refused(api.get(role, url), 403)
    refused(api.client.get(url), 401)
    r = api.get("manager", url)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["state"] == "pending" and body["used_at"] is None and body["device_id"] is None
    assert "code" not in body and code["code"] not in r.text  # never the code itself
    assert datetime.fromisoformat(body["expires_at"]) == datetime.fromisoformat(code["expires_at"]) \
        == clock.now() + timedelta(minutes=10)

    paired = api.client.post(PAIR, json={"code": code["code"], "name": "Van 7 phone"}).json()
    body = api.get("dispatcher", url).json()
    assert body["state"] == "used" and body["device_id"] == paired["device"]["id"]

    other = new_code(api)
    clock.advance(timedelta(minutes=10))
    assert api.get("dispatcher", f"{CODES}/{other['id']}").json()["state"] == "expired"
    assert api.get("dispatcher", url).json()["state"] == "used"  # used stays used
    r = api.get("dispatcher", f"{CODES}/999999")
    assert r.status_code == 404 and r.json()["error"]["field"] == "code_id"


def test_closing_the_panel_voids_an_unused_code(api, broker, clock) -> None:
    code = new_code(api)
    url = f"{CODES}/{code['id']}"
    refused(api.client.delete(url, headers=api.headers("agent")), 403)
    refused(api.client.delete(url), 401)
    r = api.client.delete(url, headers=api.headers("dispatcher"))
    assert r.status_code == 200 and r.json()["state"] == "expired"
    r = api.client.post(PAIR, json={"code": code["code"], "name": "Too late"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "pairing_refused"
    # voiding a used code changes nothing
    used = new_code(api)
    assert api.client.post(PAIR, json={"code": used["code"], "name": "Van 7"}).status_code == 201
    r = api.client.delete(f"{CODES}/{used['id']}", headers=api.headers("manager"))
    assert r.status_code == 200 and r.json()["state"] == "used"


def modules(svg: str) -> list[list[bool]]:
    """The dark modules of segno's SVG path (``M x y`` / ``m dx dy`` moves, ``h n`` dark runs)."""
    size = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg).group(1))
    grid = [[False] * size for _ in range(size)]
    path = re.search(r'<path stroke="#000" d="([^"]+)"', svg).group(1)
    x = y = 0.0
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            for i in range(int(float(a))):
                grid[int(y)][int(x) + i] = True
            x += float(a)
    return grid


def test_the_qr_code_is_the_payload_as_svg(api) -> None:
    payload = new_code(api)["qr_payload"]
    for role in ("agent", "technician"):
        refused(api.post(role, QR, json={"payload": payload}), 403)
    refused(api.client.post(QR, json={"payload": payload}), 401)
    for role in MANAGERS:
        r = api.post(role, QR, json={"payload": payload})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("image/svg+xml")
        assert r.headers["cache-control"] == "no-store"
    svg = r.text
    assert svg.startswith("<svg") and "<script" not in svg and "href" not in svg
    qr = segno.make(payload, error="m", micro=False)
    expected = [[bool(v) for v in row] for row in qr.matrix_iter(border=4)]
    assert modules(svg) == expected
    assert qr.error == "M" and not qr.is_micro

    for bad in ("https://evil.example/", "hello", ""):
        r = api.post("dispatcher", QR, json={"payload": bad})
        assert r.status_code == 422 and r.json()["error"]["field"] in ("payload", "body.payload"), r.text
    r = api.post("dispatcher", QR, json={"payload": "crewline://pair?" + "x" * 600})
    assert r.status_code == 422


@pytest.mark.parametrize("role", MANAGERS)
def test_codes_carry_their_id(api, role) -> None:
    code = new_code(api, role)
    assert isinstance(code["id"], int) and code["id"] >= 1
