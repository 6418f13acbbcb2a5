"""deploy/mosquitto/run.sh (the compose `mqtt` entrypoint) against Debian's Mosquitto: it creates
the server user, and reloads the broker when Crewline rewrites the shared password/ACL files."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from server.devstack.base import free_port
from tests.infra.conftest import REPO_ROOT, MqttClient, require_binary

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="run.sh hands files to other users")


def wait_for(predicate, timeout: float = 10, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_sh_initialises_and_reloads_auth(service_dir: Path) -> None:
    require_binary("mosquitto")
    passwd_bin = require_binary("mosquitto_passwd")
    port = free_port()
    home, shared = service_dir / "mosquitto", service_dir / "mqtt-auth"
    (home / "config").mkdir(parents=True)
    conf = (REPO_ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    conf = conf.replace("/mosquitto/", f"{home}/").replace("listener 1883", f"listener {port}")
    (home / "config" / "mosquitto.conf").write_text(conf)
    env = {
        "PATH": "/usr/sbin:/usr/bin:/bin", "MOSQUITTO_HOME": str(home),
        "CREWLINE_MQTT_AUTH_DIR": str(shared),
        "CREWLINE_ACL_TEMPLATE": str(REPO_ROOT / "deploy/mosquitto/acl.template"),
        "CREWLINE_MQTT_PASSWORD": "server-secret", "CREWLINE_AUTH_POLL_SECONDS": "0.2",
        "CREWLINE_UID": str(os.getuid()),
    }
    with open(service_dir / "run.log", "wb") as log:
        proc = subprocess.Popen(["sh", str(REPO_ROOT / "deploy/mosquitto/run.sh")], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    clients: list[MqttClient] = []

    def connect(user: str, password: str) -> bool:
        c = MqttClient(port, user, password)
        clients.append(c)
        return not c.connect().is_failure

    def accepting() -> bool:
        try:
            return connect("crewline-server", "server-secret")
        except OSError:
            return False

    try:
        wait_for(accepting, what="the broker")
        assert not connect("crewline-server", "wrong")
        assert (shared / "acl").read_text() == (
            REPO_ROOT / "deploy/mosquitto/acl.template").read_text()

        # Crewline provisions a device by rewriting the shared file; the broker picks it up.
        assert not connect("van-9", "pw-9")
        subprocess.run([passwd_bin, "-b", str(shared / "passwd"), "van-9", "pw-9"], check=True)
        wait_for(lambda: connect("van-9", "pw-9"), what="the reload")

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        for c in clients:
            c.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        print((service_dir / "run.log").read_text())
