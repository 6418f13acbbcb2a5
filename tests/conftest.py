"""Shared fixtures: a real PostgreSQL + PostGIS + pgRouting for the whole session.

The suite starts a private cluster (initdb on a free port in a temporary directory) unless
CREWLINE_TEST_DATABASE_URL names a database to use instead (it must have PostGIS available and
will be migrated; its tables are truncated between tests).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL of an empty, migrated test database."""
    from server.core.migrate import upgrade

    url = os.environ.get("CREWLINE_TEST_DATABASE_URL")
    if url:
        upgrade(url)
        yield url
        return
    from server.devstack import PostgresCluster

    root = tempfile.mkdtemp(prefix="crewline-test-pg-")
    cluster = PostgresCluster(root)
    try:
        cluster.start()
        url = cluster.create_database("crewline_test")
        upgrade(url)
        yield url
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
