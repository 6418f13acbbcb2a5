"""`crewline bench outage`: declare an outage over 100,000 service points and queue every SMS.

Data (in its own database ``crewline_bench_outage``, built once): N service points (default
100,000) on a jittered grid over the Helsinki extent inside the outage polygon, plus 10 % more
east of it, each of a customer with a mobile (70 % zh-CN, 30 % en; 3 % without consent; 1 % of
the numbers opted out).

Measured, in one run, ``--repeat`` times each (median reported):

* **declare**: ``outages.service.declare`` for the polygon (validate the area, insert the outage,
  count the affected customers, audit, then ONE ``INSERT … SELECT`` that selects the customers in
  the area, picks each one's first mobile, language, consent and opt-out, renders per language
  and writes one outbox row per number) and the commit. Target <= 3 s on 2 cores.
* **etr_change**: the same for an ETR change (a second full batch, keyed by revision).
* **floor**: the raw spatial query alone, ``SELECT count(*) FROM service_points JOIN outages ON
  ST_Covers(area, geom)``, through psycopg: what selecting the customers costs at the least.
* **insert floor**: that spatial query feeding one raw ``INSERT … SELECT`` of pre-rendered rows
  into ``sms_messages`` (same indexes and foreign keys), committed: what writing 100,000 outbox
  rows costs at the least.

Reported: seconds, rows queued, rows per second and the ratios declare / floor and
declare / insert floor.
"""

from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import psycopg

from server.auth.service import Principal
from server.bench.common import bench_database, ensure_bench_user
from server.core.db import make_engine, make_sessionmaker
from server.core.logging import configure_logging
from server.models import Role
from server.outages import service
from server.outages.schemas import OutageIn, OutagePatch
from server.settings import Settings

# The outage polygon over most of Helsinki (lon/lat), and where the points go.
WEST, EAST, SOUTH, NORTH = 24.78, 25.10, 60.14, 60.30
OUTSIDE_EAST = 25.20
AREA = {"type": "Polygon", "coordinates": [[[WEST, SOUTH], [EAST, SOUTH], [EAST, NORTH],
                                            [WEST, NORTH], [WEST, SOUTH]]]}
CHUNK = 50_000


def populate(libpq: str, points: int, progress) -> float:
    """Customers, mobiles and service points; skipped when already there."""
    outside = points // 10
    total = points + outside
    with psycopg.connect(libpq) as conn:
        have = conn.execute("SELECT count(*) FROM service_points").fetchone()[0]
        if have == total:
            return 0.0
        started = time.perf_counter()
        conn.execute("TRUNCATE outage_subscriptions, outage_tickets, outage_events, outages, "
                     "sms_messages, sms_opt_outs, ticket_sla_clocks, ticket_links, ticket_events, "
                     "tickets, service_points, customer_phones, customers RESTART IDENTITY CASCADE")
        side = int(points ** 0.5) + 1
        with (progress() if progress else nullcontext()) as bar:
            task = bar.add_task("creating customers", total=total) if bar else None
            for start in range(1, total + 1, CHUNK):
                end = min(start + CHUNK - 1, total)
                args = {"s": start, "e": end, "n": points, "side": side, "w": WEST, "east": EAST,
                        "south": SOUTH, "north": NORTH, "far": OUTSIDE_EAST}
                conn.execute("""
                    INSERT INTO customers (id, account_no, name, preferred_language, sms_consent)
                    SELECT g, 'O-' || g, 'Outage bench ' || g,
                           CASE WHEN g %% 10 < 3 THEN 'en' ELSE 'zh-CN' END, g %% 33 <> 0
                    FROM generate_series(%(s)s::bigint, %(e)s::bigint) g""", args)
                conn.execute("""
                    INSERT INTO customer_phones (customer_id, e164, kind)
                    SELECT g, '+86139' || lpad(g::text, 8, '0'), 'mobile'
                    FROM generate_series(%(s)s::bigint, %(e)s::bigint) g""", args)
                # inside: a jittered grid over the polygon (never on its edge); then a strip east
                conn.execute("""
                    INSERT INTO service_points (customer_id, address, geom)
                    SELECT g, 'Bench street ' || g, ST_SetSRID(ST_MakePoint(
                        CASE WHEN g <= %(n)s
                             THEN %(w)s + (%(east)s - %(w)s)
                                  * (((g - 1) %% %(side)s) + 0.1 + 0.8 * random()) / %(side)s
                             ELSE %(east)s + 0.001 + (%(far)s - %(east)s - 0.002) * random() END,
                        CASE WHEN g <= %(n)s
                             THEN %(south)s + (%(north)s - %(south)s)
                                  * (((g - 1) / %(side)s) + 0.1 + 0.8 * random()) / %(side)s
                             ELSE %(south)s + (%(north)s - %(south)s) * random() END), 4326)
                    FROM generate_series(%(s)s::bigint, %(e)s::bigint) g""", args)
                conn.commit()
                if bar:
                    bar.update(task, completed=end)
        conn.execute("""INSERT INTO sms_opt_outs (e164, source, opted_out_at)
                        SELECT e164, 'keyword', now() FROM customer_phones
                        WHERE customer_id % 100 = 7""")
        conn.execute("SELECT setval(pg_get_serial_sequence('customers', 'id'), %s)", (total,))
        conn.commit()
        conn.execute("ANALYZE")
        return time.perf_counter() - started


