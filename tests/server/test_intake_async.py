"""The intake's two drivers (server.core.sqlplan) and the async pool behind POST /tickets:
same rows either way, all or nothing, concurrent, and it survives dropped connections."""

import asyncio
import threading

import anyio
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from server.auth.service import Principal
from server.core import sqlplan
from server.core.db import AsyncDatabase
from server.core.sqlplan import Step
from server.models import Role
from server.tickets import service as tickets
from server.tickets.ids import TicketIds
from server.tickets.schemas import TicketIn

from .conftest import HELSINKI
from .outage_support import INSIDE, add_customer, declare, polygon

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


def _refuse_inserts(engine, table: str):
    with engine.begin() as conn:
        conn.execute(text(f"""
            CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{table} refused (test)'; END $$;
            CREATE TRIGGER test_refuse BEFORE INSERT ON {table}
              FOR EACH ROW EXECUTE FUNCTION test_refuse();"""))


def _accept_inserts(engine, table: str):
    with engine.begin() as conn:
        conn.execute(text(f"DROP TRIGGER test_refuse ON {table}; DROP FUNCTION test_refuse()"))


@pytest.fixture
def failing_sms(engine):
    """The SMS outbox refuses inserts: a CTE of the intake's statement fails after the ticket,
    its event and clocks were written by the others."""
    _refuse_inserts(engine, "sms_messages")
    yield
    _accept_inserts(engine, "sms_messages")


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


def test_a_failing_outage_link_writes_nothing(api, engine):
    """The outage CTEs fail (the ticket is inside an active outage): no ticket, no SMS."""
    declare(api, polygon())
    _refuse_inserts(engine, "outage_events")
    try:
        before = _counts(engine)
        r = api.post("agent", "/api/v1/tickets", json={
            "category": "outage_report", "description": "停水",
            "location": {"lon": INSIDE[0], "lat": INSIDE[1]}, "reporter_phone": "13800138000"})
        assert r.status_code == 500, r.text
        assert _counts(engine) == before
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM outage_tickets")).scalar_one() == 0
    finally:
        _accept_inserts(engine, "outage_events")


@pytest.mark.parametrize("block", [32, 5, 1])
def test_concurrent_intake_writes_every_ticket_once(app, api, engine, block):
    """24 intakes at once: with a block of 32 (one fetch, maybe a few when they race), a block
    smaller than the crowd (several fetched concurrently) and no caching."""
    app.state.ticket_ids = TicketIds(block)
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


# -- one statement: same rows as on a session, ids in blocks, cached templates -------------------

def _agent(api) -> Principal:
    return Principal(id=api.user_ids["agent"], username="agent", role=Role.agent)


def _rows(engine, ticket_id: int) -> dict:
    """Everything the intake wrote for a ticket, without ids, its number replaced by N."""
    with engine.connect() as conn:
        def q(sql):
            return [dict(r) for r in conn.execute(text(sql), {"id": ticket_id}).mappings()]
        out = {
            "ticket": q("SELECT category, priority, channel, status, customer_id, "
                        "service_point_id, ST_AsText(location) AS location, address, "
                        "description, reporter_name, reporter_phone, language, created_by, "
                        "created_at, updated_at, sla_level FROM tickets WHERE id = :id"),
            "events": q("SELECT at, actor_id, kind, to_status, data FROM ticket_events "
                        "WHERE ticket_id = :id ORDER BY id"),
            "clocks": q("SELECT clock, cycle, started_at, warn_at, due_at FROM ticket_sla_clocks "
                        "WHERE ticket_id = :id ORDER BY clock"),
            "sms": q("SELECT customer_id, to_e164, language, template, body, encoding, segments, "
                     "urgent, status, error_code, next_attempt_at FROM sms_messages "
                     "WHERE ticket_id = :id"),
            "outage": q("SELECT outage_id, source, linked_at FROM outage_tickets "
                        "WHERE ticket_id = :id"),
            "outage_events": q("SELECT at, kind, data - 'ticket_id' AS data FROM outage_events "
                               "WHERE (data->>'ticket_id')::bigint = :id"),
        }
    return _renumbered(out, f"CL-{ticket_id:07d}")


