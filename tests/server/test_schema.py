"""The schema comes only from Alembic, and the models agree with it."""

import subprocess
import sys
from pathlib import Path

import psycopg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from server.core.migrate import (
    alembic_config,
    current,
    heads,
    include_name,
    include_object,
    upgrade,
)
from server.models import Base

ROOT = Path(__file__).resolve().parents[2]


def test_models_match_the_migrations(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": include_object,
                                                    "include_name": include_name})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_upgrade_downgrade_upgrade_on_a_fresh_database(pg_url):
    url = pg_url.rsplit("/", 1)[0] + "/crewline_migrations"
    admin = pg_url.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS crewline_migrations WITH (FORCE)")
        conn.execute("CREATE DATABASE crewline_migrations")
    upgrade(url)
    assert current(url) == heads()
    command.downgrade(alembic_config(url), "base")
    assert current(url) == set()
    eng = create_engine(url)
    with eng.connect() as conn:
        left = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                 "AND tablename NOT IN ('spatial_ref_sys', 'alembic_version')")
                            ).scalars().all()
    eng.dispose()
    assert left == []
    upgrade(url)
    assert current(url) == heads()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE crewline_migrations WITH (FORCE)")


def test_geometry_columns_are_wgs84(engine):
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT f_table_name, f_geometry_column, srid, type "
                                 "FROM geometry_columns ORDER BY 1")).all()
    # every domain branch adds its own geometry columns; all of them must be WGS84
    assert {r.srid for r in rows} == {4326}
    assert {("service_points", "geom", 4326, "POINT"),
            ("tickets", "location", 4326, "POINT")} <= {tuple(r) for r in rows}


def test_pure_libraries_keep_their_import_contracts():
    proc = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" not in proc.stdout.lower() or "0 broken" in proc.stdout.lower()
