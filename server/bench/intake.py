"""`crewline bench intake`: tickets created per second through the HTTP API.

N concurrent connections POST tickets to a real `crewline serve` (W worker processes) for a fixed
time. The load comes from `wrk` (a C load generator, Debian package `wrk`), because a Python client
would spend as much CPU as the server on these 2 cores and measure itself. In the same run two
floors: the same rows (ticket, audit event, three SLA clocks and the "ticket received" SMS in the
outbox) written by the same number of concurrent connections with none of the API's work around
them — as raw INSERTs, one transaction per ticket (the issue's floor: ``ratio``), and as one
statement per ticket in autocommit, the way the API writes them (``ratio_one_statement``).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql

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


WRK_SCRIPT = """
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%(auth)s"
request = function()
  n = n + 1
  return wrk.format(nil, "/api/v1/tickets", nil, bodies[(n %% #bodies) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format(
    '\\nRESULT {"requests": %%d, "duration_us": %%d, "non_2xx": %%d, "socket_errors": %%d, ' ..
    '"p50_ms": %%.2f, "p99_ms": %%.2f}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _wrk(base: str, headers: dict, items: list[dict], clients: int, seconds: int) -> dict:
    wrk = shutil.which("wrk")
    if not wrk:
        raise SystemExit("the intake benchmark needs wrk: sudo apt-get install -y wrk")
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "bodies.jsonl"
        bodies.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n",
                          encoding="utf-8")
        script = Path(tmp) / "intake.lua"
        script.write_text(WRK_SCRIPT % {"bodies": bodies, "auth": headers["Authorization"]})
        # wrk wants at least one connection per thread
        out = subprocess.run([wrk, "-t", str(min(2, clients)), "-c", str(clients),
                              "-d", f"{seconds}s", "--timeout", "10s", "-s", str(script), base],
                             capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    return json.loads(line[len("RESULT "):])


# Two floors, the same rows per ticket (the ticket, its audit event, three SLA clocks, the
# "received" SMS; the same triggers fire) and nothing of the API's work around them (no JWT,
# validation, duplicate search, SLA policy, template rendering, outage absorption, HTTP):
# * "raw INSERT" (the floor): one INSERT per row, one transaction per ticket;
# * "one statement": the rows as CTEs of one INSERT in autocommit, one round trip — the way the
#   API itself writes them since the intake became one statement, so the least the database can
#   do for a ticket. The API's ratio to it is the stricter one.
FLOOR_TICKET = """
INSERT INTO tickets (category, priority, channel, status, location, description, reporter_phone,
    language, created_by, created_at, updated_at, first_contact_resolution, reopen_count, sla_level)
VALUES (%(category)s, %(priority)s, 'phone', 'new', ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326),
    %(description)s, %(phone)s, 'zh-CN', %(user)s, now(), now(), false, 0, 0) RETURNING id"""
FLOOR_EVENT = """INSERT INTO ticket_events (ticket_id, at, actor_id, kind, to_status, data)
VALUES (%s, now(), %s, 'created', 'new', '{}')"""
FLOOR_CLOCK = """INSERT INTO ticket_sla_clocks (ticket_id, clock, cycle, started_at, warn_at, due_at)
VALUES (%s, %s, 0, now(), now() + interval '1 hour', now() + interval '2 hours')"""
FLOOR_SMS = """INSERT INTO sms_messages (ticket_id, to_e164, language, template, body, encoding,
    segments, urgent, dedupe_key, status, attempts, next_attempt_at, created_at, updated_at)
VALUES (%s, %s, 'zh-CN', 'ticket_received', %s, 'UCS-2', 1, false, %s, 'pending', 0, now(), now(),
    now())"""
FLOOR_STATEMENT = """
WITH t AS (
  INSERT INTO tickets (category, priority, channel, status, location, description,
      reporter_phone, language, created_by, created_at, updated_at, first_contact_resolution,
      reopen_count, sla_level)
  VALUES (%(category)s, %(priority)s, 'phone', 'new',
      ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(description)s, %(phone)s, 'zh-CN',
      %(user)s, now(), now(), false, 0, 0)
  RETURNING id),
e AS (
  INSERT INTO ticket_events (ticket_id, at, actor_id, kind, to_status, data)
  SELECT t.id, now(), %(user)s, 'created', 'new', '{}' FROM t),
c AS (
  INSERT INTO ticket_sla_clocks (ticket_id, clock, cycle, started_at, warn_at, due_at)
  SELECT t.id, k.clock, 0, now(), now() + interval '1 hour', now() + interval '2 hours'
  FROM t, unnest(ARRAY['assign', 'arrive', 'resolve']) AS k(clock)),
s AS (
  INSERT INTO sms_messages (ticket_id, to_e164, language, template, body, encoding, segments,
      urgent, dedupe_key, status, attempts, next_attempt_at, created_at, updated_at)
  SELECT t.id, %(phone)s, 'zh-CN', 'ticket_received', '已受理 CL-' || lpad(t.id::text, 7, '0'),
      'UCS-2', 1, false, 'ticket:' || t.id || ':ticket_received', 'pending', 0, now(), now(),
      now()
  FROM t)
SELECT id FROM t"""


def _raw_inserts(conn, params: dict) -> None:
    with conn.transaction():
        tid = conn.execute(FLOOR_TICKET, params).fetchone()[0]
        conn.execute(FLOOR_EVENT, (tid, params["user"]))
        for clock in ("assign", "arrive", "resolve"):
            conn.execute(FLOOR_CLOCK, (tid, clock))
        conn.execute(FLOOR_SMS, (tid, params["phone"], f"已受理 CL-{tid:07d}",
                                 f"ticket:{tid}:ticket_received"))


def _one_statement(conn, params: dict) -> None:
    conn.execute(FLOOR_STATEMENT, params).fetchone()  # autocommit: its own transaction


def floor(libpq: str, items: list[dict], clients: int, user_id: int, *,
          one_statement: bool = False) -> float:
    chunks = [items[i::clients] for i in range(clients)]
    conns = [psycopg.connect(libpq, autocommit=True) for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    write = _one_statement if one_statement else _raw_inserts

    errors: list[BaseException] = []

    def work(conn, chunk):
        barrier.wait()
        try:
            for it in chunk:
                write(conn, {"category": it["category"], "priority": it["priority"],
                             "lon": it["location"]["lon"], "lat": it["location"]["lat"],
                             "description": it["description"], "phone": it["reporter_phone"],
                             "user": user_id})
        except BaseException as exc:  # a floor that failed is no floor: fail the run
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c, ch)) for c, ch in zip(conns, chunks, strict=False)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    if errors:
        raise RuntimeError(f"the floor failed: {errors[0]!r}") from errors[0]
    return elapsed


_REFERENCING = """
SELECT c.conrelid::regclass::text AS tbl, a.attname AS col
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
WHERE c.contype = 'f' AND c.confrelid = 'tickets'::regclass AND c.conrelid <> 'tickets'::regclass
"""


def _reset(libpq: str) -> int:
    """Delete the benchmark's tickets and every row of any domain that refers to them."""
    with psycopg.connect(libpq) as conn:
        conn.execute("CREATE TEMP TABLE bench_ids AS SELECT id FROM tickets "
                     "WHERE description LIKE 'bench ticket %'")
        conn.execute("ALTER TABLE ticket_events DISABLE TRIGGER ticket_events_append_only")
        for table, column in conn.execute(_REFERENCING).fetchall():
            conn.execute(sql.SQL("DELETE FROM {} WHERE {} IN (SELECT id FROM bench_ids)").format(
                sql.Identifier(table), sql.Identifier(column)))
        conn.execute("ALTER TABLE ticket_events ENABLE TRIGGER ticket_events_append_only")
        conn.execute("DELETE FROM tickets WHERE id IN (SELECT id FROM bench_ids)")
        conn.commit()
        return conn.execute("SELECT id FROM users WHERE username = 'bench-agent'").fetchone()[0]


def _vacuum(libpq: str) -> None:
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE tickets")


def _count(libpq: str) -> int:
    with psycopg.connect(libpq) as conn:
        return conn.execute("SELECT count(*) FROM tickets WHERE description LIKE 'bench ticket %%'"
                            ).fetchone()[0]


def _check_floor(libpq: str, expected: int) -> None:
    """Every floor ticket was written with its SMS (a floor that skipped work would flatter it)."""
    with psycopg.connect(libpq) as conn:
        tickets, sms = conn.execute(
            "SELECT count(*), count(m.id) FROM tickets t LEFT JOIN sms_messages m "
            "ON m.ticket_id = t.id WHERE t.description LIKE 'bench ticket %%'").fetchone()
    if tickets != expected or sms != expected:
        raise RuntimeError(f"the floor wrote {tickets} tickets and {sms} SMS, not {expected}")


def run(settings: Settings, *, seconds: int, clients: int, workers: int, floor_tickets: int,
        progress=None) -> dict:
    url = bench_database(settings)
    libpq = url.replace("+psycopg", "")
    ensure_bench_user(libpq)
    user_id = _reset(libpq)
    _vacuum(libpq)
    items = bodies(20_000)
    bar = progress() if progress else None
    if bar:
        bar.start()
        task = bar.add_task("intake benchmark", total=4)
    try:
        floor_s = floor(libpq, items[:floor_tickets], clients, user_id)
        _check_floor(libpq, floor_tickets)
        _reset(libpq)
        _vacuum(libpq)
        if bar:
            bar.advance(task)
        floor1_s = floor(libpq, items[:floor_tickets], clients, user_id, one_statement=True)
        _check_floor(libpq, floor_tickets)
        _reset(libpq)
        _vacuum(libpq)
        if bar:
            bar.advance(task)
        pool = max(4, clients // workers + 2)
        with running_server(url, workers=workers, pool_size=pool) as base:
            headers = login(base)
            _wrk(base, headers, items, clients, 3)  # warm-up: connections, caches, plans
            time.sleep(2)  # requests wrk abandoned at its deadline still finish on the server
            _reset(libpq)
            _vacuum(libpq)
            if bar:
                bar.advance(task)
            result = _wrk(base, headers, items, clients, seconds)
            time.sleep(2)
            created = _count(libpq)
        if bar:
            bar.advance(task)
    finally:
        if bar:
            bar.stop()
    duration = result["duration_us"] / 1e6
    # completed 201s inside wrk's window; the database count also holds the few in flight at the end
    api_rate = (result["requests"] - result["non_2xx"]) / duration
    floor_rate = floor_tickets / floor_s
    floor1_rate = floor_tickets / floor1_s
    return {
        "benchmark": "intake", "seconds": round(duration, 1), "clients": clients,
        "server_workers": workers, "tickets_created": created, "requests": result["requests"],
        "non_2xx": result["non_2xx"], "socket_errors": result["socket_errors"],
        "api_tickets_per_s": round(api_rate, 1), "api_p50_ms": result["p50_ms"],
        "api_p99_ms": result["p99_ms"],
        "floor_raw_insert_tickets_per_s": round(floor_rate, 1),
        "ratio": round(api_rate / floor_rate, 3),
        "floor_one_statement_tickets_per_s": round(floor1_rate, 1),
        "ratio_one_statement": round(api_rate / floor1_rate, 3),
        "target_tickets_per_s": 500, "target_ratio": 0.3,
        "meets_target": api_rate >= 500 and api_rate / floor_rate >= 0.3,
        "load_generator": "wrk",
    }
