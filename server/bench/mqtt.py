"""`crewline bench mqtt`: uplink events persisted and acked end to end, against the raw broker.

Everything real and private to the run: a Mosquitto 2 broker in a temporary directory (password
file + ACL as in production, every handset with its own credentials), the bench database
(server.bench.common.bench_database), ``bridges`` × ``crewline bridge`` processes sharing the
uplink through the ``$share/crewline/…`` subscription.

Load: ``handsets`` simulated handsets (paho-mqtt 2 clients, MQTT v5, each its own device id,
username and password), spread over ``procs`` load-generator processes, each sending
``messages / handsets`` ``positions`` events (``fixes`` GPS fixes each, the payload a handset
batches). Each handset keeps at most ``window`` events unacknowledged, as its outbox would.

1. Floor, same run, same payloads, same processes: the raw Mosquitto publish → subscribe
   throughput — one plain subscriber process on the uplink filter counts the messages; handsets
   publish QoS 1 with ``window`` in flight (PUBACK-paced). No database.
2. End to end: the bridges receive, validate, store in ``device_messages`` (batched multi-row
   INSERT … ON CONFLICT DO NOTHING RETURNING), commit, then publish the application ack; a
   handset counts an event when its ack arrives. Measured from the first publish to the last ack.
   The applier (positions are deferred) then writes the fixes to the crew positions; the time it
   needs to drain is reported separately (``apply_drain_s``), not counted in the rate.
3. Exactly once: the set of msg_ids in ``device_messages`` equals the set sent.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from server.bench.common import bench_database
from server.settings import Settings

DEVICE_PASSWORD = "bench-device-password"
PREFIX = "hs-bench-"


def _device_ids(n: int) -> list[str]:
    return [f"{PREFIX}{i:04d}" for i in range(n)]


def _payloads(device_id: str, n: int, fixes: int) -> list[tuple[str, bytes]]:
    from mobile_app.link import protocol

    now = datetime.now(UTC)
    out = []
    for i in range(n):
        m = protocol.uplink("positions", now, fixes=[
            {"lon": round(24.90 + (i * fixes + k) * 1e-5, 6), "lat": 60.17, "at": now.isoformat(),
             "accuracy_m": 5.0, "speed_mps": 8.0, "heading_deg": 90.0} for k in range(fixes)])
        out.append((m["msg_id"], protocol.encode("up", "positions", m)))
    return out


def _loadgen(port: int, devices: list[str], per: int, fixes: int, window: int, mode: str,
             ready, go, results) -> None:
    """One load-generator process: a paho client per handset, all driven by ONE thread over a
    selector (paho's external-loop API: loop_read / loop_write / loop_misc). A thread per client
    (``loop_start``) spent most of this process's CPU switching threads and fighting over the
    GIL — CPU the bridges and the broker then lacked on two cores; real handsets are separate
    devices and cost the server nothing of that."""
    import selectors

    import paho.mqtt.client as mqtt

    from mobile_app.link import protocol

    state = {"left": len(devices), "first": None, "last": None}
    sent_ids: list[str] = []
    clients = []
    failures: list[str] = []  # a refused connect/subscribe, a dropped connection: fail fast

    def on_connect(client, h, flags, rc, props) -> None:
        if rc.is_failure:
            failures.append(f"{h['device']}: connect refused: {rc}")
        h["connected"] = True

    def on_disconnect(client, h, flags, rc, props) -> None:
        failures.append(f"{h['device']}: connection lost: {rc}")

    def on_subscribe(client, h, mid, rcs, props) -> None:
        if not rcs or rcs[0].is_failure:
            failures.append(f"{h['device']}: subscribe refused: {rcs}")
        h["subscribed"] = True

    def finished_one(client, h) -> None:
        h["acked"] += 1
        if h["acked"] == len(h["payloads"]):
            state["left"] -= 1
            state["last"] = time.time()
        else:
            send_one(client, h)

    def send_one(client, h) -> None:
        i = h["next"]
        if i < len(h["payloads"]):
            h["next"] = i + 1
            client.publish(h["topic"], h["payloads"][i][1], qos=1)

    sel = selectors.DefaultSelector()
    stalled: set = set()  # clients whose socket took only part of what they had to send

    def flush(c) -> None:
        if c.want_write():
            check(c, c.loop_write())
            (stalled.add if c.want_write() else stalled.discard)(c)

    def check(c, rc) -> None:
        if rc != mqtt.MQTT_ERR_SUCCESS:
            failures.append(f"{c.user_data_get()['device']}: {mqtt.error_string(rc)}")

    def pump(until, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        misc_at = 0.0
        while not until():
            if failures:
                raise RuntimeError("; ".join(failures[:5]))
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(f"the handsets did not finish within {timeout:.0f} s")
            for key, _ in sel.select(0.05):
                c = key.data
                check(c, c.loop_read(100))
                flush(c)  # what callbacks published while reading
            for c in list(stalled):
                flush(c)
            if now - misc_at > 1.0:  # keepalive pings, retries
                misc_at = now
                for c, _ in clients:
                    check(c, c.loop_misc())
                    flush(c)

    try:
        for device_id in devices:
            payloads = _payloads(device_id, per, fixes)
            sent_ids.extend(m for m, _ in payloads)
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device_id,
                            protocol=mqtt.MQTTv5)
            c.username_pw_set(device_id, DEVICE_PASSWORD)
            c.max_inflight_messages_set(window)
            h = {"device": device_id, "payloads": payloads, "next": 0, "acked": 0,
                 "topic": protocol.up_topic(device_id, "positions"),
                 "connected": False, "subscribed": mode != "e2e"}
            c.user_data_set(h)
            c.on_connect, c.on_disconnect = on_connect, on_disconnect
            if mode == "e2e":
                # an application ack (only acks arrive on down/ack)
                c.on_message = lambda client, h, msg: finished_one(client, h)
                c.on_subscribe = on_subscribe
            else:
                c.on_publish = lambda client, h, mid, rc, props: finished_one(client, h)  # PUBACK
            c.connect("127.0.0.1", port, clean_start=True)
            sel.register(c.socket(), selectors.EVENT_READ, c)
            clients.append((c, h))
        pump(lambda: all(h["connected"] for _, h in clients), 60)
        if mode == "e2e":
            for c, h in clients:
                c.subscribe(protocol.down_topic(h["device"], "ack"), qos=1)
                flush(c)
            pump(lambda: all(h["subscribed"] for _, h in clients), 60)
        ready.put(len(clients))
        state["ready"] = True
        pump(go.is_set, 600)  # keepalive goes on while the other processes get ready
        state["first"] = time.time()
        for c, h in clients:
            for _ in range(window):
                send_one(c, h)
            flush(c)
        pump(lambda: state["left"] == 0, 600)
    except Exception as exc:  # reported to the parent, which fails the run with it
        state["error"] = f"{type(exc).__name__}: {exc}"
        if not state.get("ready"):
            ready.put(state["error"])  # the parent is waiting for "ready", not for results
    finally:
        results.put({"first": state["first"], "last": state["last"], "left": state["left"],
                     "sent": sent_ids if mode == "e2e" else [], "n": len(sent_ids),
                     "error": state.get("error")})
        for c, _ in clients:
            c.on_disconnect = None
            c.disconnect()


def _subscriber(port: int, user: str, password: str, total: int, ready, results) -> None:
    """The floor's consumer: counts uplink messages, notes when the last one arrived."""
    import paho.mqtt.client as mqtt

    from mobile_app.link import protocol

    state = {"n": 0}
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client, userdata, msg) -> None:
        state["n"] += 1
        if state["n"] == total:
            state["last"] = time.time()
            done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-floor-{os.getpid()}",
                    protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect("127.0.0.1", port, clean_start=True)
    c.subscribe(protocol.UPLINK_FILTER, qos=1)
    c.loop_start()
    subscribed.wait(30)
    ready.put(1)
    done.wait(600)
    results.put({"received": state["n"], "last": state.get("last")})
    c.disconnect()
    c.loop_stop()


