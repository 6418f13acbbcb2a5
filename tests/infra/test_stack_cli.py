"""`crewline stack up/down/status`: the demo's private services and background processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from server.devstack.base import DevstackError, free_port, read_env_file
from server.devstack.cli import stack_app
from server.devstack.processes import BackgroundProcess, wait_for_http

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(stack_app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture
def var_dir(service_dir: Path):
    var = service_dir / "var"
    yield var
    runner.invoke(stack_app, ["down", "--var-dir", str(var)])


def test_up_writes_settings_and_is_idempotent(var_dir: Path) -> None:
    import psycopg

    invoke("up", "--var-dir", str(var_dir), "--pg-port", "0", "--mqtt-port", "0")
    env_file = var_dir / "stack.env"
    env = read_env_file(env_file)
    assert env["CREWLINE_ENV"] == "development"
    assert env["CREWLINE_SMS_PROVIDER"] == "log"
    assert len(env["CREWLINE_SECRET_KEY"]) >= 32
    assert env["CREWLINE_DATABASE_URL"].startswith("postgresql+psycopg://crewline:")
    assert env["CREWLINE_DATABASE_URL"].endswith("/crewline")
    assert env["CREWLINE_MQTT_URL"].startswith("mqtt://crewline-server:")
    assert env_file.stat().st_mode & 0o077 == 0
    with psycopg.connect(env["CREWLINE_DATABASE_URL"].replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'postgis'").fetchone()

    with env_file.open("a") as f:
        f.write("CREWLINE_LOG_LEVEL=DEBUG\n")
    invoke("up", "--var-dir", str(var_dir))  # second run: same ports, same secret, extra kept
    again = read_env_file(env_file)
    assert again == {**env, "CREWLINE_LOG_LEVEL": "DEBUG"}

    status = invoke("status", "--var-dir", str(var_dir)).output
    assert status.count("running") == 2 and status.count("stopped") == 4  # 4 app processes

    down = invoke("down", "--var-dir", str(var_dir)).output
    assert "stopped mosquitto" in down and "stopped postgresql" in down
    assert invoke("status", "--var-dir", str(var_dir)).output.count("stopped") == 6
    invoke("down", "--var-dir", str(var_dir))  # nothing to stop is fine


def test_down_and_status_on_an_empty_directory(service_dir: Path) -> None:
    assert "stack down" in invoke("down", "--var-dir", str(service_dir / "none")).output
    assert "not created" in invoke("status", "--var-dir", str(service_dir / "none")).output


def test_background_process_is_started_checked_and_stopped(service_dir: Path) -> None:
    site = service_dir / "site"
    site.mkdir()
    (site / "health").write_text("ok")
    port = free_port()
    proc = BackgroundProcess("web", service_dir / "var")
    # a shell parent with a child: stopping must reach the whole process group
    argv = ["sh", "-c", f"{sys.executable} -m http.server {port} --bind 127.0.0.1 & wait"]
    proc.start(argv, {"PATH": os.environ["PATH"]}, cwd=site)
    wait_for_http(f"http://127.0.0.1:{port}/health", proc, timeout=20)
    assert proc.is_running()
    assert BackgroundProcess("web", service_dir / "var").pid() == proc.pid()
    assert BackgroundProcess("web", service_dir / "elsewhere").pid() is None

    assert proc.stop()
    assert not proc.is_running() and not proc.pid_file.exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    assert not proc.stop()


def test_a_process_dying_at_start_up_is_reported_with_its_log(service_dir: Path) -> None:
    proc = BackgroundProcess("broken", service_dir / "var")
    proc.start(["sh", "-c", "echo 'cannot bind: boom' >&2; exit 3"], {"PATH": os.environ["PATH"]},
               cwd=service_dir)
    with pytest.raises(DevstackError, match="boom"):
        wait_for_http(f"http://127.0.0.1:{free_port()}/health", proc, timeout=20)


@pytest.mark.slow
def test_up_with_app_serves_health_then_down_stops_everything(var_dir: Path) -> None:
    """The `make demo` path without the demo data: services, migrations, server, worker, MQTT
    bridge and a simulated handset."""
    invoke("up", "--var-dir", str(var_dir), "--pg-port", "0", "--mqtt-port", "0")
    env = {**os.environ, **read_env_file(var_dir / "stack.env")}
    crewline = Path(sys.executable).with_name("crewline")
    subprocess.run([str(crewline), "db", "upgrade"], env=env, cwd=var_dir.parent, check=True,
                   capture_output=True, timeout=120)
    port = free_port()
    out = invoke("up", "--var-dir", str(var_dir), "--app", "--port", str(port),
                 "--simulate", "1").output
    assert f"http://127.0.0.1:{port}" in out and "1 simulated handsets" in out
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
        assert resp.status == 200
    server, worker = BackgroundProcess("server", var_dir), BackgroundProcess("worker", var_dir)
    bridge, simulator = (BackgroundProcess("bridge", var_dir),
                         BackgroundProcess("simulator", var_dir))
    assert server.is_running() and worker.is_running() and bridge.is_running()
    assert simulator.is_running()
    deadline = time.monotonic() + 30  # the simulated handset registered itself and came online
    while time.monotonic() < deadline and "simulating 1 crews" not in simulator.log_file.read_text():
        time.sleep(0.5)
    assert "simulating 1 crews" in simulator.log_file.read_text()
    with psycopg.connect(env["CREWLINE_DATABASE_URL"].replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT count(*) FROM devices WHERE revoked_at IS NULL").fetchone()[0] == 1
    first = server.pid()

    sim_first = simulator.pid()
    invoke("up", "--var-dir", str(var_dir), "--app", "--port", str(port), "--simulate", "1")
    assert server.pid() not in (None, first)  # a re-run restarts them
    assert simulator.pid() not in (None, sim_first)

    down = invoke("down", "--var-dir", str(var_dir)).output
    for name in ("simulator", "bridge", "server", "worker", "mosquitto", "postgresql"):
        assert f"stopped {name}" in down
    assert not server.is_running() and not worker.is_running() and not bridge.is_running()
