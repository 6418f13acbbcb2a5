"""Run Alembic migrations programmatically (CLI, tests, start-up)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config


def include_object(obj, name, type_, reflected, compare_to):
    """What autogenerate compares: our tables only, not procrastinate's, PostGIS's or pgRouting's."""
    from geoalchemy2 import alembic_helpers

    if type_ == "table" and reflected and compare_to is None:
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def include_name(name, type_, parent_names) -> bool:
    """Reflect only the tables our models declare: the others (procrastinate's, PostGIS's, the
    unlogged ``live_changes`` with its ``xid8`` column SQLAlchemy has no type for) are not ours
    to compare, and reflecting them only produces warnings."""
    if type_ == "table":
        from server.models import Base

        return name in Base.metadata.tables
    return True


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "server:migrations")
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Upgrade to every head: each domain may add its tables on its own branch off 0001."""
    command.upgrade(alembic_config(database_url), revision)


def current(database_url: str) -> set[str]:
    """The revisions the database is at (one per branch head)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


def heads(database_url: str = "postgresql+psycopg://unused") -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
