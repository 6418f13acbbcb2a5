"""The real stack for the handset app's end-to-end tests and its benchmark: a private Mosquitto,
`crewline serve` and `crewline bridge` processes on the test database, and the Kivy app itself
as a separate process under Xvfb, remote-controlled through its test driver
(mobile_app/app/driver.py)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from server.devstack.base import free_port
from server.devstack.mosquitto import MosquittoBroker
from tests.support import cli_env

ROOT = Path(__file__).resolve().parents[2]
SECRET = "handset-e2e-secret-" + "z" * 40
PASSWORD = "handset-password-123"
SCREENSHOTS = ROOT / "var" / "screenshots" / "handset"


def wait_for(predicate: Callable[[], Any], timeout: float = 20, interval: float = 0.1,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(interval)


def _stop(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class Stack:
    """Broker + API server + bridge, each stoppable on its own."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.dir = Path(tempfile.mkdtemp(prefix="crewline-handset-e2e-"))
        self.dir.chmod(0o755)  # mosquitto runs as its own user and must reach its files
        self.broker = MosquittoBroker(self.dir / "mqtt", port=free_port())
        self.port = free_port()
        self.serve: subprocess.Popen | None = None
        self.bridge: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return cli_env(CREWLINE_DATABASE_URL=self.database_url, CREWLINE_ENV="test",
                       CREWLINE_SECRET_KEY=SECRET, CREWLINE_LOG_LEVEL="WARNING",
                       CREWLINE_MQTT_URL=self.broker.url(),
                       CREWLINE_MQTT_AUTH_DIR=str(self.broker.root))

    def start(self) -> None:
        self.broker.start()
        self.start_server()
        self.start_bridge()

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.dir / f"{name}.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "server.cli", *args], env=self.env(),
                                stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                start_new_session=True)

    def start_server(self) -> None:
        self.serve = self._spawn("serve", "serve", "--port", str(self.port), "--no-access-log")

        def healthy() -> bool:
            if self.serve.poll() is not None:
                raise RuntimeError(f"crewline serve exited:\n{self.log('serve')}")
            try:
                return httpx.get(self.url + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, 0.2, "crewline serve healthy")

    def start_bridge(self) -> None:
        self.bridge = self._spawn("bridge", "bridge")
        wait_for(lambda: "subscribed" in self.log("bridge") or self.bridge.poll() is not None,
                 60, 0.2, "bridge subscribed")
        if self.bridge.poll() is not None:
            raise RuntimeError(f"crewline bridge exited:\n{self.log('bridge')}")

    def log(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        _stop(self.bridge)
        _stop(self.serve)
        self.broker.destroy()
        if not os.environ.get("HANDSET_E2E_KEEP"):  # keep the servers' logs for a post-mortem
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- HTTP as a person --------------------------------------------------------------------------
    def token(self, username: str) -> dict[str, str]:
        r = httpx.post(self.url + "/api/v1/auth/token",
                       data={"username": username, "password": PASSWORD}, timeout=10)
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def call(self, username: str, method: str, path: str, **kw) -> Any:
        r = httpx.request(method, self.url + path, headers=self.token(username), timeout=20, **kw)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()


def make_people(database_url: str) -> dict[str, str]:
    """Fresh users for one test: a technician, a dispatcher, an agent and a manager."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from server.auth import service

    suffix = uuid.uuid4().hex[:8]
    people = {"technician": f"tech-{suffix}", "dispatcher": f"disp-{suffix}",
              "agent": f"agent-{suffix}", "manager": f"mgr-{suffix}"}
    engine = create_engine(database_url)
    with Session(engine) as session:
        for role, name in people.items():
            service.create_user(session, username=name, password=PASSWORD, role=role,
                                language="zh-CN", full_name="张伟" if role == "technician" else "")
        session.commit()
        from sqlalchemy import select

        from server.models import User

        ids = {role: session.scalar(select(User.id).where(User.username == name))
               for role, name in people.items()}
    engine.dispose()
    people.update({f"{role}_id": str(uid) for role, uid in ids.items()})
    return people


class HandsetProcess:
    """`python -m mobile_app` under xvfb-run with a driver port; restartable on the same data."""

    def __init__(self, data_dir: Path, *, reader: str = "none", language: str | None = None,
                 server: str = "", window: str = "720x1280", extra_env: dict | None = None) -> None:
        self.data_dir = data_dir
        self.reader, self.language, self.server, self.window = reader, language, server, window
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.started_at = 0.0

    def start(self) -> None:
        self.port = free_port()
        env = cli_env(CREWLINE_HANDSET_DATA=str(self.data_dir),
                      CREWLINE_HANDSET_DRIVER=str(self.port),
                      CREWLINE_HANDSET_READER=self.reader, CREWLINE_HANDSET_SERVER=self.server,
                      CREWLINE_HANDSET_WINDOW=self.window, KIVY_NO_ARGS="1",
                      KIVY_HOME=str(self.data_dir / "kivy"), KIVY_NO_CONSOLELOG="1",
                      **self.extra_env)
        if self.language:
            env["CREWLINE_HANDSET_LANGUAGE"] = self.language
        w, h = self.window.split("x")
        self.log = (self.data_dir.parent / f"{self.data_dir.name}-app.log").open("ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            ["xvfb-run", "-a", "-s", f"-screen 0 {w}x{h}x24", sys.executable, "-m", "mobile_app"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        self._sock = None
        wait_for(self._connect, 60, 0.05, "the handset app's driver")

    def _connect(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the handset app exited:\n{self.app_log()}")
        try:
            self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        except OSError:
            return False
        self._file = self._sock.makefile("rwb")
        return True

    def app_log(self) -> str:
        path = self.data_dir.parent / f"{self.data_dir.name}-app.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def __call__(self, cmd: str, **args) -> Any:
        self._file.write(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise RuntimeError(f"the handset app closed the driver:\n{self.app_log()}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise AssertionError(f"{cmd} {args}: {answer['error']}")
        return answer["result"]

    def state(self) -> dict[str, Any]:
        return self("state")

    def wait(self, predicate: Callable[[dict], Any], timeout: float = 20, what: str = "") -> dict:
        last: dict = {}

        def check():
            nonlocal last
            last = self.state()
            return last if predicate(last) else None

        try:
            return wait_for(check, timeout, 0.1, what or "handset state")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last state: {last}") from None

    def shot(self, name: str) -> Path:
        return Path(self("screenshot", path=str(SCREENSHOTS / f"{name}.png")))

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self("stop")
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                _stop(self.proc)
        with contextlib.suppress(Exception):
            self._sock.close()
        self.log.close()
        self.proc = None
