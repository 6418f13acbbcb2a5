"""`crewline bench intake`: tickets created per second through the HTTP API.

N concurrent clients POST tickets to a real `crewline serve` (W worker processes). In the same run
the floor: the same rows (ticket, audit event, SLA clocks) written with raw INSERTs by the same
number of concurrent connections, one transaction per ticket, as the API does.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import httpx
import psycopg

from server.bench.common import bench_database, ensure_bench_user, login, running_server
from server.settings import Settings

CATEGORIES = ["repair", "repair", "repair", "outage_report", "complaint", "help_request"]


def bodies(n: int, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    return [{"category": rng.choice(CATEGORIES), "priority": rng.choice(["normal", "high"]),
             "description": f"bench ticket {i}: 水管漏水 / leaking pipe",
             "location": {"lon": round(24.90 + rng.random() * 0.1, 6),
                          "lat": round(60.15 + rng.random() * 0.05, 6)},
             "reporter_phone": f"+86139{rng.randrange(10**8):08d}"} for i in range(n)]


async def _post_all(base: str, headers: dict, items: list[dict], clients: int,
                    tick) -> tuple[float, int]:
    queue: asyncio.Queue = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    failures = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as c:
        async def client() -> None:
            nonlocal failures
            while True:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                r = await c.post("/api/v1/tickets", json=item)
                if r.status_code != 201:
                    failures += 1
                tick()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - started, failures


FLOOR_TICKET = """
INSERT INTO tickets (category, priority, channel, status, location, description, reporter_phone,
    language, created_by, created_at, updated_at, first_contact_resolution, reopen_count, sla_level)
VALUES (%s, %s, 'phone', 'new', ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, %s, 'zh-CN', %s,
    now(), now(), false, 0, 0) RETURNING id"""
FLOOR_EVENT = """INSERT INTO ticket_events (ticket_id, at, actor_id, kind, to_status, data)
VALUES (%s, now(), %s, 'created', 'new', '{}')"""
FLOOR_CLOCK = """INSERT INTO ticket_sla_clocks (ticket_id, clock, cycle, started_at, warn_at, due_at)
VALUES (%s, %s, 0, now(), now() + interval '1 hour', now() + interval '2 hours')"""


def floor(libpq: str, items: list[dict], clients: int, user_id: int) -> float:
    chunks = [items[i::clients] for i in range(clients)]
    conns = [psycopg.connect(libpq) for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def work(conn, chunk):
        barrier.wait()
        for it in chunk:
            with conn.transaction():
                tid = conn.execute(FLOOR_TICKET, (
                    it["category"], it["priority"], it["location"]["lon"], it["location"]["lat"],
                    it["description"], it["reporter_phone"], user_id)).fetchone()[0]
                conn.execute(FLOOR_EVENT, (tid, user_id))
                for clock in ("assign", "arrive", "resolve"):
                    conn.execute(FLOOR_CLOCK, (tid, clock))

    threads = [threading.Thread(target=work, args=(c, ch)) for c, ch in zip(conns, chunks)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return elapsed


def _reset(libpq: str) -> int:
    with psycopg.connect(libpq) as conn:
        conn.execute("DELETE FROM ticket_sla_clocks WHERE ticket_id IN "
                     "(SELECT id FROM tickets WHERE description LIKE 'bench ticket %%')")
        conn.execute("ALTER TABLE ticket_events DISABLE TRIGGER ticket_events_append_only")
        conn.execute("DELETE FROM ticket_events WHERE ticket_id IN "
                     "(SELECT id FROM tickets WHERE description LIKE 'bench ticket %%')")
        conn.execute("ALTER TABLE ticket_events ENABLE TRIGGER ticket_events_append_only")
        conn.execute("DELETE FROM ticket_links")
        conn.execute("DELETE FROM tickets WHERE description LIKE 'bench ticket %%'")
        conn.execute("ANALYZE tickets")
        return conn.execute("SELECT id FROM users WHERE username = 'bench-agent'").fetchone()[0]


def run(settings: Settings, *, tickets: int, clients: int, workers: int, progress=None) -> dict:
    url = bench_database(settings)
    libpq = url.replace("+psycopg", "")
    ensure_bench_user(libpq)
    user_id = _reset(libpq)
    items = bodies(tickets)
    floor_s = floor(libpq, items, clients, user_id)
    user_id = _reset(libpq)
    pool = max(4, clients // workers + 2)
    with running_server(url, workers=workers, pool_size=pool) as base:
        headers = login(base)
        asyncio.run(_post_all(base, headers, items[: min(200, tickets)], clients, lambda: None))
        _reset(libpq)
        bar = progress() if progress else None
        if bar:
            bar.start()
            task = bar.add_task("tickets via HTTP", total=tickets)
            tick = lambda: bar.advance(task)  # noqa: E731
        else:
            tick = lambda: None  # noqa: E731
        try:
            api_s, failures = asyncio.run(_post_all(base, headers, items, clients, tick))
        finally:
            if bar:
                bar.stop()
    api_rate = tickets / api_s
    floor_rate = tickets / floor_s
    return {
        "benchmark": "intake", "tickets": tickets, "clients": clients, "server_workers": workers,
        "api_tickets_per_s": round(api_rate, 1), "floor_raw_insert_tickets_per_s": round(floor_rate, 1),
        "ratio": round(api_rate / floor_rate, 3), "failures": failures,
        "target_tickets_per_s": 500, "target_ratio": 0.3,
        "meets_target": api_rate >= 500 and api_rate / floor_rate >= 0.3,
    }
