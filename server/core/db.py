"""Engine and session factory. Services never commit; the request, task or CLI command does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from server.settings import Settings


def make_engine(settings: Settings, *, pool_size: int | None = None) -> Engine:
    size = pool_size or settings.db_pool_size
    return create_engine(
        settings.database_url,
        pool_size=size,
        max_overflow=size // 2,
        pool_pre_ping=True,
        connect_args={"application_name": "crewline"},
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
