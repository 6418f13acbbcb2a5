"""Shared fixtures for the handset-link tests: a real private Mosquitto 2 and an app wired to it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from server.devstack.base import DevstackError, free_port
from server.devstack.mosquitto import MosquittoBroker
from tests.infra.conftest import MqttClient

__all__ = ["MqttClient", "app", "broker", "mqtt_settings", "wait_for"]


@pytest.fixture(scope="module")
def broker():
    root = Path(tempfile.mkdtemp(prefix="crewline-devices-"))
    root.chmod(0o755)
    try:
        b = MosquittoBroker(root / "mqtt", port=free_port())
    except DevstackError as exc:
        shutil.rmtree(root, ignore_errors=True)
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    b.start()
    b.clients = []  # type: ignore[attr-defined]
    try:
        yield b
    finally:
        for c in b.clients:  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):
                c.close()
        b.destroy()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mqtt_settings(settings, broker):
    return settings.model_copy(update={"mqtt_auth_dir": str(broker.root),
                                       "mqtt_url": broker.url()})


@pytest.fixture
def app(mqtt_settings, clock):
    """Overrides tests/server/conftest.py's ``app`` (and so ``client`` and ``api``)."""
    from server.app import create_app

    application = create_app(mqtt_settings, clock=clock)
    yield application
    application.state.engine.dispose()


def connect(broker: MosquittoBroker, username: str | None, password: str | None,
            client_id: str | None = None, **kw) -> tuple[MqttClient, object]:
    c = MqttClient(broker.bound_port, username, password, client_id)
    broker.clients.append(c)  # type: ignore[attr-defined]
    return c, c.connect(**kw)


def wait_for(predicate, timeout: float = 10, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
