"""`crewline bench console`: live map updates with 5,000 crews moving at 1 Hz.

Setup (a database of its own, crewline_bench_console): the Helsinki road graph, N active crews on
shift spread over the extract, a dispatcher. Then a real `crewline serve` and headless Chromium
(Debian's /usr/bin/chromium through Playwright) on /dispatch, signed in, live.

The mover moves every crew once a second, in 10 slices of N/10 crews every 100 ms (handsets do
not report in lockstep): one UPDATE of the crews' live position per slice, ``position_at =
now()`` — the position ingest's last step, so the triggers, the change table, the server's
poller, the batching, the WebSocket and the page are all exercised, not HTTP ingest (see `bench dispatch`
and `bench intake` for that).

Measured over ``seconds`` after a warm-up:
- browser: for every crew update the page receives, receive time − ``position_at`` (same
  machine, same clock): p50/p99 ms. It includes the batching window (crews are pushed at most
  once per ``live_position_interval_s``, 1 s), so about half a second is by design.
- ws_client: the same on a Python WebSocket client beside the browser (no rendering).
- long tasks: PerformanceObserver("longtask") in the page: tasks > 50 ms per minute, their total
  ms per minute, and frames per second (requestAnimationFrame count); the page's own time per
  crews message (JSON.parse + merge) and per redraw of the crew canvas, p50/p99.
- floor: the change feed alone — a record committed into ``live_changes`` on one connection,
  found by a raw poller on another reading every ``live_poll_interval_s`` (0.2 s) as the
  server does — in the same run. The ratio to the browser's p50 is mostly the batching window.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from server.bench.common import bench_database, ensure_bench_user, percentile, running_server
from server.dispatch import roads
from server.settings import Settings

USER = "bench-console"
PASSWORD = "bench-password-not-secret"
PBF = Path("var/data/Helsinki.osm.pbf")
CHROMIUM = "/usr/bin/chromium"
PREFIX = "console-bench-"
SHOT = Path("var/screenshots/console-bench.png")

_OBSERVE = """
window.__bench = {longTasks: [], frames: 0};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__bench.longTasks.push([e.startTime, e.duration]);
}).observe({type: "longtask", buffered: true});
(function frame() { window.__bench.frames += 1; requestAnimationFrame(frame); })();
"""


def _setup(url: str, crews: int, seed: int) -> tuple[list[int], tuple[float, float, float, float]]:
    libpq = url.replace("+psycopg", "")
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            if roads.network_size(session) == 0:
                roads.import_network(session, roads.read_ways(PBF))
                session.commit()
            bbox = tuple(session.execute(text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                "(SELECT ST_Extent(geom) AS e FROM road_edges) s")).one())
    finally:
        engine.dispose()
    rng = random.Random(seed)
    ensure_bench_user(libpq, USER, role="dispatcher", full_name="Bench dispatcher",
                      password=PASSWORD)
    with psycopg.connect(libpq) as conn:
        conn.execute("UPDATE crews SET active = false WHERE name LIKE %s AND id > 0",
                     (PREFIX + "%",))
        rows = [(f"{PREFIX}{i:05d}", rng.uniform(bbox[0], bbox[2]), rng.uniform(bbox[1], bbox[3]))
                for i in range(crews)]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO crews (name, skills, shift, status, capacity, active, position, "
                "position_at, heading_deg, speed_mps, updated_at) VALUES (%s, '{water_main}', "
                "'on_shift', 'available', 1, true, ST_SetSRID(ST_MakePoint(%s, %s), 4326), now(), "
                "0, 8, now()) ON CONFLICT (name) DO UPDATE SET active = true, position_at = now()",
                rows)
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM crews WHERE name LIKE %s AND active ORDER BY id", (PREFIX + "%",))]
    return ids, bbox


class Mover(threading.Thread):
    """Every crew once a second, in 10 slices; each crew drifts along its own heading."""

    def __init__(self, libpq: str, ids: list[int], bbox) -> None:
        super().__init__(daemon=True)
        self.libpq, self.ids, self.bbox = libpq, ids, bbox
        self.stop = threading.Event()
        self.updates = 0
        self.late_slices = 0

    def run(self) -> None:
        slices = [self.ids[i::10] for i in range(10)]
        with psycopg.connect(self.libpq, autocommit=True) as conn:
            tick = time.monotonic()
            while not self.stop.is_set():
                for ids in slices:
                    headings = [float((int(time.time()) * 3 + i) % 360) for i in ids]
                    conn.execute(
                        "UPDATE crews c SET position = ST_SetSRID(ST_MakePoint("
                        "  least(greatest(ST_X(c.position) + 0.00004 * sin(radians(h.h)), %s), %s),"
                        "  least(greatest(ST_Y(c.position) + 0.00002 * cos(radians(h.h)), %s), %s)),"
                        "  4326), position_at = now(), heading_deg = h.h, updated_at = now() "
                        "FROM unnest(%s::bigint[], %s::float8[]) AS h(id, h) WHERE c.id = h.id",
                        (self.bbox[0], self.bbox[2], self.bbox[1], self.bbox[3], ids, headings))
                    self.updates += len(ids)
                    tick += 0.1
                    wait = tick - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    else:
                        self.late_slices += 1
                    if self.stop.is_set():
                        return


def _poll_floor(libpq: str, poll_s: float, samples: int = 100) -> list[float]:
    """The change feed alone (ms): a change record committed on one connection, found by a raw
    poller on another that reads ``live_changes`` every ``poll_s`` as each server process does."""
    from server.console.live import _POLL, _START, ChangeFeed

    kind = f"bench-floor-{time.time_ns()}"
    committed: dict[int, float] = {}
    found: dict[int, float] = {}
    stop = threading.Event()

    def poll() -> None:
        with psycopg.connect(libpq, autocommit=True) as reader:
            feed = ChangeFeed(reader.execute(_START).fetchone()[0])
            while not stop.is_set():
                for k, ids in feed.take(reader.execute(_POLL, feed.params).fetchall()):
                    if k == kind:
                        found[ids[0]] = time.perf_counter()
                time.sleep(poll_s)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    time.sleep(poll_s * 2)
    rng = random.Random(1)
    with psycopg.connect(libpq, autocommit=True) as writer:
        for i in range(samples):
            writer.execute("INSERT INTO live_changes (kind, ids) VALUES (%s, %s)", (kind, [i]))
            committed[i] = time.perf_counter()
            time.sleep(rng.uniform(0, poll_s))
        time.sleep(poll_s * 3)
        stop.set()
        poller.join(5)
        writer.execute("DELETE FROM live_changes WHERE kind = %s", (kind,))
    return [(found[i] - committed[i]) * 1000 for i in committed if i in found]


async def _ws_client(base: str, token: str, stop: threading.Event, latencies: list[float]) -> None:
    import datetime as dt

    import websockets

    async with websockets.connect(base.replace("http://", "ws://") + "/api/v1/live",
                                  max_size=64 * 2**20) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            now = time.time()
            msg = json.loads(raw)
            if msg.get("type") == "crews":
                for c in msg["items"]:
                    latencies.append((now - dt.datetime.fromisoformat(c["at"]).timestamp()) * 1000)


def _stats(values: list[float]) -> dict:
    return {"n": len(values), "p50_ms": round(percentile(values, 50), 1),
            "p99_ms": round(percentile(values, 99), 1)}


def run(settings: Settings, *, crews: int = 5000, seconds: int = 30, warmup: int = 5,
        seed: int = 7, progress=None) -> dict:
    import httpx
    from playwright.sync_api import sync_playwright

    url = bench_database(settings, "crewline_bench_console")
    libpq = url.replace("+psycopg", "")
    ids, bbox = _setup(url, crews, seed)
    floor = _poll_floor(libpq, settings.live_poll_interval_s)
    with running_server(url) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.add_init_script(_OBSERVE)
        page.goto(base + "/dispatch")
        page.fill("#login-username", USER)
        page.fill("#login-password", PASSWORD)
        page.press("#login-password", "Enter")
        page.wait_for_selector('#live-state[data-state="on"]', timeout=60_000)
        page.wait_for_function(f"() => window.crewlineConsole.crews.crews.size >= {len(ids)}",
                               timeout=60_000)
        token = httpx.post(base + "/api/v1/auth/token", data={"username": USER,
                                                               "password": PASSWORD},
                           timeout=30).json()
        ws_lat: list[float] = []
        ws_stop = threading.Event()
        ws_thread = threading.Thread(target=lambda: asyncio.run(
            _ws_client(base, token["access_token"], ws_stop, ws_lat)), daemon=True)
        ws_thread.start()
        mover = Mover(libpq, ids, bbox)
        mover.start()
        time.sleep(warmup)
        page.evaluate("window.crewlineLive.latencies.length = 0; window.crewlineLive.record = true;"
                      "window.crewlineLive.handlerMs.length = 0; window.crewlineLive.drawMs.length = 0;"
                      "window.__bench.longTasks = [];"
                      "window.__bench.frames = 0; window.crewlineLive.crewItems = 0;"
                      "window.__bench.t0 = performance.now();")
        ws_lat.clear()
        updates0 = mover.updates
        time.sleep(seconds)
        result = page.evaluate("""() => ({
            latencies: window.crewlineLive.latencies.slice(),
            handlerMs: window.crewlineLive.handlerMs.slice(),
            drawMs: window.crewlineLive.drawMs.slice(),
            crewItems: window.crewlineLive.crewItems,
            longTasks: window.__bench.longTasks.filter(([start]) => start >= window.__bench.t0),
            frames: window.__bench.frames,
            elapsed: performance.now() - window.__bench.t0,
        })""")
        moved = mover.updates - updates0
        SHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOT))  # to look at: thousands of crews, nothing overlapping
        mover.stop.set()
        ws_stop.set()
        mover.join(5)
        ws_thread.join(5)
        browser.close()
    minutes = result["elapsed"] / 60000
    long_ms = [d for _, d in result["longTasks"]]
    browser_stats = _stats(result["latencies"])
    floor_stats = _stats(floor)
    return {
        "bench": "console", "crews": len(ids), "seconds": seconds,
        "position_updates_per_s": round(moved / seconds),
        "mover_late_slices": mover.late_slices,
        "browser": {**browser_stats, "crew_updates_per_s": round(result["crewItems"] / seconds)},
        "ws_client": _stats(ws_lat),
        "frame_budget": {"long_tasks_per_min": round(len(long_ms) / minutes, 1),
                         "long_task_ms_per_min": round(sum(long_ms) / minutes),
                         "longest_task_ms": round(max(long_ms, default=0)),
                         "fps": round(result["frames"] / (result["elapsed"] / 1000), 1),
                         "crews_message_ms_p50": round(percentile(result["handlerMs"], 50), 1),
                         "crews_message_ms_p99": round(percentile(result["handlerMs"], 99), 1),
                         "draw_ms_p50": round(percentile(result["drawMs"], 50), 1),
                         "draw_ms_p99": round(percentile(result["drawMs"], 99), 1)},
        "floor": {"what": "the change feed alone: a change record committed on one connection, "
                          "found by a raw poller on another (same poll interval)", **floor_stats},
        "poll_interval_ms": round(settings.live_poll_interval_s * 1000),
        "batching_interval_ms": round(settings.live_position_interval_s * 1000),
        "ratio_p50_browser_to_floor": round(browser_stats["p50_ms"] / floor_stats["p50_ms"], 1),
        "ratio_p50_browser_to_interval": round(
            browser_stats["p50_ms"] / (settings.live_position_interval_s * 1000), 2),
    }
