"""`crewline bench lookup`: caller-ID lookup latency with N customers.

Measures, in one run, the HTTP endpoint (what the agent's console waits for: parsing the number,
auth, queries, JSON) and the floor: the same two SQL queries sent raw with psycopg.
"""

from __future__ import annotations

import random
import time
from contextlib import nullcontext

import httpx
import psycopg

from server.bench.common import bench_database, ensure_bench_user, login, percentile, running_server
from server.settings import Settings

CHUNK = 100_000
FLOOR_SQL_CUSTOMERS = """
SELECT c.id, c.account_no, c.name, c.preferred_language, c.sms_consent,
       (SELECT json_agg(json_build_object('e164', p2.e164, 'kind', p2.kind))
          FROM customer_phones p2 WHERE p2.customer_id = c.id),
       (SELECT json_agg(json_build_object('id', s.id, 'address', s.address,
                                          'lon', ST_X(s.geom), 'lat', ST_Y(s.geom)))
          FROM service_points s WHERE s.customer_id = c.id)
FROM customers c WHERE c.id IN (SELECT customer_id FROM customer_phones WHERE e164 = %s)
"""
FLOOR_SQL_TICKETS = """
SELECT id, category, status, description FROM tickets
WHERE customer_id = ANY(%s) AND status IN ('new','assigned','accepted','en_route','on_site')
"""


def phone_of(i: int) -> str:
    return f"+86138{i:08d}"


def typed(i: int, rng: random.Random) -> str:
    """The number as an agent's softphone or a person might pass it."""
    n = f"{i:08d}"
    return rng.choice([f"+86138{n}", f"138{n}", f"138 {n[:4]} {n[4:]}", f"0086-138-{n[:4]}-{n[4:]}"])


def populate(libpq: str, customers: int, progress) -> float:
    started = time.perf_counter()
    with psycopg.connect(libpq) as conn:
        have = conn.execute("SELECT count(*) FROM customers WHERE account_no LIKE 'B-%'"
                            ).fetchone()[0]
        tickets = conn.execute("SELECT count(*) FROM tickets").fetchone()[0]
        if have == customers and tickets == customers // 100:
            return 0.0
        conn.execute("TRUNCATE ticket_sla_clocks, ticket_links, ticket_events, tickets, "
                     "service_points, customer_phones, customers RESTART IDENTITY CASCADE")
        conn.commit()
        with (progress() if progress else nullcontext()) as bar:
            task = bar.add_task("creating customers", total=customers) if bar else None
            for start in range(1, customers + 1, CHUNK):
                end = min(start + CHUNK - 1, customers)
                conn.execute("""
                    INSERT INTO customers (id, account_no, name, preferred_language, sms_consent)
                    SELECT g, 'B-' || g, 'Bench customer ' || g,
                           CASE WHEN g %% 3 = 0 THEN 'en' ELSE 'zh-CN' END, true
                    FROM generate_series(%s::bigint, %s::bigint) g""", (start, end))
                conn.execute("""
                    INSERT INTO customer_phones (customer_id, e164, kind)
                    SELECT g, '+86138' || lpad(g::text, 8, '0'), 'mobile'
                    FROM generate_series(%s::bigint, %s::bigint) g""", (start, end))
                conn.execute("""
                    INSERT INTO service_points (customer_id, address, geom)
                    SELECT g, 'Bench street ' || g,
                           ST_SetSRID(ST_MakePoint(24.90 + (g %% 1000) * 0.0001,
                                                   60.15 + (g / 1000 %% 1000) * 0.00005), 4326)
                    FROM generate_series(%s::bigint, %s::bigint) g""", (start, end))
                conn.commit()
                if bar:
                    bar.update(task, completed=end)
        # one customer in a hundred has an open ticket
        conn.execute("""
            INSERT INTO tickets (category, priority, channel, status, customer_id,
                service_point_id, location, description, language, created_by, updated_at,
                first_contact_resolution, reopen_count, sla_level)
            SELECT 'repair', 'normal', 'phone', 'new', s.customer_id, s.id, s.geom, 'bench',
                   'zh-CN', (SELECT min(id) FROM users), now(), false, 0, 0
            FROM service_points s WHERE s.customer_id % 100 = 0""")
        conn.execute("SELECT setval(pg_get_serial_sequence('customers', 'id'), %s)", (customers,))
        conn.commit()
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def run(settings: Settings, *, customers: int, queries: int, progress=None) -> dict:
    url = bench_database(settings)
    libpq = url.replace("+psycopg", "")
    ensure_bench_user(libpq)
    populate_s = populate(libpq, customers, progress)
    rng = random.Random(7)
    picks = [rng.randint(1, customers) for _ in range(queries)]
    # floor: the raw queries
    floor = []
    with psycopg.connect(libpq, autocommit=True) as conn:
        for i in picks[: min(200, queries)]:  # warm-up
            conn.execute(FLOOR_SQL_CUSTOMERS, (phone_of(i),)).fetchall()
        for i in picks:
            t0 = time.perf_counter()
            rows = conn.execute(FLOOR_SQL_CUSTOMERS, (phone_of(i),)).fetchall()
            conn.execute(FLOOR_SQL_TICKETS, ([r[0] for r in rows],)).fetchall()
            floor.append((time.perf_counter() - t0) * 1000)
    api = []
    misses = 0
    with running_server(url) as base:
        headers = login(base)
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client, \
                (progress() if progress else nullcontext()) as bar:
            task = bar.add_task("lookups", total=queries) if bar else None
            for i in picks[: min(200, queries)]:
                client.get("/api/v1/customers/lookup", params={"phone": typed(i, rng)})
            for n, i in enumerate(picks):
                t0 = time.perf_counter()
                r = client.get("/api/v1/customers/lookup", params={"phone": typed(i, rng)})
                api.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200 or not r.json()["matches"]:
                    misses += 1
                if bar and n % 100 == 0:
                    bar.update(task, completed=n)
            if bar:
                bar.update(task, completed=queries)
    p50, p99 = percentile(api, 50), percentile(api, 99)
    f50, f99 = percentile(floor, 50), percentile(floor, 99)
    return {
        "benchmark": "lookup", "customers": customers, "queries": queries,
        "http_p50_ms": round(p50, 2), "http_p99_ms": round(p99, 2),
        "floor_sql_p50_ms": round(f50, 3), "floor_sql_p99_ms": round(f99, 3),
        "ratio_p50_floor_over_http": round(f50 / p50, 3) if p50 else None,
        "target_p99_ms": 20, "meets_target": p99 <= 20, "misses": misses,
        "populate_s": round(populate_s, 1),
    }
