"""Shared benchmark plumbing: a separate database, a real server process, percentiles."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from server.core import migrate
from server.devstack import free_port
from server.settings import Settings

BENCH_USER = "bench-agent"
BENCH_PASSWORD = "bench-password-not-secret"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def bench_database(settings: Settings, name: str = "crewline_bench") -> str:
    """Create (once) and migrate a database beside the configured one, so benchmarks never
    touch real or demo data. Returns its SQLAlchemy URL."""
    url = make_url(settings.database_url)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    bench_url = url.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(bench_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    migrate.upgrade(bench_url)
    return bench_url


def ensure_bench_user(libpq_url: str, username: str = BENCH_USER, *, role: str = "agent",
                      full_name: str = "Bench agent", password: str = BENCH_PASSWORD) -> int:
    """The benchmark's login (created once, kept between runs); returns its id."""
    from server.auth.service import hash_password

    with psycopg.connect(libpq_url) as conn:
        conn.execute(
            "INSERT INTO users (username, full_name, password_hash, role, language, is_active) "
            "VALUES (%s, %s, %s, %s, 'en', true) ON CONFLICT (username) DO NOTHING",
            (username, full_name, hash_password(password), role))
        return conn.execute("SELECT id FROM users WHERE username = %s", (username,)).fetchone()[0]


@contextmanager
def running_server(database_url: str, workers: int = 1, pool_size: int = 20):
    """Start `crewline serve` on a free port against ``database_url``; yield its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREWLINE_")}
    env.update(CREWLINE_DATABASE_URL=database_url, CREWLINE_ENV="development",
               CREWLINE_DB_POOL_SIZE=str(pool_size), CREWLINE_LOG_LEVEL="WARNING")
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"crewline-bench-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--workers",
             str(workers), "--no-access-log"], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    keep_log = True  # a failed run keeps the server's log (the error names it); a good one not
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {log}")
            time.sleep(0.2)
        yield base
        keep_log = False
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not keep_log:
            log.unlink(missing_ok=True)


def login(base: str) -> dict[str, str]:
    r = httpx.post(base + "/api/v1/auth/token",
                   data={"username": BENCH_USER, "password": BENCH_PASSWORD}, timeout=10)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