def _reset(libpq: str) -> None:
    with psycopg.connect(libpq) as conn:
        # TRUNCATE, not DELETE: outage_events is append-only
        conn.execute("TRUNCATE outage_subscriptions, outage_tickets, outage_events, outages, "
                     "sms_messages RESTART IDENTITY CASCADE")


def _floor(libpq: str, outage_id: int) -> tuple[float, int]:
    with psycopg.connect(libpq, autocommit=True) as conn:
        started = time.perf_counter()
        count = conn.execute("SELECT count(*) FROM outages o JOIN service_points sp "
                             "ON ST_Covers(o.area, sp.geom) WHERE o.id = %s",
                             (outage_id,)).fetchone()[0]
        return time.perf_counter() - started, count


_FLOOR_WRITE = """
INSERT INTO sms_messages (customer_id, outage_ref, to_e164, language, template, body, encoding,
    segments, urgent, dedupe_key, status, attempts, next_attempt_at, created_at, updated_at)
SELECT sp.customer_id, 'FLOOR', '+86139' || lpad(sp.customer_id::text, 8, '0'), 'zh-CN',
       'outage_notice', %(body)s, 'UCS-2', 1, true, 'floor:' || sp.customer_id, 'pending', 0,
       now(), now(), now()
FROM outages o JOIN service_points sp ON ST_Covers(o.area, sp.geom) WHERE o.id = %(id)s
"""


def _floor_write(libpq: str, outage_id: int) -> float:
    """The spatial query feeding one raw INSERT … SELECT of pre-rendered rows into the outbox
    (same table, indexes and foreign keys), committed: the least a bulk enqueue can cost."""
    with psycopg.connect(libpq) as conn:
        started = time.perf_counter()
        conn.execute(_FLOOR_WRITE, {"body": "【Crewline】停供通知：Helsinki因故障暂停供应，预计01-05 "
                                            "16:00恢复。给您带来不便，敬请谅解。", "id": outage_id})
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DELETE FROM sms_messages WHERE outage_ref = 'FLOOR'")
        conn.commit()
        return elapsed


def run(settings: Settings, *, points: int = 100_000, repeat: int = 3, progress=None) -> dict:
    configure_logging("WARNING", False)  # stdout carries the one JSON object
    url = bench_database(settings, name="crewline_bench_outage")
    libpq = url.replace("+psycopg", "")
    populate_s = populate(libpq, points, progress)
    user_id = ensure_bench_user(libpq, "bench-dispatcher", role="dispatcher",
                                full_name="Bench dispatcher")
    engine = make_engine(settings.model_copy(update={"database_url": url}), pool_size=2)
    sessions = make_sessionmaker(engine)
    actor = Principal(user_id, "bench-dispatcher", Role.dispatcher)
    policy = service.OutagePolicy.from_settings(settings)
    now = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai, outside quiet hours
    body = OutageIn(type="water_outage", area_name="Helsinki", area={"kind": "polygon",
                                                                     "geometry": AREA},
                    etr=now + timedelta(hours=4))
    declare_s, etr_s, floor_s, write_s = [], [], [], []
    queued = etr_queued = affected = selected = 0
    try:
        for _ in range(repeat):
            _reset(libpq)
            with sessions() as session:
                started = time.perf_counter()
                outage = service.declare(session, body, actor, now, policy)
                session.commit()
                declare_s.append(time.perf_counter() - started)
            with sessions() as session:
                started = time.perf_counter()
                service.update(session, outage.id, OutagePatch(etr=now + timedelta(hours=6)),
                               actor, now, policy)
                session.commit()
                etr_s.append(time.perf_counter() - started)
            seconds, selected = _floor(libpq, outage.id)
            floor_s.append(seconds)
            write_s.append(_floor_write(libpq, outage.id))
            with psycopg.connect(libpq) as conn:
                queued, etr_queued = conn.execute(
                    "SELECT count(*) FILTER (WHERE template = 'outage_notice'), "
                    "count(*) FILTER (WHERE template = 'etr_change') FROM sms_messages").fetchone()
                affected = conn.execute("SELECT (data->>'affected_customers')::int FROM "
                                        "outage_events WHERE kind = 'declared'").fetchone()[0]
    finally:
        engine.dispose()
    declare_m, etr_m, floor_m, write_m = (statistics.median(v)
                                          for v in (declare_s, etr_s, floor_s, write_s))
    return {
        "bench": "outage", "service_points_in_area": selected, "affected_customers": affected,
        "service_points_total": points + points // 10, "populate_s": round(populate_s, 2),
        "repeat": repeat,
        "declare_s": round(declare_m, 3), "declare_runs_s": [round(v, 3) for v in declare_s],
        "notices_queued": queued, "queued_per_s": round(queued / declare_m),
        "etr_change_s": round(etr_m, 3), "etr_updates_queued": etr_queued,
        "floor_spatial_count_s": round(floor_m, 3),
        "ratio_declare_to_floor": round(declare_m / floor_m, 1),
        "floor_raw_insert_select_s": round(write_m, 3),
        "ratio_declare_to_insert_floor": round(declare_m / write_m, 2),
        "target_s": 3.0, "meets_target": declare_m <= 3.0,
    }