def _prepare_database(libpq: str, devices: list[str], now: datetime) -> None:
    """A technician, a crew and a device row per handset (ids reused across runs)."""
    from server.auth.service import hash_password

    pw_hash = hash_password("bench-technician-not-used")
    with psycopg.connect(libpq) as conn:
        conn.execute("TRUNCATE device_attachments, device_downlink, device_messages, "
                     "device_dead_letters")
        for i, device_id in enumerate(devices):
            username = f"bench-tech-{i:04d}"
            uid = conn.execute(
                "INSERT INTO users (username, full_name, password_hash, role, language, is_active)"
                " VALUES (%s, %s, %s, 'technician', 'en', true) ON CONFLICT (username) DO UPDATE"
                " SET is_active = true RETURNING id", (username, username, pw_hash)).fetchone()[0]
            crew = conn.execute(
                "INSERT INTO crews (name, skills, shift, status, capacity, active, updated_at) "
                "VALUES (%s, '{}', 'on_shift', 'available', 1, true, now()) ON CONFLICT (name) DO "
                "UPDATE SET shift = 'on_shift' RETURNING id", (f"bench-mqtt-{i:04d}",)).fetchone()[0]
            conn.execute("INSERT INTO crew_members (crew_id, user_id) VALUES (%s, %s) "
                         "ON CONFLICT DO NOTHING", (crew, uid))
            conn.execute("DELETE FROM crew_positions WHERE crew_id = %s", (crew,))
            conn.execute("UPDATE crews SET position = NULL, position_at = NULL WHERE id = %s",
                         (crew,))
            conn.execute("INSERT INTO devices (id, user_id, name, password_hash, created_at, "
                         "created_by) VALUES (%s, %s, %s, 'x', %s, %s) ON CONFLICT (id) DO UPDATE "
                         "SET revoked_at = NULL, user_id = excluded.user_id",
                         (device_id, uid, device_id, now, uid))
        conn.commit()


