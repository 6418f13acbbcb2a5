"""Live updates over /api/v1/live against real server processes and PostgreSQL: a change made
through one replica reaches a socket on another (LISTEN/NOTIFY), positions are batched per crew,
authentication and roles, the listener survives losing its connection, trigger payloads stay
small however many rows one statement touches."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import jwt
import psycopg
import pytest
import websockets

from tests.web.conftest import SECRET, _server

# a corner of Helsinki of these tests' own (the desk tests use 24.90–25.00 / 60.16–60.17)
LON, LAT = 24.9440, 60.1740


def run(coro) -> object:
    """asyncio.run in a thread of its own: the session's Playwright (sync API) keeps an event loop
    running in the main thread once a browser test has run."""
    out: dict = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


@pytest.fixture(scope="module")
def replicas(pg_url, desk_users):
    """Two `crewline serve` processes on the same database."""
    servers = [_server(pg_url), _server(pg_url)]
    for s in servers:
        s.start()
    yield servers
    for s in servers:
        s.stop()
        shutil.rmtree(s.log.parent, ignore_errors=True)


def _token(server, role: str) -> str:
    return server.token(role)["Authorization"].split()[1]


def _ws_url(server) -> str:
    return server.url.replace("http://", "ws://") + "/api/v1/live"


async def _connect(server, token: str):
    ws = await websockets.connect(_ws_url(server))
    await ws.send(json.dumps({"type": "auth", "token": token}))
    ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return ws, ready


async def _wait_for(ws, predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the expected live message did not arrive")
        msg = json.loads(await asyncio.wait_for(ws.recv(), left))
        if predicate(msg):
            return msg


def _crew(server, name: str) -> dict:
    return server.call("manager", "POST", "/api/v1/crews", json={
        "name": name, "skills": ["water_main"], "shift": "on_shift", "capacity": 2})


def _fix(server, crew_id: int, lon: float, lat: float, heading: float = 0.0) -> None:
    server.call("dispatcher", "POST", f"/api/v1/crews/{crew_id}/positions", json={"fixes": [{
        "lon": lon, "lat": lat, "at": datetime.now(UTC).isoformat(), "heading_deg": heading,
        "speed_mps": 5}]})


def test_a_change_through_one_replica_reaches_a_socket_on_the_other(replicas) -> None:
    a, b = replicas
    crew = _crew(a, f"Live {uuid.uuid4().hex[:8]}")

    async def scenario():
        ws, ready = await _connect(b, _token(b, "dispatcher"))
        agent_ws, agent_ready = await _connect(b, _token(b, "agent"))
        assert ready["type"] == "ready" and ready["topics"] == ["changed", "crews", "tickets"]
        assert agent_ready["topics"] == ["changed", "tickets"]  # agents see no crews
        # a ticket logged through replica A
        created = await asyncio.to_thread(a.call, "agent", "POST", "/api/v1/tickets", json={
            "category": "repair", "priority": "high", "description": "水管漏水 live test",
            "location": {"lon": LON, "lat": LAT}})
        tid = created["ticket"]["id"]
        for sock in (ws, agent_ws):
            msg = await _wait_for(sock, lambda m: m["type"] == "tickets"
                                  and any(i["id"] == tid for i in m["items"]))
            row = next(i for i in msg["items"] if i["id"] == tid)
            assert row["status"] == "new" and row["open"] and row["due_clock"] == "assign"
            assert row["due_at"] and row["lon"] == pytest.approx(LON)
        # a position through A: the dispatcher's socket on B hears it, with heading
        await asyncio.to_thread(_fix, a, crew["id"], LON + 0.002, LAT, 270.0)
        msg = await _wait_for(ws, lambda m: m["type"] == "crews"
                              and any(i["id"] == crew["id"] for i in m["items"]))
        row = next(i for i in msg["items"] if i["id"] == crew["id"])
        assert row["heading"] == 270 and row["lon"] == pytest.approx(LON + 0.002)
        assert row["status"] == "available" and not row["stale"]
        # assignment through A: the ticket row on B carries the crew and its status
        await asyncio.to_thread(a.call, "dispatcher", "POST", f"/api/v1/tickets/{tid}/assignment",
                                json={"crew_id": crew["id"]})
        msg = await _wait_for(ws, lambda m: m["type"] == "tickets" and any(
            i["id"] == tid and i["crew_id"] == crew["id"] for i in m["items"]))
        assert next(i for i in msg["items"] if i["id"] == tid)["status"] == "assigned"
        msg = await _wait_for(ws, lambda m: m["type"] == "crews" and any(
            i["id"] == crew["id"] and i["status"] == "assigned" for i in m["items"]))
        # cancelled through A: the row says it is no longer open (the page drops it)
        await asyncio.to_thread(a.call, "agent", "POST", f"/api/v1/tickets/{tid}/transitions",
                                json={"to": "cancelled", "note": "test"})
        msg = await _wait_for(agent_ws, lambda m: m["type"] == "tickets" and any(
            i["id"] == tid and not i["open"] for i in m["items"]))
        await ws.close()
        await agent_ws.close()

    run(scenario())


def test_positions_are_batched_at_most_once_per_second_per_crew(replicas) -> None:
    a, b = replicas
    crew = _crew(a, f"Batch {uuid.uuid4().hex[:8]}")
    headers = a.token("dispatcher")

    async def scenario():
        ws, _ = await _connect(b, _token(b, "dispatcher"))
        seen: list[tuple[float, float]] = []  # (arrival, lon) of this crew's updates
        sent = 0

        async def reader():
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "crews":
                    for item in msg["items"]:
                        if item["id"] == crew["id"]:
                            seen.append((time.monotonic(), item["lon"]))

        task = asyncio.create_task(reader())
        async with httpx.AsyncClient(base_url=a.url, headers=headers, timeout=10) as http:
            start = time.monotonic()
            while time.monotonic() - start < 3.2:  # ~10 fixes a second for 3 s
                sent += 1
                r = await http.post(f"/api/v1/crews/{crew['id']}/positions", json={"fixes": [{
                    "lon": LON + sent * 0.00001, "lat": LAT,
                    "at": datetime.now(UTC).isoformat()}]})
                assert r.status_code == 200, r.text
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.6)  # the last batch
        task.cancel()
        await ws.close()
        return sent, seen

    sent, seen = run(scenario())
    assert sent >= 15
    assert 2 <= len(seen) <= 5, seen  # 3 s of fixes: about one update a second, not ~30
    gaps = [y[0] - x[0] for x, y in itertools.pairwise(seen)]
    assert min(gaps) >= 0.8, gaps
    assert seen[-1][1] == pytest.approx(LON + sent * 0.00001)  # the newest position wins


def test_authentication_and_roles(replicas) -> None:
    _, b = replicas

    async def closed_with(message) -> tuple[int, dict | None]:
        async with websockets.connect(_ws_url(b)) as ws:
            await ws.send(message)
            body = None
            try:
                while True:
                    body = json.loads(await asyncio.wait_for(ws.recv(), 10))
            except websockets.ConnectionClosed as exc:
                return exc.rcvd.code, body

    def forged(**claims) -> str:
        return jwt.encode({"sub": "1", "exp": int(time.time()) + 600, **claims},
                          "not-the-secret-" + "x" * 40, algorithm="HS256")

    expired = jwt.encode({"sub": "1", "exp": int(time.time()) - 5}, SECRET, algorithm="HS256")
    cases = {
        json.dumps({"type": "auth", "token": forged()}): (4401, "invalid_token"),
        json.dumps({"type": "auth", "token": expired}): (4401, "token_expired"),
        json.dumps({"type": "auth"}): (4401, "not_authenticated"),
        json.dumps({"type": "hello"}): (4401, "not_authenticated"),
        "not json": (4408, None),
        json.dumps({"type": "auth", "token": _token(b, "technician")}): (4403, "forbidden"),
    }

    async def scenario():
        for message, (code, error) in cases.items():
            got, body = await closed_with(message)
            assert got == code, (message, got, body)
            if error:
                assert body["error"]["code"] == error, body

    run(scenario())


def test_the_listener_reconnects_and_asks_pages_to_resync(replicas, pg_url) -> None:
    a, b = replicas
    crew = _crew(a, f"Reconnect {uuid.uuid4().hex[:8]}")
    libpq = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)

    async def scenario():
        ws, _ = await _connect(b, _token(b, "dispatcher"))
        with psycopg.connect(libpq, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'crewline-live'").fetchone()[0]
        assert killed >= 1  # both replicas' listeners
        await _wait_for(ws, lambda m: m["type"] == "resync", timeout=15)
        await asyncio.to_thread(_fix, a, crew["id"], LON, LAT + 0.001, 45.0)
        # the fix made after the reconnect arrives (an earlier crews batch, e.g. of the crew's
        # creation held back by the one-second crew interval, may come first)
        msg = await _wait_for(ws, lambda m: m["type"] == "crews" and any(
            i["id"] == crew["id"] and i.get("heading") == 45 for i in m["items"]))
        assert next(i for i in msg["items"] if i["id"] == crew["id"])["heading"] == 45
        await ws.close()

    run(scenario())


def test_one_statement_over_many_rows_is_one_change_record(pg_url) -> None:
    from server.console.live import _POLL, _START, ChangeFeed

    libpq = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(libpq, autocommit=True) as reader, \
            psycopg.connect(libpq, autocommit=True) as writer:
        feed = ChangeFeed(reader.execute(_START).fetchone()[0])
        ids = [r[0] for r in writer.execute(
            "INSERT INTO crews (name, skills, shift, status, capacity, active, updated_at) "
            "SELECT 'bulk-' || %s || '-' || g, '{}', 'off', 'offline', 1, false, now() "
            "FROM generate_series(1, 1000) g RETURNING id", (tag,)).fetchall()]
        writer.execute("UPDATE crews SET updated_at = now() WHERE name LIKE %s", (f"bulk-{tag}-%",))
        changes = feed.take(reader.execute(_POLL, feed.params).fetchall())
        crews = [c for c in changes if c[0] == "crew"]
        assert len(crews) == 2  # the insert and the update: one record each, ids inside
        assert all(sorted(c[1]) == sorted(ids) for c in crews)
        assert feed.take(reader.execute(_POLL, feed.params).fetchall()) == []


def test_change_feed_reads_concurrent_commits_exactly_once(pg_url) -> None:
    """Sequence order is not commit order: a row with a smaller id can commit after the poller
    has read a bigger one. Every change still arrives once, none twice."""
    import random

    from server.console.live import _POLL, _START, ChangeFeed

    libpq = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    kind = "test-" + uuid.uuid4().hex[:8]
    got: list[int] = []
    done = threading.Event()

    def writer(n: int) -> None:
        rng = random.Random(n)
        with psycopg.connect(libpq) as conn:
            for i in range(60):
                with conn.transaction():
                    conn.execute("INSERT INTO live_changes (kind, ids) VALUES (%s, %s)",
                                 (kind, [n * 1000 + i]))
                    time.sleep(rng.random() * 0.01)  # commit later than the next id's writer

    with psycopg.connect(libpq, autocommit=True) as reader:
        feed = ChangeFeed(reader.execute(_START).fetchone()[0])

        def poll() -> None:
            while True:
                last = done.is_set()
                for k, ids in feed.take(reader.execute(_POLL, feed.params).fetchall()):
                    if k == kind:
                        got.extend(ids)
                if last:
                    return
                time.sleep(0.005)

        poller = threading.Thread(target=poll)
        poller.start()
        writers = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        done.set()
        poller.join(timeout=30)
    expected = [n * 1000 + i for n in range(6) for i in range(60)]
    assert len(got) == len(expected) and sorted(got) == expected


def test_a_long_open_transaction_neither_grows_the_reads_nor_loses_its_change(pg_url) -> None:
    from server.console.live import _POLL, _PRUNE, _START, ChangeFeed

    libpq = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    kind = "test-" + uuid.uuid4().hex[:8]
    with psycopg.connect(libpq, autocommit=True) as reader, psycopg.connect(libpq) as long, \
            psycopg.connect(libpq, autocommit=True) as writer:
        feed = ChangeFeed(reader.execute(_START).fetchone()[0])
        long.execute("INSERT INTO live_changes (kind, ids) VALUES (%s, %s)", (kind, [0]))
        for i in range(1, 201):
            writer.execute("INSERT INTO live_changes (kind, ids) VALUES (%s, %s)", (kind, [i]))
        first = reader.execute(_POLL, feed.params).fetchall()
        assert sorted(i for k, ids in feed.take(first) if k == kind for i in ids) == list(
            range(1, 201))
        writer.execute("INSERT INTO live_changes (kind, ids) VALUES (%s, %s)", (kind, [201]))
        second = reader.execute(_POLL, feed.params).fetchall()
        assert [ids for k, ids in feed.take(second) if k == kind] == [[201]]
        assert len(second) <= 2  # only what is new: the 200 are not read again
        reader.execute(_PRUNE, (0,))  # retention 0: still not the long transaction's row
        long.commit()
        third = feed.take(reader.execute(_POLL, feed.params).fetchall())
        assert [ids for k, ids in third if k == kind] == [[0]]
        assert feed.take(reader.execute(_POLL, feed.params).fetchall()) == []
