import subprocess
import sys
import time
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from server.settings import DEVELOPMENT_SECRET, Settings
from tests.support import cli_env

from .conftest import PASSWORD


@pytest.mark.parametrize("secret", ["", DEVELOPMENT_SECRET, "short-secret"])
def test_production_refuses_default_or_weak_secret(secret):
    with pytest.raises(ValidationError, match="CREWLINE_SECRET_KEY"):
        Settings(env="production", secret_key=secret, _env_file=None)


def test_production_accepts_a_real_secret_and_development_has_a_default():
    assert Settings(env="production", secret_key="s" * 48, _env_file=None,  # tag keys: test_tags
                    tag_master_keys={1: "8f" * 16}).env == "production"
    assert Settings(env="development", _env_file=None).secret_key.get_secret_value()


def test_serve_refuses_to_start_in_production_without_secret(tmp_path):
    env = cli_env(CREWLINE_ENV="production")
    proc = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--port", "1"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "CREWLINE_SECRET_KEY" in proc.stderr


def test_login_issues_a_token_and_me_answers(api):
    r = api.get("dispatcher", "/api/v1/auth/me")
    assert r.status_code == 200
    assert r.json()["username"] == "dispatcher" and r.json()["role"] == "dispatcher"


@pytest.mark.parametrize("username,password", [("agent", "wrong-password"), ("nobody", PASSWORD)])
def test_bad_credentials_are_401_json(api, username, password):
    r = api.client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "bad_credentials"


def test_login_form_missing_field_is_422_naming_it(client):
    r = client.post("/api/v1/auth/token", data={"username": "agent"})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "password"


def test_passwords_are_stored_as_argon2id(api, engine):
    with engine.connect() as conn:
        hashes = conn.execute(text("SELECT password_hash FROM users")).scalars().all()
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert PASSWORD not in "".join(hashes)


def test_token_expires_by_the_injected_clock(api, clock, settings):
    assert api.get("agent", "/api/v1/auth/me").status_code == 200
    clock.advance(timedelta(minutes=settings.access_token_minutes + 1))
    r = api.get("agent", "/api/v1/auth/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"


def test_tampered_or_missing_token_is_rejected(api):
    token = api.tokens["agent"]
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    r = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    r = api.client.get("/api/v1/auth/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"
    assert r.headers["www-authenticate"] == "Bearer"


def test_disabled_user_is_locked_out_immediately(api):
    r = api.patch("admin", f"/api/v1/users/{api.user_ids['agent']}", json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False
    r = api.get("agent", "/api/v1/auth/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "inactive_user"
    r = api.client.post("/api/v1/auth/token", data={"username": "agent", "password": PASSWORD})
    assert r.status_code == 401


def test_admin_creates_users_and_duplicates_conflict(api):
    body = {"username": "agent7", "password": "another-long-pass", "role": "agent"}
    assert api.post("admin", "/api/v1/users", json=body).status_code == 201
    r = api.post("admin", "/api/v1/users", json=body)
    assert r.status_code == 409 and r.json()["error"]["code"] == "user_exists"
    r = api.post("admin", "/api/v1/users", json={**body, "username": "x", "role": "pilot"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "role"


def test_cli_creates_the_first_admin(settings, engine, tmp_path):
    env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="test")
    cmd = [sys.executable, "-m", "server.cli", "users", "create", "root-admin", "--role", "admin",
           "--password-stdin"]
    proc = subprocess.run(cmd, input="a-very-good-password\n", capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT role FROM users WHERE username = 'root-admin'")
                            ).scalar_one() == "admin"
    again = subprocess.run(cmd, input="a-very-good-password\n", capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=60)
    assert again.returncode == 1 and "already exists" in again.stderr
    short = subprocess.run([*cmd[:5], "x2", *cmd[6:]], input="short\n", capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=60)
    assert short.returncode == 1 and "at least 8" in short.stderr


def test_unknown_route_is_json_404(client):
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_health_needs_no_login(client):
    assert client.get("/health").json()["status"] == "ok"


def test_pool_survives_connections_cut_by_the_server(settings) -> None:
    """A database restart or failover cuts pooled connections; the next request must not fail."""
    from sqlalchemy import create_engine
    from sqlalchemy import text as sql
    from sqlalchemy.pool import NullPool

    from server.core.db import make_engine

    eng = make_engine(settings, pool_size=2, ping_after_idle_s=0.0)
    try:
        with eng.connect() as conn:
            pid = conn.execute(sql("SELECT pg_backend_pid()")).scalar_one()
        admin = create_engine(settings.database_url, poolclass=NullPool)
        with admin.connect() as admin_conn:  # outside the pool, the "restart" cuts it
            assert admin_conn.execute(sql("SELECT pg_terminate_backend(:pid)"),
                                      {"pid": pid}).scalar_one()
        admin.dispose()
        for _ in range(3):  # whichever pooled connection comes back, it works
            with eng.connect() as conn:
                assert conn.execute(sql("SELECT 1")).scalar_one() == 1
                assert conn.execute(sql("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        eng.dispose()


def test_pool_pings_only_connections_that_sat_idle(settings, monkeypatch) -> None:
    """A connection used a moment ago is not pinged (no extra round trip per request); one idle
    for longer than the threshold is."""
    from sqlalchemy import text as sql

    from server.core import db

    pings = []
    real_ping = db._ping
    monkeypatch.setattr(db, "_ping", lambda c: (pings.append(c), real_ping(c)))
    eng = db.make_engine(settings, pool_size=1, ping_after_idle_s=0.3)
    try:
        with eng.connect() as conn:  # a new connection: nothing to ping
            conn.execute(sql("SELECT 1"))
        with eng.connect() as conn:  # used a moment ago: no ping
            conn.execute(sql("SELECT 2"))
        assert pings == []
        time.sleep(0.5)
        with eng.connect() as conn:  # idle past the threshold: pinged first
            assert conn.execute(sql("SELECT 3")).scalar_one() == 3
        assert len(pings) == 1
    finally:
        eng.dispose()
