"""The private PostgreSQL cluster of the demo and the suite, against the real server binaries."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
import pytest

from server.devstack import PostgresCluster, find_pg_bindir
from server.devstack.base import DevstackError, free_port


@pytest.fixture
def cluster(service_dir: Path):
    try:
        find_pg_bindir()
    except DevstackError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    pg = PostgresCluster(service_dir / "pg", port=free_port())
    try:
        yield pg
    finally:
        pg.destroy()


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_cluster_with_postgis_and_pgrouting_survives_a_crash(cluster: PostgresCluster) -> None:
    cluster.start()
    assert cluster.is_running()
    url = cluster.create_database("infra")
    assert cluster.create_database("infra") == url  # idempotent
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        # The cluster runs with synchronous_commit = off (speed); durable commits are asked for.
        conn.execute("SET synchronous_commit = on")
        assert conn.execute("SELECT postgis_lib_version()").fetchone()[0].startswith("3")
        assert conn.execute("SELECT pgr_version()").fetchone()[0]
        conn.execute("CREATE TABLE site (id int PRIMARY KEY, geom geometry(Point, 4326))")
        conn.execute("INSERT INTO site VALUES"
                     " (1, ST_SetSRID(ST_MakePoint(24.9384, 60.1699), 4326)),"
                     " (2, ST_SetSRID(ST_MakePoint(24.9414, 60.1719), 4326))")
        # metres on the geography type, not degrees: about 280 m in central Helsinki
        metres = conn.execute("SELECT ST_Distance(a.geom::geography, b.geom::geography) "
                              "FROM site a, site b WHERE a.id = 1 AND b.id = 2").fetchone()[0]
        assert 250 < metres < 300

    cluster.kill()
    assert not cluster.is_running()
    cluster.start()
    with psycopg.connect(_libpq(cluster.url("infra"))) as conn:
        assert conn.execute("SELECT count(*) FROM site").fetchone()[0] == 2

    cluster.stop()
    assert not cluster.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(_libpq(cluster.url("infra")), connect_timeout=2)


def test_listens_on_loopback_with_password_only(cluster: PostgresCluster) -> None:
    cluster.start()
    port = int(cluster.url().rsplit(":", 1)[1].split("/")[0])
    wrong = f"postgresql://{cluster.user}:wrong@127.0.0.1:{port}/postgres"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5)
    with psycopg.connect(_libpq(cluster.url("postgres"))) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
    assert oct((cluster.root / "cluster.env").stat().st_mode & 0o777) == "0o600"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the postgres user")
def test_root_gets_a_clear_error_for_an_untraversable_parent() -> None:
    private = Path(tempfile.mkdtemp(prefix="crewline-private-"))  # mode 0700
    try:
        with pytest.raises(DevstackError, match="not traversable by the 'postgres' user"):
            PostgresCluster(private / "pg").start()
    finally:
        import shutil

        shutil.rmtree(private, ignore_errors=True)
