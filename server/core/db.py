"""Engine and session factory (and the async pool of the one hot path). Services never commit;
the request, task or CLI command does."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
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


class AsyncDatabase:
    """psycopg's async connection pool, for the hot path that runs on the event loop instead of
    the thread pool (ticket intake, see :mod:`server.core.sqlplan`). Rows are named tuples;
    connections are in autocommit, :meth:`transaction` opens a transaction explicitly.

    Opened on first use (inside the server's event loop; an app that never takes a ticket holds
    no extra connections), closed by the app's lifespan. Like the sync engine, a connection idle
    for more than ``ping_after_idle_s`` is checked with a round trip before use; a broken one is
    replaced by the pool. A request that waits longer than ``timeout_s`` for a connection gets
    psycopg_pool's PoolTimeout (HTTP 503 ``service_busy``)."""

    def __init__(self, settings: Settings, *, pool_size: int | None = None,
                 ping_after_idle_s: float = PING_AFTER_IDLE_S, timeout_s: float = 30.0) -> None:
        self._conninfo = settings.libpq_url
        self._timeout = timeout_s
        self._size = pool_size or settings.db_pool_size
        self._ping_after = ping_after_idle_s
        self._pool: AsyncConnectionPool | None = None
        self._opening: asyncio.Lock | None = None
        self._last_used: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    async def _check(self, conn) -> None:
        if time.monotonic() - self._last_used.get(conn, 0.0) > self._ping_after:
            await AsyncConnectionPool.check_connection(conn)  # raises: the pool replaces it

    async def _open(self) -> AsyncConnectionPool:
        self._opening = self._opening or asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                pool = AsyncConnectionPool(
                    self._conninfo, min_size=min(4, self._size), max_size=self._size,
                    kwargs={"row_factory": namedtuple_row, "application_name": "crewline",
                            "autocommit": True},
                    check=self._check, timeout=self._timeout, open=False,
                    name="crewline-async")
                await pool.open()
                self._pool = pool
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator:
        """A pooled connection in autocommit, no pipeline: each statement is its own transaction
        and one round trip (for a plan whose writes are one statement, see
        :func:`server.core.sqlplan.run_async`)."""
        pool = self._pool or await self._open()
        async with pool.connection() as conn:
            try:
                yield conn
            finally:
                self._last_used[conn] = time.monotonic()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator:
        """A pooled connection in one transaction, in pipeline mode: committed when the block
        ends, rolled back when it (or a statement sent without waiting) fails."""
        pool = self._pool or await self._open()
        async with pool.connection() as conn:
            try:
                # pipeline mode: BEGIN goes with the first statement, statements whose results
                # nobody waits for go with the COMMIT (see sqlplan.Step.fetch)
                async with conn.pipeline(), conn.transaction():
                    yield conn
            finally:
                self._last_used[conn] = time.monotonic()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
