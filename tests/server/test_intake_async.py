"""The intake's two drivers (server.core.sqlplan) and the async pool behind POST /tickets:
same rows either way, all or nothing, concurrent, and it survives dropped connections."""

import asyncio
import threading

import anyio
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from server.core import sqlplan
from server.core.db import AsyncDatabase
from server.core.sqlplan import Step

from .conftest import HELSINKI

_ECHO = text("SELECT CAST(:n AS int) + 1 AS n, 'a%b' AS pct, "
             "CAST(:word AS text) LIKE 'x%' AS starts_x")
_NOTHING = text("SELECT 1 AS one WHERE false")
_NO_ROWS = text("CREATE TEMP TABLE IF NOT EXISTS plan_t (x int)")


def _plan(start: int):
    first = yield Step(_ECHO, {"n": start, "word": "x-ray"})
    second = yield Step(_ECHO, {"n": first.n, "word": "ray"})
    none = yield Step(_NOTHING, {})
    ddl = yield Step(_NO_ROWS, {}, fetch=False)
    return first.n, second.n, first.pct, first.starts_x, second.starts_x, none, ddl


def test_a_plan_gives_the_same_result_on_both_drivers(engine, settings):
    with Session(engine) as session:
        on_session = sqlplan.run(session, _plan(1))

    async def on_async():
        db = AsyncDatabase(settings, pool_size=1)
        try:
            async with db.transaction() as conn:
                return await sqlplan.run_async(conn, _plan(1))
        finally:
            await db.close()

    assert on_session == asyncio.run(on_async()) == (2, 3, "a%b", True, False, None, None)


def _counts(engine):
    with engine.connect() as conn:
        return tuple(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                     for t in ("tickets", "ticket_events", "ticket_sla_clocks", "sms_messages"))


@pytest.fixture
def failing_sms(engine):
    """The SMS outbox refuses inserts: the last write of the intake fails after the ticket,
    its event and clocks were written in the same transaction."""
    with engine.begin() as conn:
        conn.execute(text("""
            CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'outbox refused (test)'; END $$;
            CREATE TRIGGER test_refuse BEFORE INSERT ON sms_messages
              FOR EACH ROW EXECUTE FUNCTION test_refuse();"""))
    yield
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER test_refuse ON sms_messages; DROP FUNCTION test_refuse()"))


def test_both_runners_refuse_to_fetch_from_a_statement_without_rows(engine, settings):
    def plan():
        yield Step(_NO_ROWS, {})  # fetch=True by default

    with Session(engine) as session, pytest.raises(Exception, match="not return rows"):
        sqlplan.run(session, plan())

    async def on_async():
        db = AsyncDatabase(settings, pool_size=1)
        try:
            async with db.transaction() as conn:
                await sqlplan.run_async(conn, plan())
        finally:
            await db.close()

    with pytest.raises(psycopg.ProgrammingError):
        asyncio.run(on_async())


def test_a_failure_late_in_the_intake_writes_nothing(api, engine, failing_sms):
    before = _counts(engine)
    r = api.post("agent", "/api/v1/tickets", json={
        "category": "repair", "location": HELSINKI, "description": "漏水",
        "reporter_phone": "13800138000"})
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert _counts(engine) == before
    # the pool's connection was rolled back and is fine for the next request
    r = api.post("agent", "/api/v1/tickets", json={
        "category": "repair", "location": HELSINKI, "description": "漏水"})  # no phone, no SMS
    assert r.status_code == 201, r.text
    assert _counts(engine)[0] == before[0] + 1


def test_concurrent_intake_writes_every_ticket_once(api, engine):
    n = 24
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def post(i):
        barrier.wait()
        results[i] = api.post("agent", "/api/v1/tickets", json={
            "category": "repair", "description": f"concurrent {i}",
            "location": {"lon": 24.90 + i * 0.01, "lat": 60.17},
            "reporter_phone": f"139{i:08d}"})

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [201] * n
    ids = sorted(r.json()["ticket"]["id"] for r in results)
    assert len(set(ids)) == n
    with engine.connect() as conn:
        rows = conn.execute(text("""
            SELECT t.id, (SELECT count(*) FROM ticket_events e WHERE e.ticket_id = t.id),
                   (SELECT count(*) FROM ticket_sla_clocks c WHERE c.ticket_id = t.id),
                   (SELECT count(*) FROM sms_messages m WHERE m.ticket_id = t.id)
            FROM tickets t WHERE t.description LIKE 'concurrent %' ORDER BY t.id""")).all()
    assert [r[0] for r in rows] == ids
    assert {(r[1], r[2], r[3]) for r in rows} == {(1, 3, 1)}


def test_intake_survives_its_connections_being_cut(app, api, engine, settings):
    app.state.async_db = AsyncDatabase(settings, pool_size=2, ping_after_idle_s=0)
    body = {"category": "repair", "location": HELSINKI, "description": "after restart"}
    assert api.post("agent", "/api/v1/tickets", json=body).status_code == 201
    with psycopg.connect(settings.libpq_url, autocommit=True) as conn:
        cut = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE application_name = 'crewline' AND pid <> pg_backend_pid() "
                           "AND backend_type = 'client backend'").fetchone()[0]
    assert cut >= 1
    r = api.post("agent", "/api/v1/tickets", json=body)
    assert r.status_code == 201, r.text


def test_no_free_connection_is_a_503_not_a_hang(app, api, client, settings):
    app.state.async_db = db = AsyncDatabase(settings, pool_size=1, timeout_s=0.3)
    state = {}

    async def hold():
        state["release"] = anyio.Event()
        async with db.transaction():
            state["held"] = True
            await state["release"].wait()

    client.portal.start_task_soon(hold)  # takes the pool's only connection and keeps it
    for _ in range(200):
        if state.get("held"):
            break
        client.portal.call(anyio.sleep, 0.05)
    assert state.get("held")
    try:
        r = api.post("agent", "/api/v1/tickets", json={
            "category": "repair", "location": HELSINKI, "description": "busy"})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "service_busy" and r.headers["Retry-After"]
    finally:
        client.portal.call(state["release"].set)
