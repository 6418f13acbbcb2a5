"""Fixtures for the infrastructure tests: real PostgreSQL and Mosquitto binaries, tmp dirs.

A missing binary skips a test on a developer's machine but fails it in CI (CI=true), where
`make test` has installed every OS package first: CI never passes by skipping.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def require_binary(name: str, *extra_dirs: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=":".join(extra_dirs or ("/usr/sbin",)))
    if path:
        return path
    message = f"{name} not installed (scripts/install-os-deps.sh installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def service_dir() -> Iterator[Path]:
    """A fresh directory whose parents the services' system users can traverse when we are root
    (pytest's tmp_path lives under a 0700 directory)."""
    root = Path(tempfile.mkdtemp(prefix="crewline-infra-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


class MqttClient:
    """A paho-mqtt 2 client (MQTT v5) whose callbacks land in queues, for step-by-step tests."""

    def __init__(self, port: int, username: str | None, password: str | None,
                 client_id: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.port = port
        self.client_id = client_id or f"t-{uuid.uuid4().hex[:12]}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connacks: queue.Queue = queue.Queue()
        self.subacks: queue.Queue = queue.Queue()
        self.messages: queue.Queue = queue.Queue()
        self.client.on_connect = lambda c, u, flags, rc, props: self.connacks.put(rc)
        self.client.on_subscribe = lambda c, u, mid, rcs, props: self.subacks.put(rcs)
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)

    def connect(self, *, clean_start: bool = True, session_expiry: int = 0):
        """Connect and return the CONNACK reason code (a failure stops the network loop)."""
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry
        self.client.connect("127.0.0.1", self.port, clean_start=clean_start, properties=props)
        self.client.loop_start()
        rc = self.connacks.get(timeout=10)
        if rc.is_failure:
            self.close()
        return rc

    def subscribe(self, topic: str, qos: int = 1):
        self.client.subscribe(topic, qos=qos)
        return self.subacks.get(timeout=10)[0]

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=10)

    def next_message(self, timeout: float = 5):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