def _renumbered(value, number: str):
    if isinstance(value, dict):
        return {k: _renumbered(v, number) for k, v in value.items()}
    if isinstance(value, list):
        return [_renumbered(v, number) for v in value]
    return value.replace(number, "CL-N") if isinstance(value, str) else value


@pytest.mark.parametrize("via", ["customer", "reporter"])
def test_the_intake_writes_the_same_rows_on_both_drivers(api, app, engine, clock, via):
    """The HTTP intake (one statement, autocommit, cached template, id from a block) and
    tickets.service.create on a session (fresh id, template read) write the same rows: ticket,
    created event with its duplicates, clocks, received SMS, outage link with both events."""
    declare(api, polygon())
    customer = add_customer(engine, *INSIDE, language="en")
    body = {"category": "outage_report", "priority": "high", "description": "no water at all",
            "channel": "phone"}
    body |= ({"customer_id": customer["id"]} if via == "customer"
             else {"location": {"lon": INSIDE[0], "lat": INSIDE[1]},
                   "reporter_phone": "+358401234567", "language": "en"})
    first = api.post("agent", "/api/v1/tickets", json=body)
    assert first.status_code == 201, first.text
    with Session(engine) as session:
        out, dups = tickets.create(session, TicketIn(**body), _agent(api), clock.now(),
                                   tickets.Policy())
        session.commit()
    http_ticket = first.json()["ticket"]
    assert http_ticket["id"] != out.id
    assert [d.id for d in dups] == [http_ticket["id"]]  # the first is a duplicate of the second
    a, b = _rows(engine, http_ticket["id"]), _rows(engine, out.id)
    assert a["events"][0]["data"]["possible_duplicates"] == []
    b["events"][0]["data"]["possible_duplicates"] = []
    assert a == b
    assert [e["kind"] for e in a["events"]] == ["created", "outage_linked"]
    assert len(a["clocks"]) == 3 and len(a["sms"]) == 1 and len(a["outage"]) == 1
    assert "CL-N" in a["sms"][0]["body"] and a["sms"][0]["status"] == "pending"
    assert len(a["outage_events"]) == 1
    # the HTTP answer is what was written
    assert http_ticket["sla"] == api.get("agent", f"/api/v1/tickets/{http_ticket['id']}"
                                         ).json()["sla"]


def _sms_body(engine, ticket_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT body FROM sms_messages WHERE ticket_id = :id"),
                            {"id": ticket_id}).scalar_one()


def _new(api, **body) -> int:
    r = api.post("agent", "/api/v1/tickets", json={
        "category": "repair", "location": HELSINKI, "description": "漏水",
        "reporter_phone": "+358409001234", "language": "en", **body})
    assert r.status_code == 201, r.text
    return r.json()["ticket"]["id"]


def test_a_changed_template_applies_to_the_very_next_ticket(app, api, engine):
    """The "received" template is cached per process; the statement refuses a stale one
    (writing nothing) and the intake renders again with the stored text."""
    first = _new(api)  # caches: no override
    assert f"CL-{first:07d}" in _sms_body(engine, first)
    default = _sms_body(engine, first).replace(f"CL-{first:07d}", "")
    body = "Crewline: got it, ticket {number}. Reply STOP to opt out."
    assert api.put("manager", "/api/v1/sms/templates/ticket_received/en",
                   json={"body": body}).status_code == 200
    before = _counts(engine)
    second = _new(api)
    assert _sms_body(engine, second) == f"Crewline: got it, ticket CL-{second:07d}. Reply STOP " \
                                        "to opt out."
    assert _counts(engine) == (before[0] + 1, before[1] + 1, before[2] + 3, before[3] + 1)
    assert second == first + 1  # the refused attempt's id was used by the retry
    # changed behind the server's back (another process, SQL): the same
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM sms_templates"))
    third = _new(api)
    assert _sms_body(engine, third).replace(f"CL-{third:07d}", "") == default
    # another language's override does not concern an English ticket
    assert api.put("manager", "/api/v1/sms/templates/ticket_received/zh-CN",
                   json={"body": "已受理 {number}"}).status_code == 200
    en = _new(api)
    assert _sms_body(engine, en).replace(f"CL-{en:07d}", "") == default
    zh = _new(api, language="zh-CN")
    assert _sms_body(engine, zh) == f"已受理 CL-{zh:07d}"


