"""`crewline bench inspections`: visit records appended to the hash chains, and verification.

1. Visits per second through the service (inspections.service.submit_visit: site and checklist
   lookups, evidence, the chain-head row lock, canonical JSON + SHA-256, INSERT, head UPDATE),
   one transaction per visit on one connection, spread over S sites.
2. The same with W threads all appending to ONE site (the per-site lock serialises them) and
   with W threads on W different sites: what the lock costs under contention.
3. Verification: records re-hashed and re-linked per second (verify_chains over everything).
4. The floor, in the same run on the same connection: a raw INSERT of the same record rows into
   a plain copy of the table (same columns, indexes and checks; no lock, no hashing), one
   transaction per row. ``visits_vs_floor`` = visit rate / floor rate.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from server.bench.common import bench_database, ensure_bench_user, percentile
from server.settings import Settings

TECH = "bench-technician"
ITEMS = [{"key": "pressure", "label": "Pressure", "kind": "number", "unit": "bar", "min": 2,
          "max": 6},
         {"key": "valve", "label": "Valve", "kind": "choice", "options": ["open", "closed"]},
         {"key": "remarks", "label": "Remarks", "kind": "text", "required": False}]


def _setup(engine, sites: int) -> tuple[int, list[int]]:
    tech = ensure_bench_user(engine.url.set(drivername="postgresql").render_as_string(
        hide_password=False), TECH, role="technician", full_name="Bench technician")
    with engine.begin() as conn:
        conn.execute(text(
            "TRUNCATE inspection_alerts, inspection_chain_heads, inspection_records, "
            "inspection_round_sites, inspection_rounds, inspection_plan_sites, inspection_plans, "
            "inspection_site_profiles, inspection_checklist_templates, inspection_site_types, "
            "inspection_attachments, tag_scans, tag_events, tags, sites RESTART IDENTITY CASCADE"))
        site_ids = conn.execute(text(
            "INSERT INTO sites (name, kind, location, address) "
            "SELECT 'bench site ' || g, 'site', ST_SetSRID(ST_MakePoint(24.9 + g * 1e-4, 60.17), "
            "4326), NULL FROM generate_series(1, :n) g RETURNING id"), {"n": sites}).scalars().all()
    return tech, list(site_ids)


def run(settings: Settings, *, visits: int = 2000, sites: int = 50, threads: int = 4,
        per_thread: int = 100, progress) -> dict:
    from server.auth.service import Principal
    from server.core.db import make_engine, make_sessionmaker, transaction
    from server.inspections import service
    from server.inspections.schemas import SiteTypeIn, VisitIn
    from server.models import Role

    url = bench_database(settings)
    bench_settings = settings.model_copy(update={"database_url": url})
    engine = make_engine(bench_settings, pool_size=threads + 2)
    sessions = make_sessionmaker(engine)
    cfg = service.InspectionConfig.from_settings(bench_settings)
    now = datetime.now(UTC)
    try:
        tech_id, site_ids = _setup(engine, sites)
        tech = Principal(tech_id, TECH, Role.technician)
        with transaction(sessions) as session:
            st = service.create_site_type(session, SiteTypeIn(code="bench", name="bench",
                                                              items=ITEMS), tech, now)
            for sid in site_ids:
                session.execute(text(
                    "INSERT INTO inspection_site_profiles (site_id, site_type_id, updated_at) "
                    "VALUES (:s, :t, :now)"), {"s": sid, "t": st.id, "now": now})

        def body(i: int, site_id: int) -> VisitIn:
            return VisitIn(site_id=site_id, started_at=now - timedelta(minutes=5),
                           finished_at=now, position={"lon": 24.9 + site_id * 1e-4,
                                                      "lat": 60.17},
                           accuracy_m=5.0, values={"pressure": 2 + (i % 50) / 10,
                                                   "valve": "open", "remarks": f"visit {i}"})

        latencies = []
        with progress() as bar:
            task = bar.add_task("visits (chain append)", total=visits)
            start = time.perf_counter()
            for i in range(visits):
                t0 = time.perf_counter()
                with transaction(sessions) as session:
                    service.submit_visit(session, body(i, site_ids[i % sites]), tech, now, cfg)
                latencies.append(time.perf_counter() - t0)
                bar.advance(task)
            visit_elapsed = time.perf_counter() - start

        def parallel(site_of) -> float:
            barrier = threading.Barrier(threads)
            errors: list[BaseException] = []

            def worker(w: int) -> None:
                try:
                    barrier.wait()
                    for j in range(per_thread):
                        with transaction(sessions) as session:
                            service.submit_visit(session, body(j, site_of(w)), tech, now, cfg)
                except BaseException as exc:  # reported after the join
                    errors.append(exc)

            ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
            t0 = time.perf_counter()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            if errors:
                raise errors[0]
            return threads * per_thread / (time.perf_counter() - t0)

        hot_rate = parallel(lambda w: site_ids[0])
        spread_rate = parallel(lambda w: site_ids[1 + w % (sites - 1)])

        with sessions() as session:
            t0 = time.perf_counter()
            verified = service.verify_chains(session)
            verify_elapsed = time.perf_counter() - t0
        if not verified.ok:
            raise RuntimeError(f"bench chains do not verify: {verified.problems[:3]}")

        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS bench_inspection_floor"))
            conn.execute(text("CREATE TABLE bench_inspection_floor "
                              "(LIKE inspection_records INCLUDING ALL)"))
            rows = [dict(r._mapping) for r in conn.execute(text(
                "SELECT * FROM inspection_records ORDER BY id LIMIT :n"), {"n": visits})]
        cols = [c for c in rows[0] if c != "id"]
        quoted = ", ".join(f'"{c}"' for c in cols)
        insert = text(f"INSERT INTO bench_inspection_floor ({quoted}) "
                      f"VALUES ({', '.join(':' + c for c in cols)})")

        def params(r: dict) -> dict:
            return {c: (json.dumps(r[c]) if c in ("values", "attachments", "flags") else r[c])
                    for c in cols}

        with engine.connect() as conn, progress() as bar:
            task = bar.add_task("floor: raw INSERT", total=len(rows))
            start = time.perf_counter()
            for r in rows:
                with conn.begin():
                    conn.execute(insert, params(r))
                bar.advance(task)
            floor_elapsed = time.perf_counter() - start
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE bench_inspection_floor"))
    finally:
        engine.dispose()
    visit_rate = visits / visit_elapsed
    floor_rate = len(rows) / floor_elapsed
    return {"visits": visits, "sites": sites, "visits_per_s": round(visit_rate, 1),
            "visit_p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "visit_p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "threads": threads, "one_site_parallel_per_s": round(hot_rate, 1),
            "many_sites_parallel_per_s": round(spread_rate, 1),
            "verify_records": verified.records,
            "verify_records_per_s": round(verified.records / verify_elapsed, 1),
            "floor_insert_per_s": round(floor_rate, 1),
            "visits_vs_floor": round(visit_rate / floor_rate, 3)}
