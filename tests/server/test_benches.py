"""Every `crewline bench NAME` runs end to end with the smallest sizes its options allow and
prints one well-formed JSON object (docs/benchmarks.md).

Smoke tests, not timed tests: nothing here checks a speed target. They check that each bench
still runs through the real CLI (a bench broke silently before: a poller thread died and its
floor came out empty), that its figures are there, positive and finite, that every ratio is its
rate divided by its floor within the rounding of the printed numbers, and the correctness flags
the benches report (exactly once, nothing sent twice). The benches create their own databases
(`crewline_bench*`) on the test cluster, beside the test database.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import require_binary
from tests.server.dispatch_support import ensure_pbf
from tests.support import cli_env

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _strict_constant(name: str):
    raise ValueError(f"{name} is not JSON (a figure came out undefined)")


@pytest.fixture
def bench(settings, tmp_path):
    """Run `crewline bench NAME OPTIONS…` in a subprocess against the test cluster and return
    the one JSON object it printed. The working directory is a scratch directory (no developer
    var/stack.env or .env can leak in) holding the road extract where the benches look for it."""
    data = tmp_path / "var" / "data"
    data.mkdir(parents=True)

    def run(name: str, *options: str, drop: tuple[str, ...] = ()) -> dict:
        if name in ("dispatch", "console"):
            (data / "Helsinki.osm.pbf").symlink_to(ensure_pbf())
        env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="test",
                      COLUMNS="200")
        for key in drop:
            env.pop(key, None)
        proc = subprocess.run([sys.executable, "-m", "server.cli", "bench", name, *options],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280)
        assert proc.returncode == 0, proc.stderr[-4000:]
        lines = proc.stdout.strip().splitlines()
        assert len(lines) == 1, proc.stdout  # one JSON object, nothing else on stdout
        result = json.loads(lines[0], parse_constant=_strict_constant)
        assert isinstance(result, dict)
        return result

    return run


def assert_keys(result: dict, *keys: str) -> None:
    missing = set(keys) - set(result)
    assert not missing, f"missing {sorted(missing)} in {result}"


def assert_positive(result: dict, *keys: str) -> None:
    for key in keys:
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), (key, value)
        assert math.isfinite(value) and value > 0, (key, value)


def assert_ratio(ratio: float, num: float, den: float, digits: tuple[int, int, int]) -> None:
    """``ratio`` (printed with ``digits[0]`` decimals) is ``num / den`` (printed with
    ``digits[1]`` and ``digits[2]``): the exact quotient of the unrounded figures lies in the
    interval their rounding allows, and the printed ratio within half a unit of it."""
    half = [0.5 * 10 ** -d for d in digits]
    assert den - half[2] > 0, (num, den)
    low = (num - half[1]) / (den + half[2]) - half[0]
    high = (num + half[1]) / (den - half[2]) + half[0]
    assert low - 1e-9 <= ratio <= high + 1e-9, f"{ratio} is not {num} / {den}"


def test_bench_lookup(bench):
    r = bench("lookup", "--customers", "10", "--queries", "5")
    assert_keys(r, "benchmark", "customers", "queries", "http_p50_ms", "http_p99_ms",
                "floor_sql_p50_ms", "floor_sql_p99_ms", "ratio_p50_floor_over_http",
                "target_p99_ms", "meets_target", "misses", "populate_s")
    assert (r["benchmark"], r["customers"], r["queries"]) == ("lookup", 10, 5)
    assert r["misses"] == 0  # every number typed in any format found its customer
    assert_positive(r, "http_p50_ms", "http_p99_ms", "floor_sql_p50_ms", "floor_sql_p99_ms")
    assert r["http_p50_ms"] <= r["http_p99_ms"] and r["floor_sql_p50_ms"] <= r["floor_sql_p99_ms"]
    assert_ratio(r["ratio_p50_floor_over_http"], r["floor_sql_p50_ms"], r["http_p50_ms"],
                 (3, 3, 2))
    assert isinstance(r["meets_target"], bool)


def test_bench_intake(bench):
    require_binary("wrk")
    r = bench("intake", "--seconds", "1", "--clients", "1", "--workers", "1",
              "--floor-tickets", "1")
    assert_keys(r, "benchmark", "seconds", "clients", "server_workers", "tickets_created",
                "requests", "non_2xx", "socket_errors", "api_tickets_per_s", "api_p50_ms",
                "api_p99_ms", "floor_raw_insert_tickets_per_s", "ratio",
                "floor_one_statement_tickets_per_s", "ratio_one_statement", "target_tickets_per_s",
                "target_ratio", "meets_target", "load_generator")
    assert (r["benchmark"], r["clients"], r["server_workers"]) == ("intake", 1, 1)
    assert r["non_2xx"] == 0 and r["socket_errors"] == 0
    # every answered request was committed; a few more may have been in flight at the end
    assert r["tickets_created"] >= r["requests"] > 0
    assert_positive(r, "seconds", "api_tickets_per_s", "api_p50_ms", "api_p99_ms",
                    "floor_raw_insert_tickets_per_s", "floor_one_statement_tickets_per_s")
    assert_ratio(r["ratio"], r["api_tickets_per_s"], r["floor_raw_insert_tickets_per_s"],
                 (3, 1, 1))
    assert_ratio(r["ratio_one_statement"], r["api_tickets_per_s"],
                 r["floor_one_statement_tickets_per_s"], (3, 1, 1))
    assert isinstance(r["meets_target"], bool)


def test_bench_dispatch(bench):
    r = bench("dispatch", "--crews", "20", "--tickets", "3", "--sample", "2")
    assert_keys(r, "benchmark", "crews", "tickets", "knn_candidates", "road_edges",
                "suggest_p50_ms", "suggest_p99_ms", "straight_suggest_p50_ms",
                "straight_suggest_p99_ms", "floor_knn_sql_p50_ms", "floor_knn_sql_p99_ms",
                "ratio_suggest_p50_to_floor", "suggest_non_200", "suggest_empty",
                "suggest_estimated_top1", "sample", "top1_agreement", "exhaustive_ms_p50",
                "eligible_crews_last_ticket", "target_p99_ms", "target_top1_agreement",
                "meets_target", "transport")
    assert (r["benchmark"], r["crews"], r["tickets"]) == ("dispatch", 20, 3)
    assert r["suggest_non_200"] == 0
    assert r["road_edges"] > 0 and r["knn_candidates"] > 0
    assert_positive(r, "suggest_p50_ms", "suggest_p99_ms", "straight_suggest_p50_ms",
                    "straight_suggest_p99_ms", "floor_knn_sql_p50_ms", "floor_knn_sql_p99_ms",
                    "exhaustive_ms_p50")
    assert_ratio(r["ratio_suggest_p50_to_floor"], r["suggest_p50_ms"], r["floor_knn_sql_p50_ms"],
                 (1, 2, 2))
    assert 1 <= r["sample"] <= 2 and 0 <= r["top1_agreement"] <= 1
    assert isinstance(r["meets_target"], bool)


def test_bench_tags(bench):
    r = bench("tags", "--verifications", "1", "--tags", "1", "--scans", "1")
    assert_keys(r, "tags", "sun_verifications", "sun_verify_per_s", "sun_verify_per_cpu_s",
                "sun_verify_cpu_us", "target_per_s", "meets_target", "scans", "ingest_per_s",
                "ingest_p50_ms", "ingest_p99_ms", "floor_insert_per_s", "ingest_vs_floor")
    assert (r["tags"], r["sun_verifications"], r["scans"]) == (1, 1, 1)
    assert_positive(r, "sun_verify_per_s", "sun_verify_per_cpu_s", "sun_verify_cpu_us",
                    "ingest_per_s", "ingest_p50_ms", "ingest_p99_ms", "floor_insert_per_s")
    assert_ratio(r["ingest_vs_floor"], r["ingest_per_s"], r["floor_insert_per_s"], (3, 1, 1))
    assert isinstance(r["meets_target"], bool)


def test_bench_inspections(bench):
    r = bench("inspections", "--visits", "1", "--sites", "2", "--threads", "1",
              "--per-thread", "1")
    assert_keys(r, "visits", "sites", "visits_per_s", "visit_p50_ms", "visit_p99_ms", "threads",
                "one_site_parallel_per_s", "many_sites_parallel_per_s", "verify_records",
                "verify_records_per_s", "floor_insert_per_s", "visits_vs_floor")
    assert (r["visits"], r["sites"], r["threads"]) == (1, 2, 1)
    # the serial visit, then one per thread on one site and one per thread on many sites
    assert r["verify_records"] == 3
    assert_positive(r, "visits_per_s", "visit_p50_ms", "visit_p99_ms", "one_site_parallel_per_s",
                    "many_sites_parallel_per_s", "verify_records_per_s", "floor_insert_per_s")
    assert_ratio(r["visits_vs_floor"], r["visits_per_s"], r["floor_insert_per_s"], (3, 1, 1))


def test_bench_sms(bench):
    r = bench("sms", "--notifications", "1", "--send", "1", "--mps", "100")
    assert_keys(r, "benchmark", "notifications", "queued", "enqueue_per_s",
                "floor_raw_insert_per_s", "enqueue_ratio", "mps", "sent", "send_seconds",
                "send_per_s", "send_vs_mps", "floor_provider_only_per_s", "send_vs_floor",
                "server_messages", "no_message_sent_twice", "target_send_vs_mps", "meets_target")
    assert (r["benchmark"], r["notifications"], r["mps"]) == ("sms", 1, 100)
    assert r["queued"] == r["sent"] == r["server_messages"] == 1
    assert r["no_message_sent_twice"] is True
    assert_positive(r, "enqueue_per_s", "floor_raw_insert_per_s", "send_seconds", "send_per_s",
                    "floor_provider_only_per_s")
    assert_ratio(r["enqueue_ratio"], r["enqueue_per_s"], r["floor_raw_insert_per_s"], (3, 1, 1))
    assert_ratio(r["send_vs_mps"], r["send_per_s"], r["mps"], (3, 1, 9))
    assert_ratio(r["send_vs_floor"], r["send_per_s"], r["floor_provider_only_per_s"], (3, 1, 1))
    assert isinstance(r["meets_target"], bool)


def test_bench_mqtt(bench):
    require_binary("mosquitto")
    require_binary("mosquitto_passwd")
    r = bench("mqtt", "--handsets", "1", "--messages", "1", "--fixes", "1", "--window", "1",
              "--bridges", "1", "--procs", "1")
    assert_keys(r, "bench", "handsets", "events", "fixes_per_event", "window", "bridges",
                "loadgen_processes", "cpus", "events_per_s", "fixes_per_s", "e2e_seconds",
                "floor_events_per_s", "floor_seconds", "floor_received", "ratio",
                "target_events_per_s", "target_ratio", "unacked_handsets", "stored_rows",
                "exactly_once", "apply_drain_s", "unapplied_after_drain", "fixes_stored",
                "run_id")
    assert (r["bench"], r["handsets"], r["events"], r["bridges"]) == ("mqtt", 1, 1, 1)
    assert r["exactly_once"] is True
    assert r["unacked_handsets"] == 0 and r["stored_rows"] == 1 and r["floor_received"] == 1
    assert r["unapplied_after_drain"] == 0 and r["fixes_stored"] == 1
    assert_positive(r, "events_per_s", "fixes_per_s", "e2e_seconds", "floor_events_per_s",
                    "floor_seconds")
    assert_ratio(r["ratio"], r["events_per_s"], r["floor_events_per_s"], (3, 1, 1))


def test_bench_outage(bench):
    r = bench("outage", "--points", "10", "--repeat", "1")
    assert_keys(r, "bench", "service_points_in_area", "affected_customers",
                "service_points_total", "populate_s", "repeat", "declare_s", "declare_runs_s",
                "notices_queued", "queued_per_s", "etr_change_s", "etr_updates_queued",
                "floor_spatial_count_s", "ratio_declare_to_floor", "floor_raw_insert_select_s",
                "ratio_declare_to_insert_floor", "target_s", "meets_target")
    assert r["bench"] == "outage" and r["repeat"] == 1 and len(r["declare_runs_s"]) == 1
    # ten points inside the polygon, one more east of it
    assert (r["service_points_in_area"], r["affected_customers"],
            r["service_points_total"]) == (10, 10, 11)
    assert 0 < r["notices_queued"] <= 10 and 0 < r["etr_updates_queued"] <= 10
    assert_positive(r, "declare_s", "queued_per_s", "etr_change_s", "floor_spatial_count_s",
                    "floor_raw_insert_select_s")
    assert_ratio(r["ratio_declare_to_floor"], r["declare_s"], r["floor_spatial_count_s"],
                 (1, 3, 3))
    assert_ratio(r["ratio_declare_to_insert_floor"], r["declare_s"],
                 r["floor_raw_insert_select_s"], (2, 3, 3))
    assert isinstance(r["meets_target"], bool)


def test_bench_handset(bench):
    require_binary("mosquitto")
    require_binary("Xvfb")
    # no $DISPLAY: the bench starts its own Xvfb (and opens no window on a developer's screen)
    r = bench("handset", "--starts", "1", "--jobs", "1", "--events", "1", drop=("DISPLAY",))
    assert_keys(r, "bench", "cold_start_s", "list", "flush")
    assert r["bench"] == "handset"
    cold, listed, flush = r["cold_start_s"], r["list"], r["flush"]
    assert_keys(cold, "first", "median", "max", "runs", "target", "ok")
    assert cold["runs"] == 1 and isinstance(cold["ok"], bool)
    assert_positive(cold, "first", "median", "max")
    assert_keys(listed, "cold_start_s", "rows", "refresh_ms", "frames", "scrolled_to",
                "frame_ms_mean", "frame_ms_p95", "floor_idle_frame_ms_mean", "scroll_vs_floor",
                "row_widgets")
    assert listed["rows"] == 1 and listed["row_widgets"] >= 1
    assert_positive(listed, "cold_start_s", "refresh_ms", "frame_ms_mean", "frame_ms_p95",
                    "floor_idle_frame_ms_mean")
    assert_ratio(listed["scroll_vs_floor"], listed["floor_idle_frame_ms_mean"],
                 listed["frame_ms_mean"], (3, 2, 2))
    assert_keys(flush, "events", "flush_s", "flush_events_per_s", "floor_events_per_s",
                "flush_vs_floor")
    assert flush["events"] == 1
    assert_positive(flush, "flush_s", "flush_events_per_s", "floor_events_per_s")
    assert_ratio(flush["flush_vs_floor"], flush["flush_events_per_s"],
                 flush["floor_events_per_s"], (3, 0, 0))


def test_bench_console(bench, tmp_path):
    require_binary("/usr/bin/chromium")  # where the bench looks for it
    pytest.importorskip("playwright.sync_api")
    r = bench("console", "--crews", "10", "--seconds", "2", "--warmup", "1")
    assert_keys(r, "bench", "crews", "seconds", "position_updates_per_s", "mover_late_slices",
                "browser", "ws_client", "frame_budget", "floor", "poll_interval_ms",
                "batching_interval_ms", "ratio_p50_browser_to_floor",
                "ratio_p50_browser_to_interval")
    assert (r["bench"], r["crews"], r["seconds"]) == ("console", 10, 2)
    assert_positive(r, "position_updates_per_s", "poll_interval_ms", "batching_interval_ms")
    # the page, the plain WebSocket client and the floor's raw poller each saw crew changes
    for part in ("browser", "ws_client", "floor"):
        assert_keys(r[part], "n", "p50_ms", "p99_ms")
        assert r[part]["n"] > 0, (part, r[part])
        assert_positive(r[part], "p50_ms", "p99_ms")
    assert_keys(r["frame_budget"], "long_tasks_per_min", "long_task_ms_per_min",
                "longest_task_ms", "fps", "crews_message_ms_p50", "crews_message_ms_p99",
                "draw_ms_p50", "draw_ms_p99")
    assert_positive(r["frame_budget"], "fps")
    assert_ratio(r["ratio_p50_browser_to_floor"], r["browser"]["p50_ms"], r["floor"]["p50_ms"],
                 (1, 1, 1))
    assert_ratio(r["ratio_p50_browser_to_interval"], r["browser"]["p50_ms"],
                 r["batching_interval_ms"], (2, 1, 0))
    shot = tmp_path / "var" / "screenshots" / "console-bench.png"
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_bench_mqtt_load_generator_fails_fast():
    """A handset the broker refuses fails the phase at once with the broker's reason, instead of
    the run waiting out its timeouts (the load generator drives its clients itself, so nothing
    reconnects behind its back)."""
    import multiprocessing as mp
    import shutil
    import tempfile
    import time

    from server.bench import mqtt as bench_mqtt

    require_binary("mosquitto")
    require_binary("mosquitto_passwd")
    root = Path(tempfile.mkdtemp(prefix="crewline-bench-test-"))  # the mosquitto user reaches it
    root.chmod(0o755)
    broker = bench_mqtt._broker(root / "mqtt", [])  # no handset has credentials
    try:
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="connect refused: Not authorized"):
            bench_mqtt._run_phase(mp.get_context("spawn"), "e2e", broker.bound_port,
                                  ["hs-bench-0000"], 1, 1, 1, 1,
                                  (broker.server_user, broker.server_password))
        assert time.monotonic() - started < 30
    finally:
        broker.destroy()
        shutil.rmtree(root, ignore_errors=True)
