"""Writing device credentials to the MQTT broker.

:class:`BrokerAdmin` is the interface the device service needs. :class:`MosquittoFilesAdmin` is the
implementation for Mosquitto 2: the password file and ACL file in ``CREWLINE_MQTT_AUTH_DIR`` (the
same directory layout as :class:`server.devstack.mosquitto.MosquittoBroker`: ``passwd``, ``acl``,
``mosquitto.pid``), then SIGHUP so the broker reloads them. Device access itself comes from the
ACL's ``pattern`` lines (``%u`` = the device id), so a device needs no ACL lines of its own;
removal also drops any per-user ACL lines.
"""

from __future__ import annotations

import fcntl
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from server.core.errors import CrewlineError


class BrokerUnavailable(CrewlineError):
    status_code = 503
    code = "broker_unavailable"


class BrokerAdmin(Protocol):
    def add_device(self, device_id: str, password: str) -> None: ...

    def remove_device(self, device_id: str) -> None: ...

    def disconnect_device(self, device_id: str) -> bool: ...


class MosquittoFilesAdmin:
    """Mosquitto's password + ACL files, serialised across threads and processes by a file lock."""

    _thread_lock = threading.Lock()

    def __init__(self, auth_dir: str | Path, mqtt_url: str | None = None) -> None:
        from server.devstack.mosquitto import MosquittoBroker

        self.root = Path(auth_dir)
        self.broker = MosquittoBroker(self.root)
        self.mqtt_url = mqtt_url

    @contextmanager
    def _locked(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.root / ".crewline-admin.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def add_device(self, device_id: str, password: str) -> None:
        try:
            with self._locked():
                self.broker.add_user(device_id, password)
        except Exception as exc:  # DevstackError, OSError: the broker's files are not writable
            raise BrokerUnavailable(f"could not write the broker's password file: {exc}") from exc

    def remove_device(self, device_id: str) -> None:
        try:
            with self._locked():
                if self._has_user(device_id):
                    self.broker.remove_user(device_id)
        except Exception as exc:
            raise BrokerUnavailable(f"could not update the broker's password file: {exc}") from exc

    def _has_user(self, device_id: str) -> bool:
        try:
            lines = self.broker.password_file.read_text().splitlines()
        except FileNotFoundError:
            return False
        return any(line.split(":", 1)[0] == device_id for line in lines)

    def has_device(self, device_id: str) -> bool:
        with self._locked():
            return self._has_user(device_id)

    def disconnect_device(self, device_id: str, timeout: float = 5.0) -> bool:
        """Cut a revoked device's live session now: connect with the server account and the
        device's client id. The broker closes the older connection with that id (session
        takeover), and clean start + session expiry 0 discard its stored session and queued
        downlink. (Mosquitto 2.0 also drops a client whose password-file entry disappeared when
        it reloads on SIGHUP, but SIGHUP is asynchronous; this is the synchronous guarantee.)
        Returns whether the broker confirmed the takeover connection."""
        if not self.mqtt_url:
            return False
        return kick(self.mqtt_url, device_id, timeout)


def kick(mqtt_url: str, client_id: str, timeout: float = 5.0) -> bool:
    """Take over ``client_id`` on the broker with the server account and leave at once."""
    import queue

    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from server.devices.bridge import MqttTarget

    target = MqttTarget.parse(mqtt_url)
    acks: queue.Queue = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if target.username:
        c.username_pw_set(target.username, target.password)
    c.on_connect = lambda client, userdata, flags, rc, props: acks.put(rc)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    try:
        c.connect(target.host, target.port, clean_start=True, properties=props)
    except OSError as exc:
        raise BrokerUnavailable(f"could not reach the broker to disconnect {client_id}: {exc}"
                                ) from exc
    c.loop_start()
    try:
        rc = acks.get(timeout=timeout)
    except queue.Empty:
        rc = None
    finally:
        c.disconnect()
        c.loop_stop()
    return rc is not None and not rc.is_failure
