import json
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from sqlalchemy import text

from server.core.logging import configure_logging, mask_phone
from tests.support import cli_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("raw,masked", [
    ("caller +8613800138000 rang", "caller +86*******8000 rang"),
    ("landline 010-6552 9988", "landline *******9988"),
    ("ticket 12345 and 2026-01-05", "ticket 12345 and 2026-01-05"),
])
def test_phone_numbers_are_masked(raw, masked):
    assert mask_phone(raw) == masked


def test_log_lines_never_carry_full_numbers(capsys):
    configure_logging("INFO", json=True)
    structlog.get_logger().info("lookup", phone="+8613800138000", note="call 138 0013 8000")
    out = capsys.readouterr()
    line = (out.out + out.err).strip().splitlines()[-1]
    event = json.loads(line)
    assert event["phone"] == "+86*******8000" and "13800138000" not in line
    assert event["note"] == "call *******8000"


@pytest.fixture(scope="session")
def helsinki_pbf() -> Path:
    pbf = ROOT / "var" / "data" / "Helsinki.osm.pbf"
    if not pbf.exists():
        subprocess.run([str(ROOT / "scripts" / "fetch-demo-data.sh"), str(pbf.parent)],
                       check=True, timeout=300)
    return pbf


def test_demo_load_is_real_helsinki_and_idempotent(settings, engine, helsinki_pbf, api):
    env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="test")
    cmd = [sys.executable, "-m", "server.cli", "demo", "load", "--pbf", str(helsinki_pbf)]
    for _ in range(2):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert "crewline-demo" in proc.stdout and "OpenStreetMap" in proc.stdout
    with engine.connect() as conn:
        customers = conn.execute(text("SELECT count(*) FROM customers")).scalar_one()
        outside = conn.execute(text(
            "SELECT count(*) FROM service_points WHERE NOT ST_Within(geom, "
            "ST_MakeEnvelope(24.80, 60.10, 25.10, 60.25, 4326))")).scalar_one()
        tickets = conn.execute(text("SELECT count(*) FROM tickets")).scalar_one()
        phone = conn.execute(text("SELECT e164 FROM customer_phones ORDER BY id LIMIT 1")
                             ).scalar_one()
    assert customers > 1000 and outside == 0 and tickets == 5
    r = api.get("agent", "/api/v1/customers/lookup", params={"phone": phone})
    assert r.json()["matches"] and r.json()["matches"][0]["customer"]["account_no"].startswith("HEL-")


def test_demo_refuses_production(settings, helsinki_pbf):
    env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="production",
                  CREWLINE_SECRET_KEY="p" * 40)
    proc = subprocess.run([sys.executable, "-m", "server.cli", "demo", "load", "--pbf",
                           str(helsinki_pbf)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and "production" in (proc.stdout + proc.stderr)


