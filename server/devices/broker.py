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


class MosquittoFilesAdmin:
    """Mosquitto's password + ACL files, serialised across threads and processes by a file lock."""

    _thread_lock = threading.Lock()

    def __init__(self, auth_dir: str | Path) -> None:
        from server.devstack.mosquitto import MosquittoBroker

        self.root = Path(auth_dir)
        self.broker = MosquittoBroker(self.root)

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