def test_a_template_that_keeps_changing_is_a_500_not_a_loop(app, api, engine):
    """Tried once more only: a cache that is stale twice (here: forced) fails the request."""
    _new(api)

    class Stale:  # always renders with a text that is not stored
        def load(self, *, refresh=False):
            return {"en": "stale {number}"}
            yield

    app.state.receipt_templates = Stale()
    before = _counts(engine)
    r = api.post("agent", "/api/v1/tickets", json={
        "category": "repair", "location": HELSINKI, "description": "漏水",
        "reporter_phone": "+358409001234", "language": "en"})
    assert r.status_code == 500
    assert _counts(engine) == before


def test_ids_come_in_blocks_a_restart_leaves_gaps_never_collisions(app, api, engine, clock):
    app.state.ticket_ids = worker_a = TicketIds(32)
    one = _new(api)
    two = _new(api)
    assert (one, two) == (1, 2)
    # another worker (or this one restarted): its own block, after the first one's
    app.state.ticket_ids = TicketIds(32)
    clock.advance(seconds=1)
    other = _new(api)
    assert other == 33
    # the tickets outside the HTTP intake take one id at a time from the same sequence
    clock.advance(seconds=1)
    with Session(engine) as session:
        synced, _ = tickets.create(session, TicketIn(
            category="complaint", description="sync", location=HELSINKI), _agent(api),
            clock.now(), tickets.Policy())
        session.commit()
    assert synced.id == 65
    # the first worker goes on with its block: a lower number for a newer ticket
    app.state.ticket_ids = worker_a
    clock.advance(seconds=1)
    newest = _new(api)
    assert newest == 3
    # lists are newest first by creation time, not by number, and page on from a ticket
    listed = [t["id"] for t in api.get("agent", "/api/v1/tickets").json()]
    assert listed == [newest, synced.id, other, two, one]
    page = [t["id"] for t in api.get("agent", f"/api/v1/tickets?before_id={synced.id}&limit=2"
                                     ).json()]
    assert page == [other, two]
    # paging on from a ticket that does not exist says so (the page is not silently empty)
    r = api.get("agent", "/api/v1/tickets?before_id=9999")
    assert r.status_code == 404 and r.json()["error"]["field"] == "before_id"


def test_the_allocator_is_safe_for_threads_and_coroutines(engine, settings):
    ids = TicketIds(3)
    taken: list[int] = []
    lock = threading.Lock()

    def worker():
        with Session(engine) as session:
            mine = [sqlplan.run(session, ids.take()) for _ in range(20)]
            session.commit()
        with lock:
            taken.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def coroutines():
        db = AsyncDatabase(settings, pool_size=4)
        try:
            async def one():
                async with db.connection() as conn:
                    return await sqlplan.run_async(conn, ids.take())
            return await asyncio.gather(*(one() for _ in range(40)))
        finally:
            await db.close()

    taken.extend(asyncio.run(coroutines()))
    assert len(taken) == len(set(taken)) == 200
    with pytest.raises(ValueError):
        TicketIds(0)


