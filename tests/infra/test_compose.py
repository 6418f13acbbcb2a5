"""docker-compose.yml, validated by `docker-compose config` (no Docker engine needed), and the
Dockerfile it builds from."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.infra.conftest import REPO_ROOT, require_binary

SECRETS = {
    "CREWLINE_SECRET_KEY": "s" * 48,
    "POSTGRES_PASSWORD": "pg-secret",
    "CREWLINE_MQTT_PASSWORD": "mqtt-secret",
    "CREWLINE_TAG_MASTER_KEYS": '{"1": "00112233445566778899aabbccddeeff"}',
}


def compose_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    binary = require_binary("docker-compose")
    # An empty env file, so a developer's ./.env cannot supply (or hide) a missing secret.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return subprocess.run(
        [binary, "--env-file", str(empty), "-f", str(REPO_ROOT / "docker-compose.yml"), "config"],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), **env},
    )


@pytest.fixture
def config(tmp_path: Path) -> dict:
    proc = compose_config(tmp_path, SECRETS)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_services(config: dict) -> None:
    services = config["services"]
    assert set(services) == {"db", "mqtt", "migrate", "server", "worker", "bridge"}
    assert "pgrouting" in services["db"]["image"]
    assert services["mqtt"]["image"].startswith("eclipse-mosquitto:2")
    for name in ("migrate", "server", "worker", "bridge"):
        assert services[name]["build"]["context"] == str(REPO_ROOT)
        env = services[name]["environment"]
        assert env["CREWLINE_ENV"] == "production"
        assert env["CREWLINE_SECRET_KEY"] == SECRETS["CREWLINE_SECRET_KEY"]
        assert env["CREWLINE_DATABASE_URL"] == (
            "postgresql+psycopg://crewline:pg-secret@db:5432/crewline")
        assert env["CREWLINE_MQTT_URL"] == "mqtt://crewline-server:mqtt-secret@mqtt:1883"
    assert services["migrate"]["command"] == ["crewline", "db", "upgrade"]
    assert services["server"]["command"][:2] == ["crewline", "serve"]
    assert services["worker"]["command"] == ["crewline", "worker"]
    assert services["bridge"]["command"] == ["crewline", "bridge"]


def test_the_server_accepts_the_production_environment(tmp_path: Path, monkeypatch) -> None:
    """What compose hands the containers passes the server's own production checks (the Twilio
    token is optional for compose but the server refuses to start without it for Twilio)."""
    from server.settings import Settings

    proc = compose_config(tmp_path, {**SECRETS, "CREWLINE_TWILIO_AUTH_TOKEN": "twilio-token"})
    services = yaml.safe_load(proc.stdout)["services"]
    for name in ("migrate", "server", "worker", "bridge"):
        for key in [k for k in os.environ if k.startswith("CREWLINE_")]:
            monkeypatch.delenv(key)
        for key, value in services[name]["environment"].items():
            monkeypatch.setenv(key, str(value))
        assert Settings(_env_file=None).env == "production"


def test_migrations_run_before_server_and_worker(config: dict) -> None:
    services = config["services"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("server", "worker", "bridge"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["mqtt"]["condition"] == "service_healthy"
        assert services[name]["restart"] == "unless-stopped"


def test_healthchecks(config: dict) -> None:
    services = config["services"]
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    mqtt_check = " ".join(services["mqtt"]["healthcheck"]["test"])
    assert "mosquitto_sub" in mqtt_check and "-u crewline-server" in mqtt_check
    assert "/health" in " ".join(services["server"]["healthcheck"]["test"])


def test_ports_and_volumes(config: dict) -> None:
    services = config["services"]

    def published(service: str) -> set[tuple[int, int]]:
        out = set()
        for port in services[service].get("ports", []):
            if isinstance(port, dict):  # docker-compose 1.29 long form
                out.add((int(port["published"]), int(port["target"])))
            else:
                host, _, target = str(port).rpartition(":")
                out.add((int(host.rsplit(":", 1)[-1]), int(target)))
        return out

    assert published("server") == {(8000, 8000)}
    assert published("mqtt") == {(1883, 1883)}
    assert published("db") == set()  # the database is not exposed
    assert not services["worker"].get("ports") and not services["bridge"].get("ports")
    assert set(config["volumes"]) == {"pgdata", "mqtt-auth", "mqtt-data", "attachments"}
    assert "attachments:/var/lib/crewline/attachments" in " ".join(services["server"]["volumes"])
    db_volumes = " ".join(services["db"]["volumes"])
    assert "pgdata:/var/lib/postgresql/data" in db_volumes
    mounts = " ".join(services["mqtt"]["volumes"])
    assert "deploy/mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in mounts
    assert "mqtt-data:/mosquitto/data" in mounts


def test_ports_can_be_moved(tmp_path: Path) -> None:
    proc = compose_config(tmp_path, {**SECRETS, "CREWLINE_HTTP_PORT": "18000"})
    assert proc.returncode == 0, proc.stderr
    assert "18000" in yaml.safe_dump(yaml.safe_load(proc.stdout)["services"]["server"]["ports"])


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_refuses_to_start_without_a_secret(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    proc = compose_config(tmp_path, env)
    assert proc.returncode != 0
    assert missing in proc.stderr


def test_dockerfile_runs_as_a_non_root_user() -> None:
    lines = [line.strip() for line in (REPO_ROOT / "Dockerfile").read_text().splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms and all(line.split()[1] == "python:3.11-slim" for line in froms)
    users = [line for line in lines if line.startswith("USER ")]
    assert users and users[-1] != "USER root"
    assert any("pip install" in line for line in lines)
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "var", ".env"):
        assert path in ignored
