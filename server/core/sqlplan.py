"""Database work written once, run on either driver.

Most of Crewline runs on SQLAlchemy sessions in FastAPI's thread pool. The ticket intake is the
one path where that costs more than the work: measured on two cores, the thread hand-off and the
ORM session's execution path took about 40 % of the server's CPU per ticket (docs/benchmarks.md,
``crewline bench intake``). So its SQL is written as a *plan*: a generator that yields
:class:`Step` s (a SQLAlchemy ``text()`` statement and its parameters), receives each step's first
row (attribute access, like SQLAlchemy's ``Row``; ``None`` when there is none) and returns its
result. The plan holds every rule; the runners only move rows:

* :func:`run` executes it on a SQLAlchemy ``Session`` — in the caller's transaction, for jobs,
  the CLI, the demo loader and tests;
* :func:`run_async` executes it on a psycopg ``AsyncConnection`` on the event loop, with the same
  statements compiled once to psycopg's parameter style: in the connection's transaction, or —
  for a plan whose writes are one statement, like the intake — in autocommit, one round trip
  per step and no BEGIN/COMMIT (:meth:`server.core.db.AsyncDatabase.connection`).

Plans compose with ``yield from`` (the intake takes its ticket id from
:mod:`server.tickets.ids`, and builds its one statement from fragments of the notification and
outage domains). A plan must not do I/O other than through its steps. A step marked
``recover=True`` may fail without spoiling the rest: its error is thrown into the plan (which
may catch it and go on, e.g. retry with fresh data), the runner having undone only that step.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from psycopg import ProgrammingError
from psycopg.pq import TransactionStatus
from sqlalchemy.dialects.postgresql import psycopg as _psycopg_dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a plan. ``fetch=True`` (a statement that returns rows): the plan receives
    its first row or ``None``; both runners refuse it on a statement without a result (DDL, an
    UPDATE without RETURNING). ``fetch=False``: the plan does not need its result (it receives
    ``None``), so the async runner may send it together with what follows (pipeline mode) and
    learn of an error at the next synchronisation point, at the latest the commit.

    ``writes=False`` declares a step that changes nothing that a rollback would undo (a read, or
    ``nextval``): :func:`run_async` in autocommit accepts any number of those but only one
    writing step, so that a plan run without a transaction is still all or nothing.
    ``recover=True``: if the statement fails, the runner undoes it alone (a savepoint inside a
    transaction; nothing to undo in autocommit) and throws the error into the plan, which may
    catch it and go on; it is waited for (``fetch`` applies as usual)."""

    statement: TextClause
    params: dict[str, Any]  # result columns must have unique names (rows are named tuples)
    fetch: bool = True
    writes: bool = True
    recover: bool = False


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a database error from either runner (SQLAlchemy wraps psycopg's)."""
    return getattr(getattr(error, "orig", error), "sqlstate", None)


Plan = Generator[Step, Any, T]

_DIALECT = _psycopg_dialect.dialect()
# statement object id -> (statement, psycopg SQL); the statement is kept so its id stays unique
_COMPILED: dict[int, tuple[TextClause, str]] = {}


def psycopg_sql(statement: TextClause) -> str:
    """``statement`` with ``%(name)s`` placeholders (and ``%`` escaped), compiled once."""
    hit = _COMPILED.get(id(statement))
    if hit is None or hit[0] is not statement:
        hit = _COMPILED[id(statement)] = (statement, str(statement.compile(dialect=_DIALECT)))
    return hit[1]


def run(session: Session, plan: Plan[T]) -> T:
    """Run ``plan`` in the session's transaction (the caller commits). A ``recover`` step runs
    under a savepoint, so that the plan can go on after its failure."""
    row = None
    error: BaseException | None = None
    while True:
        try:
            step = plan.send(row) if error is None else plan.throw(error)
        except StopIteration as done:
            return done.value
        row = error = None
        try:
            with session.begin_nested() if step.recover else nullcontext():
                result = session.execute(step.statement, step.params)
                row = result.first() if step.fetch else None  # raises for a statement without rows
        except Exception as e:
            if not step.recover:
                raise
            error = e  # undone by its savepoint: the plan decides


async def run_async(conn, plan: Plan[T]) -> T:
    """Run ``plan`` on a psycopg ``AsyncConnection`` whose rows are named tuples.

    In a transaction (:meth:`server.core.db.AsyncDatabase.transaction` opens one, in pipeline
    mode) a step whose row is fetched costs one round trip, the BEGIN before it riding along;
    steps with ``fetch=False`` travel with the next synchronisation (the next fetch, or the
    COMMIT); a ``recover`` step runs under a savepoint.

    In autocommit (:meth:`~server.core.db.AsyncDatabase.connection`) every step is its own
    statement and round trip, atomic by itself; so the plan may have only one step that writes
    (``Step.writes``): a second one is refused (``psycopg.ProgrammingError``) before it is sent.
    A failed ``recover`` step wrote nothing and is thrown into the plan."""
    row = None
    error: BaseException | None = None
    autocommit = conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE
    wrote = False
    while True:
        try:
            step = plan.send(row) if error is None else plan.throw(error)
        except StopIteration as done:
            return done.value
        row = error = None
        if autocommit and step.writes and wrote:
            plan.close()
            raise ProgrammingError("a plan run in autocommit has more than one writing step; "
                                   "run it in a transaction")
        # in a transaction a recover step gets a savepoint, so that only it is undone
        savepoint = conn.transaction() if step.recover and not autocommit else nullcontext()
        try:
            async with savepoint:
                cur = await conn.execute(psycopg_sql(step.statement), step.params)
                row = await cur.fetchone() if step.fetch else None
        except Exception as e:
            if not step.recover:
                raise
            error = e  # the plan decides
            continue
        wrote = wrote or step.writes
