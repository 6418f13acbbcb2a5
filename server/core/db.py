"""Engine and session factory. Services never commit; the request, task or CLI command does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from server.settings import Settings

# A pooled connection idle for longer than this is checked with a round trip before use.
PING_AFTER_IDLE_S = 5.0


def make_engine(settings: Settings, *, pool_size: int | None = None,
                ping_after_idle_s: float = PING_AFTER_IDLE_S) -> Engine:
    size = pool_size or settings.db_pool_size
    engine = create_engine(
        settings.database_url,
        pool_size=size,
        max_overflow=size // 2,
        connect_args={"application_name": "crewline"},
    )
    _ping_idle_connections(engine, ping_after_idle_s)
    return engine


def _ping_idle_connections(engine: Engine, after_s: float) -> None:
    """Pessimistic disconnect handling, but only where it can matter.

    SQLAlchemy's ``pool_pre_ping`` pings on *every* checkout: one more round trip per request,
    about a tenth of the ticket-intake throughput (docs/benchmarks.md). A connection that was
    used a moment ago is as good as a ping; one that sat idle may have been cut (a database
    restart, a failover, an idle timeout in between). So: ping on checkout only after
    ``after_s`` idle; a failed ping raises DisconnectionError, on which the pool discards the
    connection and checks out (or opens) another — the documented pessimistic recipe."""

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection, record, proxy) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < after_s:
            return
        try:
            _ping(dbapi_connection)
        except Exception as e:  # the server closed it: the pool retries with a fresh one
            raise exc.DisconnectionError(str(e)) from e


def _ping(dbapi_connection) -> None:
    with dbapi_connection.cursor() as cur:
        cur.execute("SELECT 1")
    dbapi_connection.rollback()  # leave no transaction open behind the pool


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
