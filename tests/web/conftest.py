"""Fixtures for the web console: a real `crewline serve` process and headless Chromium.

Chromium is Debian's (`chromium`, scripts/os-packages.txt) driven by Playwright for Python; no
browser is downloaded (`playwright install` is never run). A missing browser skips the browser
tests on a developer's machine but fails them in CI (CI=true), where `make test` installed it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from server.devstack import free_port
from tests.support import cli_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"
PASSWORD = "desk-password-123"
SECRET = "web-test-secret-" + "y" * 40
# own user names: tests/server creates users named after the roles in the same database
USERS = {"agent": ("desk-agent", "en", "Agent Emma"),
         "dispatcher": ("desk-dispatcher", "en", ""),
         "technician": ("desk-technician", "en", ""),
         "manager": ("desk-manager", "zh-CN", "经理 王伟")}


@dataclass
class LiveServer:
    """A `crewline serve` child process on a port of its own."""

    database_url: str
    port: int
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = cli_env(CREWLINE_DATABASE_URL=self.database_url, CREWLINE_ENV="test",
                      CREWLINE_SECRET_KEY=SECRET, CREWLINE_DEFAULT_REGION="CN",
                      CREWLINE_LOG_LEVEL="WARNING")
        with self.log.open("a") as out:
            # cwd outside the repository, so no var/stack.env or .env is read
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port),
                 "--no-access-log"], env=env, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.log.parent, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"crewline serve did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def token(self, role: str) -> dict[str, str]:
        r = httpx.post(self.url + "/api/v1/auth/token",
                       data={"username": USERS[role][0], "password": PASSWORD}, timeout=10)
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def call(self, role: str, method: str, path: str, **kw) -> dict:
        r = httpx.request(method, self.url + path, headers=self.token(role), timeout=10, **kw)
        assert r.status_code < 300, r.text
        return r.json()


@pytest.fixture(scope="session")
def desk_users(pg_url: str) -> dict[str, str]:
    """The web tests' users (created once; the session may run after or before tests/server)."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from server.auth import service
    from server.models import User

    engine = create_engine(pg_url)
    with Session(engine) as session:
        for role, (username, language, full_name) in USERS.items():
            if session.scalar(select(User.id).where(User.username == username)) is None:
                service.create_user(session, username=username, password=PASSWORD, role=role,
                                    language=language, full_name=full_name)
        session.commit()
    engine.dispose()
    return {role: u[0] for role, u in USERS.items()}


def _server(pg_url: str) -> LiveServer:
    logdir = Path(tempfile.mkdtemp(prefix="crewline-web-"))
    return LiveServer(pg_url, free_port(), logdir / "serve.log")


@pytest.fixture(scope="session")
def live_server(pg_url: str, desk_users) -> Iterator[LiveServer]:
    server = _server(pg_url)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.log.parent, ignore_errors=True)


@pytest.fixture
def own_server(pg_url: str, desk_users) -> Iterator[LiveServer]:
    """A server of the test's own, which it may stop and start again."""
    server = _server(pg_url)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.log.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} not installed (scripts/install-os-deps.sh installs chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser):
    """Pages in fresh browser contexts (own storage), closed after the test."""
    contexts = []

    def make(locale: str = "en-US"):
        ctx = browser.new_context(locale=locale, viewport={"width": 1440, "height": 1000},
                                  timezone_id="Asia/Shanghai")
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors  # type: ignore[attr-defined]
        return page

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def customer(live_server) -> dict:
    """A customer with a unique mobile number and one service point in central Helsinki."""
    suffix = uuid.uuid4().int % 10**8
    mobile = f"139{suffix:08d}"
    # a spot of our own so other tests' tickets are never within the duplicate radius
    lon = 24.90 + (suffix % 1000) * 0.0001
    lat = 60.16 + (suffix // 1000 % 100) * 0.0001
    body = live_server.call("agent", "POST", "/api/v1/customers", json={
        "account_no": f"W-{suffix:08d}", "name": "王芳", "phones": [mobile],
        "preferred_language": "zh-CN", "sms_consent": True,
        "service_points": [{"address": "Aleksanterinkatu 52, Helsinki",
                            "location": {"lon": lon, "lat": lat}}]})
    body["national"] = f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}"
    return body


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
