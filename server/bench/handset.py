"""`crewline bench handset`: the technician's app on a desktop (Kivy under an X server).

1. **Cold start to the job list**: from spawning ``python -m mobile_app`` (a paired handset with
   20 jobs in its store) to the first frame of the job list, measured by the app's wall clock
   after that frame. Target: <= 2 s. Runs ``starts`` times; the first run is the coldest.
2. **500 jobs**: the job list rebuilt from the store (view-model rows + RecycleView data), then
   scrolled top to bottom one step per frame; frame times (Kivy caps at 60 fps) and how many row
   widgets the RecycleView needed for 500 rows.
3. **Outbox flush**: 5,000 position events queued offline in the handset's SQLite outbox; the
   link connects and publishes them (QoS 1); events/s until a subscriber on the broker has them
   all. **Floor**, same run, same broker, same payloads: a bare paho client publishing them
   (QoS 1, no outbox). ``flush_vs_floor`` = flush rate / floor rate.

Needs Mosquitto and an X server: uses ``$DISPLAY`` if set, else starts ``Xvfb`` itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    from server.devstack.base import free_port

    return free_port()


def _order(i: int, now: datetime) -> dict:
    return {"v": 1, "seq": i, "ticket_id": i, "revision": 1, "status": "assigned",
            "category": "repair", "priority": ("emergency", "high", "normal", "low")[i % 4],
            "summary": f"水管漏水 leaking pipe {i}", "description": "地下室 basement",
            "address": f"Mannerheimintie {i}, Helsinki",
            "location": {"lon": 24.90 + (i % 100) * 1e-3, "lat": 60.15 + (i // 100) * 1e-3},
            "customer_name": "李明", "customer_phone": "+8613800138000",
            "due_at": (now + timedelta(minutes=30 + i)).isoformat(), "assigned_at": now.isoformat()}


def _data_dir(root: Path, jobs: int, broker_port: int, device: tuple[str, str]) -> Path:
    from mobile_app.viewmodels.store import HandsetStore, Pairing

    d = root / f"handset-{jobs}-{secrets.token_hex(3)}"
    store = HandsetStore(d / "handset.sqlite")
    store.set_pairing(Pairing("http://127.0.0.1:9", device[0], device[1], "127.0.0.1", broker_port,
                              False, 1, "bench"))
    store.set_pref("language", "zh-CN")
    now = datetime.now(UTC)
    for i in range(1, jobs + 1):
        store.upsert_job(_order(i, now), now)
    store.close()
    return d


class _App:
    def __init__(self, data: Path, display: str) -> None:
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREWLINE_")}
        env.update(CREWLINE_HANDSET_DATA=str(data), CREWLINE_HANDSET_DRIVER=str(self.port),
                   CREWLINE_HANDSET_READER="none", CREWLINE_HANDSET_GPS="simulated",
                   DISPLAY=display, KIVY_NO_ARGS="1", KIVY_HOME=str(data / "kivy"),
                   KIVY_NO_CONSOLELOG="1")
        self.spawned_at = time.time()
        self.proc = subprocess.Popen([sys.executable, "-m", "mobile_app"], env=env, cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the handset app did not start") from None
                time.sleep(0.02)
        self.f = self.sock.makefile("rwb")

    def __call__(self, cmd: str, **args):
        self.f.write(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
        self.f.flush()
        answer = json.loads(self.f.readline())
        if not answer["ok"]:
            raise RuntimeError(answer["error"])
        return answer["result"]

    def wait_jobs_drawn(self) -> dict:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = self("state")
            if st.get("jobs_drawn_at"):
                return st
            time.sleep(0.02)
        raise RuntimeError("the job list was never drawn")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self("stop")
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.sock.close()


@contextlib.contextmanager
def _display():
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if not shutil.which("Xvfb"):
        raise RuntimeError("no $DISPLAY and no Xvfb (Debian package xvfb)")
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "720x1280x24",
                             "-nolisten", "tcp"], pass_fds=(w,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    try:
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def _counter(broker, topic: str, expected: int):
    """A subscriber (the server account) that sets an event when ``expected`` messages came."""
    import paho.mqtt.client as mqtt

    from server.devices.bridge import MqttTarget

    target = MqttTarget.parse(broker.url())
    got = {"n": 0}
    done, ready = threading.Event(), threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-counter-" + secrets.token_hex(3),
                    protocol=mqtt.MQTTv5)
    c.username_pw_set(target.username, target.password)

    def on_message(client, userdata, msg) -> None:
        got["n"] += 1
        if got["n"] >= expected:
            done.set()

    c.on_message = on_message
    c.on_subscribe = lambda *a: ready.set()
    c.on_connect = lambda client, *a: client.subscribe(topic, qos=1)
    c.connect(target.host, target.port)
    c.loop_start()
    if not ready.wait(10):
        raise RuntimeError("the counting subscriber did not subscribe")
    return c, done, got


def bench_flush(broker, root: Path, events: int) -> dict:
    import paho.mqtt.client as mqtt

    from mobile_app.link import protocol
    from mobile_app.link.client import HandsetLink

    device, password = "hs-bench" + secrets.token_hex(4), secrets.token_urlsafe(16)
    broker.add_user(device, password)
    now = datetime.now(UTC)
    link = HandsetLink("127.0.0.1", broker.bound_port, device, password, root / "flush.sqlite")
    for i in range(events):  # offline: every event goes to the outbox only
        link.send("positions", fixes=[{"lon": 24.9 + i * 1e-6, "lat": 60.17,
                                       "at": (now + timedelta(milliseconds=i)).isoformat()}])
    payloads = [p for _, _, p in link.outbox.pending()]
    topic = protocol.up_topic(device, "positions")
    counter, done, got = _counter(broker, topic, events)
    t0 = time.perf_counter()
    link.start()
    ok = done.wait(300)
    flush_s = time.perf_counter() - t0
    link.stop()
    counter.loop_stop()
    counter.disconnect()
    if not ok:
        raise RuntimeError(f"only {got['n']} of {events} events arrived")

    counter, done, got = _counter(broker, topic, events)
    raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device + "-raw", protocol=mqtt.MQTTv5)
    raw.username_pw_set(device, password)
    t0 = time.perf_counter()
    raw.connect("127.0.0.1", broker.bound_port)
    raw.loop_start()
    for p in payloads:
        raw.publish(topic, p, qos=1)
    ok = done.wait(300)
    floor_s = time.perf_counter() - t0
    raw.loop_stop()
    raw.disconnect()
    counter.loop_stop()
    counter.disconnect()
    if not ok:
        raise RuntimeError(f"floor: only {got['n']} of {events} events arrived")
    return {"events": events, "flush_s": round(flush_s, 3),
            "flush_events_per_s": round(events / flush_s), "floor_events_per_s": round(events / floor_s),
            "flush_vs_floor": round(floor_s / flush_s, 3)}


def run(starts: int = 5, jobs: int = 500, events: int = 5000) -> dict:
    from server.devstack.mosquitto import MosquittoBroker

    root = Path(tempfile.mkdtemp(prefix="crewline-bench-handset-"))
    root.chmod(0o755)
    broker = MosquittoBroker(root / "mqtt", port=_free_port())
    broker.start()
    out: dict = {"bench": "handset"}
    try:
        device, password = "hs-benchapp" + secrets.token_hex(3), secrets.token_urlsafe(16)
        broker.add_user(device, password)
        with _display() as display:
            cold = []
            for _ in range(starts):
                app = _App(_data_dir(root, 20, broker.bound_port, (device, password)), display)
                st = app.wait_jobs_drawn()
                cold.append(st["jobs_drawn_at"] - app.spawned_at)
                app.stop()
            out["cold_start_s"] = {"first": round(cold[0], 3), "median": round(statistics.median(cold), 3),
                                   "max": round(max(cold), 3), "runs": starts, "target": 2.0,
                                   "ok": max(cold) <= 2.0}
            app = _App(_data_dir(root, jobs, broker.bound_port, (device, password)), display)
            st = app.wait_jobs_drawn()
            out["list"] = {"cold_start_s": round(st["jobs_drawn_at"] - app.spawned_at, 3),
                           **app("bench_list", frames=120)}
            app.stop()
        out["flush"] = bench_flush(broker, root, events)
    finally:
        broker.destroy()
        shutil.rmtree(root, ignore_errors=True)
    return out
