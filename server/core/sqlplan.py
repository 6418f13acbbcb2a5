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
  statements compiled once to psycopg's parameter style.

Plans compose with ``yield from`` (the intake yields the notification and outage plans in its
own transaction). A plan must not do I/O other than through its steps.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

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
    learn of an error at the next synchronisation point, at the latest the commit."""

    statement: TextClause
    params: dict[str, Any]  # result columns must have unique names (rows are named tuples)
    fetch: bool = True


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
    """Run ``plan`` in the session's transaction (the caller commits)."""
    row = None
    while True:
        try:
            step = plan.send(row)
        except StopIteration as done:
            return done.value
        result = session.execute(step.statement, step.params)
        row = result.first() if step.fetch else None  # raises for a statement without rows


async def run_async(conn, plan: Plan[T]) -> T:
    """Run ``plan`` on a psycopg ``AsyncConnection`` whose rows are named tuples, in its current
    transaction. In pipeline mode (:class:`server.core.db.AsyncDatabase` opens one) a step whose
    row is fetched costs one round trip, the BEGIN before it riding along; steps with
    ``fetch=False`` travel with the next synchronisation (the next fetch, or the COMMIT)."""
    row = None
    while True:
        try:
            step = plan.send(row)
        except StopIteration as done:
            return done.value
        cur = await conn.execute(psycopg_sql(step.statement), step.params)
        row = await cur.fetchone() if step.fetch else None
