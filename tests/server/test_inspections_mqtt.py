"""End to end over the real Mosquitto and the real bridge: a generated round reaches the
technician's handset as a ``round`` downlink; the handset reports the tag scan and the visit
through its durable outbox; the visit is stored once, verified, and completes the checkpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from mobile_app.link.client import HandsetLink
from server.devices.bridge import Bridge
from server.inspections import service
from tests.server import mqtt_support
from tests.server.inspections_support import GOOD_VALUES, PNG, World, attachment_refs, near
from tests.server.mqtt_support import wait_for
from tests.server.tags_support import HELSINKI, sun_url

app, broker, mqtt_settings = mqtt_support.app, mqtt_support.broker, mqtt_support.mqtt_settings


@pytest.fixture
def device(api, broker):
    r = api.post("dispatcher", "/api/v1/devices",
                 json={"user_id": api.user_ids["technician"], "name": "Van 9"})
    assert r.status_code == 201, r.text
    return r.json()["mqtt"]


def test_round_down_visit_up(api, mqtt_settings, app, clock, engine, broker, device, tmp_path):
    w = World(api, mqtt_settings, clock)
    sites = [w.site(f"Station {i} 站", HELSINKI["lon"] + 0.003 * i, HELSINKI["lat"])
             for i in range(2)]
    w.tag(sites[0]["id"], "04DE5F1EACC060")
    w.plan([s["id"] for s in sites])
    bridge = Bridge(mqtt_settings, app.state.sessionmaker, clock)
    bridge.start()
    received: list[tuple[str, dict]] = []
    link = HandsetLink("127.0.0.1", broker.bound_port, device["username"], device["password"],
                       tmp_path / "outbox.sqlite", now=clock.now,
                       on_downlink=lambda kind, body: received.append((kind, body)))
    try:
        link.start()
        wait_for(link.connected.is_set)
        with Session(engine) as session:
            (round_id,) = service.generate_rounds(session, clock.now())
            session.commit()
        kind, body = wait_for(lambda: received and received[0], timeout=15)
        assert kind == "round" and body["round_id"] == round_id and body["seq"] == 1
        assert [s["name"] for s in body["sites"]] == ["Station 0 站", "Station 1 站"]
        assert body["templates"][0]["items"][0]["key"] == "pressure"

        scan_id = link.send("tag_scan", scan={
            "sun_url": sun_url(w.keyring, "04DE5F1EACC060", 1), "position": near(HELSINKI, 4)})
        visit_id = link.send("inspection", visit={
            "site_id": body["sites"][0]["site_id"], "round_id": round_id,
            "started_at": (clock.now() - timedelta(minutes=6)).isoformat(),
            "finished_at": clock.now().isoformat(), "tag_scan_msg_id": scan_id,
            "position": near(HELSINKI, 4), "accuracy_m": 5, "values": GOOD_VALUES,
            "attachments": attachment_refs(PNG)})
        wait_for(lambda: len(link.outbox) == 0, timeout=15)  # both acked
    finally:
        link.stop()
        bridge.stop()
    (visit,) = api.get("manager", "/api/v1/inspections/visits").json()
    assert (visit["client_id"], visit["source"], visit["evidence"], visit["flags"]) == (
        visit_id, "mqtt", "verified", [])
    assert visit["scan_verdict"] == "verified"
    rnd = api.get("technician", f"/api/v1/inspections/rounds/{round_id}").json()
    assert [c["state"] for c in rnd["checkpoints"]] == ["done", "pending"]