def _broker(root: Path, devices: list[str]):
    from server.devstack.mosquitto import MosquittoBroker

    broker = MosquittoBroker(root, max_queued_messages=1_000_000)
    broker.init()
    lines = [f"{broker.server_user}:{broker.server_password}"]
    lines += [f"{d}:{DEVICE_PASSWORD}" for d in devices]
    broker.password_file.write_text("\n".join(lines) + "\n")
    broker._passwd("-U", str(broker.password_file))  # hash every line in place
    broker._fix_ownership()
    broker.start()
    return broker


def _run_phase(ctx, mode: str, port: int, devices: list[str], per: int, fixes: int, window: int,
               procs: int, server_auth: tuple[str, str]) -> dict:
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    workers = []
    sub = None
    if mode == "floor":
        sub_results = ctx.Queue()
        sub = ctx.Process(target=_subscriber, args=(port, *server_auth, per * len(devices), ready,
                                                    sub_results))
        sub.start()
        ready.get(timeout=60)
    chunks = [devices[i::procs] for i in range(procs)]
    for chunk in chunks:
        p = ctx.Process(target=_loadgen, args=(port, chunk, per, fixes, window, mode, ready, go,
                                               results))
        p.start()
        workers.append(p)
    for _ in workers:
        r = ready.get(timeout=300)
        if isinstance(r, str):  # a load generator failed while connecting
            for p in workers + ([sub] if sub else []):
                p.terminate()
            raise RuntimeError(f"{mode} phase: a load generator failed: {r}")
    go.set()
    parts = [results.get(timeout=900) for _ in workers]
    for p in workers:
        p.join(60)
    errors = [p["error"] for p in parts if p.get("error")]
    if errors:
        raise RuntimeError(f"{mode} phase: a load generator failed: {errors[0]}")
    first = min(p["first"] for p in parts)
    out = {"left": sum(p["left"] for p in parts), "sent": [m for p in parts for m in p["sent"]],
           "n": sum(p["n"] for p in parts)}
    if mode == "floor":
        got = sub_results.get(timeout=900)
        sub.join(60)
        out["received"] = got["received"]
        out["seconds"] = got["last"] - first if got["last"] else float("nan")
    else:
        last = max(p["last"] or float("nan") for p in parts)
        out["seconds"] = last - first
    return out