def test_autocommit_runs_one_writing_step_and_recovers_a_failed_one(engine, settings):
    write = text("CREATE TEMP TABLE IF NOT EXISTS plan_w (x int)")
    fail = text("SELECT 1/0 AS x")

    def one_write():
        a = yield Step(_ECHO, {"n": 1, "word": "x"}, writes=False)
        try:
            yield Step(fail, {}, recover=True)
        except Exception as e:
            assert sqlplan.sqlstate(e) == "22012"
        b = yield Step(_ECHO, {"n": a.n, "word": "x"}, writes=False)
        yield Step(write, {}, fetch=False)
        return b.n

    def two_writes():
        yield Step(write, {}, fetch=False)
        yield Step(write, {}, fetch=False)

    async def on_async(plan):
        db = AsyncDatabase(settings, pool_size=1)
        try:
            async with db.connection() as conn:
                return await sqlplan.run_async(conn, plan())
        finally:
            await db.close()

    assert asyncio.run(on_async(one_write)) == 3
    with pytest.raises(psycopg.ProgrammingError, match="more than one writing step"):
        asyncio.run(on_async(two_writes))
    # in a transaction: the failed step is undone alone (a savepoint), on both drivers
    with Session(engine) as session:
        assert sqlplan.run(session, one_write()) == 3
        assert sqlplan.run(session, two_writes()) is None

    async def in_transaction():
        db = AsyncDatabase(settings, pool_size=1)
        try:
            async with db.transaction() as conn:
                return await sqlplan.run_async(conn, one_write())
        finally:
            await db.close()

    assert asyncio.run(in_transaction()) == 3


def test_the_standalone_absorption_uses_the_same_rule(api, engine, clock):
    """absorb_plan (a stored ticket) and the intake's CTEs are one definition."""
    from server.outages.absorb import absorb_plan

    r = api.post("agent", "/api/v1/tickets", json={
        "category": "repair", "description": "家里没水了",
        "location": {"lon": INSIDE[0], "lat": INSIDE[1]}})
    assert r.status_code == 201, r.text
    ticket_id = r.json()["ticket"]["id"]
    outage = declare(api, polygon())
    with Session(engine) as session:
        sqlplan.run(session, absorb_plan(ticket_id, clock.now()))
        session.commit()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT outage_id FROM outage_tickets WHERE ticket_id = :t"),
                            {"t": ticket_id}).scalar_one() == outage["id"]
    events = api.get("agent", f"/api/v1/tickets/{ticket_id}").json()["events"]
    assert [e["kind"] for e in events] == ["created", "outage_linked"]


def _counted(plan, seen: list):
    row = None
    while True:
        try:
            step = plan.send(row)
        except StopIteration as done:
            return done.value
        seen.append(step)
        row = yield step


def test_a_warm_intake_is_one_statement(api, engine, clock):
    """Ids left in the block and the template cached: the whole intake is one step (one round
    trip in autocommit); naming a customer adds the read of the customer."""
    from server.notifications import service as notifications

    ids = TicketIds(32)
    overrides = notifications.TemplateOverrides(notifications.TemplateKey.ticket_received)
    customer = add_customer(engine, *INSIDE)
    bodies = [TicketIn(category="repair", description="漏水", location=HELSINKI,
                       reporter_phone="13800138000"),
              TicketIn(category="repair", description="漏水", location=HELSINKI,
                       reporter_phone="13800138001"),
              TicketIn(category="repair", description="漏水", customer_id=customer["id"])]
    counts = []
    with Session(engine) as session:
        for body in bodies:
            seen: list = []
            sqlplan.run(session, _counted(tickets.create_plan(
                body, _agent(api), clock.now(), tickets.Policy(), ids=ids,
                overrides=overrides), seen))
            counts.append([s.writes for s in seen])
        session.commit()
    # cold: the id block and the templates (reads), then the statement; warm: the statement
    assert counts == [[False, False, True], [True], [False, True]]
