"""`crewline simulate`: simulated handsets (the real HandsetLink) complete real jobs through the
real broker, bridge, dispatch and ticket lifecycle."""

from __future__ import annotations

import json
import stat

import pytest
from sqlalchemy import text

from server.core.clock import SystemClock
from server.devices.bridge import Bridge
from server.devices.simulator import Simulator, provision
from tests.server import mqtt_support
from tests.server.dispatch_support import make_crew
from tests.server.mqtt_support import wait_for

app, broker, mqtt_settings = mqtt_support.app, mqtt_support.broker, mqtt_support.mqtt_settings

A = (24.9384, 60.1699)
B = (24.9500, 60.1750)


@pytest.fixture
def clock():
    """Simulated handsets stamp fixes with the wall clock, so the server runs on it too."""
    return SystemClock()


def scalar(engine, sql: str, **params):
    with engine.begin() as conn:
        return conn.scalar(text(sql), params)


def test_two_simulated_crews_complete_their_jobs(api, app, mqtt_settings, clock, engine,
                                                 tmp_path) -> None:
    tech = api.user_ids["technician"]
    crew_a = make_crew(api, clock, "Crew A", *A, members=[tech])
    crew_b = make_crew(api, clock, "Crew B", *B)  # no technician: the simulator adds one
    var = tmp_path / "simulator"
    devices = provision(mqtt_settings, app.state.sessionmaker, clock, 2, var)
    # crews nobody works in first (real technicians keep theirs for a real handset), then staffed
    assert [d.crew_id for d in devices] == [crew_b["id"], crew_a["id"]]
    assert devices[0].username.startswith("sim-tech-") and devices[1].user_id == tech
    creds = var / "devices.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert {d["device_id"] for d in json.loads(creds.read_text())} == {d.device_id for d in devices}
    # a second run reuses the registered devices
    again = provision(mqtt_settings, app.state.sessionmaker, clock, 2, var)
    assert [d.device_id for d in again] == [d.device_id for d in devices]
    assert scalar(engine, "SELECT count(*) FROM devices") == 2

    bridge = Bridge(mqtt_settings, app.state.sessionmaker, clock, poll_interval=0.5)
    bridge.start()
    sim = Simulator(mqtt_settings, app.state.sessionmaker, clock, devices, var, speed_kmh=150,
                    work_s=0.5, fix_every_s=0.2, batch_fixes=3, arrival_wait_s=3)
    sim.start()
    try:
        tickets = []
        for crew, (lon, lat) in ((crew_a, A), (crew_b, B)):
            r = api.post("agent", "/api/v1/tickets", json={
                "category": "repair", "priority": "high", "description": "漏水 leak",
                "location": {"lon": lon + 0.002, "lat": lat + 0.001}})
            assert r.status_code == 201, r.text
            tid = r.json()["ticket"]["id"]
            r = api.post("dispatcher", f"/api/v1/tickets/{tid}/assignment",
                         json={"crew_id": crew["id"]})
            assert r.status_code == 201, r.text
            tickets.append(tid)
        wait_for(lambda: sorted(sim.completed) == sorted(tickets), timeout=120, interval=0.5)
    finally:
        sim.stop()
        bridge.stop()
    for tid in tickets:
        t = api.get("dispatcher", f"/api/v1/tickets/{tid}").json()
        assert t["status"] == "resolved" and t["resolution_code"] == "sim_repaired"
        kinds = [e["kind"] for e in t["events"]]
        assert kinds.index("accepted") < kinds.index("en_route") < kinds.index("resolved")
        assert "on_site" in kinds
    # they drove there (position history), scanned a tag and reported a photo per job
    assert scalar(engine, "SELECT count(*) FROM crew_positions") > 10
    assert scalar(engine, "SELECT count(*) FROM tag_scans WHERE source = 'mqtt'") == 2
    assert scalar(engine, "SELECT count(*) FROM device_attachments WHERE kind = 'photo'") == 2
    assert scalar(engine, "SELECT count(*) FROM device_dead_letters") == 0


def test_crewline_simulate_command(api, mqtt_settings, clock, engine) -> None:
    """The CLI provisions, runs for the given minutes, stops cleanly and says what it did."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from tests.support import cli_env

    make_crew(api, clock, "Crew C", *A, members=[api.user_ids["technician"]])
    var = Path(tempfile.mkdtemp(prefix="crewline-sim-"))
    env = cli_env(CREWLINE_ENV="test", CREWLINE_DATABASE_URL=mqtt_settings.database_url,
                  CREWLINE_MQTT_URL=mqtt_settings.mqtt_url,
                  CREWLINE_MQTT_AUTH_DIR=mqtt_settings.mqtt_auth_dir,
                  CREWLINE_SECRET_KEY=mqtt_settings.secret_key.get_secret_value())
    proc = subprocess.run([sys.executable, "-m", "server.cli", "simulate", "--crews", "1",
                           "--minutes", "0.05", "--var-dir", str(var)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "simulating 1 crews: technician/hs-" in proc.stdout
    assert "jobs completed: 0" in proc.stdout
    (dev,) = json.loads((var / "simulator" / "devices.json").read_text())
    assert scalar(engine, "SELECT count(*) FROM devices WHERE id = :d AND revoked_at IS NULL",
                  d=dev["device_id"]) == 1
    assert scalar(engine, "SELECT shift FROM crews WHERE name = 'Crew C'") == "on_shift"