def _start_bridges(n: int, database_url: str, mqtt_url: str, logdir: Path) -> list:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREWLINE_")}
    env.update(CREWLINE_DATABASE_URL=database_url, CREWLINE_MQTT_URL=mqtt_url,
               CREWLINE_ENV="development", CREWLINE_LOG_LEVEL="WARNING")
    procs = []
    for i in range(n):
        out = (logdir / f"bridge-{i}.log").open("w")
        p = subprocess.Popen([sys.executable, "-m", "server.cli", "bridge"], env=env,
                             stdout=subprocess.PIPE, stderr=out, text=True, start_new_session=True)
        procs.append(p)
    for p in procs:
        line = p.stdout.readline()
        if "subscribed" not in line:
            raise RuntimeError(f"a bridge did not start: {line!r}; see {logdir}")
    return procs


def run(settings: Settings, *, handsets: int = 200, messages: int = 20_000, fixes: int = 5,
        window: int = 20, bridges: int = 2, procs: int = 2, keep: bool = False) -> dict:
    from sqlalchemy.engine import make_url

    per = max(1, messages // handsets)
    total = per * handsets
    devices = _device_ids(handsets)
    database_url = bench_database(settings)
    libpq = make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    _prepare_database(libpq, devices, datetime.now(UTC))
    root = Path(tempfile.mkdtemp(prefix="crewline-bench-mqtt-"))
    root.chmod(0o755)
    broker = _broker(root / "mqtt", devices)
    ctx = mp.get_context("spawn")
    bridge_procs: list = []
    try:
        auth = (broker.server_user, broker.server_password)
        floor = _run_phase(ctx, "floor", broker.bound_port, devices, per, fixes, window, procs,
                           auth)
        bridge_procs = _start_bridges(bridges, database_url, broker.url(), root)
        e2e = _run_phase(ctx, "e2e", broker.bound_port, devices, per, fixes, window, procs, auth)
        with psycopg.connect(libpq) as conn:
            stored = {str(r[0]) for r in conn.execute(
                "SELECT msg_id FROM device_messages WHERE device_id LIKE %s", (PREFIX + "%",))}
            rows = conn.execute("SELECT count(*) FROM device_messages WHERE device_id LIKE %s",
                                (PREFIX + "%",)).fetchone()[0]
        t0 = time.monotonic()
        pending = None
        while time.monotonic() - t0 < 600:
            with psycopg.connect(libpq) as conn:
                pending = conn.execute("SELECT count(*) FROM device_messages WHERE applied_at IS "
                                       "NULL").fetchone()[0]
            if pending == 0:
                break
            time.sleep(0.5)
        apply_drain = time.monotonic() - t0
        with psycopg.connect(libpq) as conn:
            fixes_stored = conn.execute(
                "SELECT count(*) FROM crew_positions p JOIN crews c ON c.id = p.crew_id "
                "WHERE c.name LIKE 'bench-mqtt-%'").fetchone()[0]
    finally:
        for p in bridge_procs:
            p.terminate()
        for p in bridge_procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.destroy()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    e2e_rate = total / e2e["seconds"] if e2e["seconds"] > 0 else float("nan")
    floor_rate = total / floor["seconds"] if floor["seconds"] > 0 else float("nan")
    sent = set(e2e["sent"])
    return {
        "bench": "mqtt",
        "handsets": handsets, "events": total, "fixes_per_event": fixes, "window": window,
        "bridges": bridges, "loadgen_processes": procs, "cpus": os.cpu_count(),
        "events_per_s": round(e2e_rate, 1),
        "fixes_per_s": round(e2e_rate * fixes, 1),
        "e2e_seconds": round(e2e["seconds"], 6),
        "floor_events_per_s": round(floor_rate, 1),
        "floor_seconds": round(floor["seconds"], 6),
        "floor_received": floor["received"],
        "ratio": round(e2e_rate / floor_rate, 3) if floor_rate == floor_rate else None,
        "target_events_per_s": 5000, "target_ratio": 0.3,
        "unacked_handsets": e2e["left"],
        "stored_rows": rows,
        "exactly_once": rows == len(stored) == total and stored == sent,
        "apply_drain_s": round(apply_drain, 2), "unapplied_after_drain": pending,
        "fixes_stored": fixes_stored,
        "run_id": uuid.uuid4().hex[:8],
    }

