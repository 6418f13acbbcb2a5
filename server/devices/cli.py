"""`crewline bridge`: run the MQTT uplink bridge until SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import threading


def bridge() -> None:
    """Run the handset MQTT bridge (uplink → database → ack); run several for redundancy."""
    from server.core.clock import SystemClock
    from server.core.db import make_engine, make_sessionmaker
    from server.core.logging import configure_logging
    from server.devices.bridge import Bridge
    from server.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    engine = make_engine(settings, pool_size=4)
    b = Bridge(settings, make_sessionmaker(engine), SystemClock())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    b.start()
    print(f"bridge {b.client_id} subscribed to {b.subscription}", flush=True)
    try:
        stop.wait()
    finally:
        b.stop()
        engine.dispose()


def simulate(crews: int = 3, speed_kmh: float = 40.0, work_s: float = 30.0,
             fix_every_s: float = 2.0, batch_fixes: int = 5, minutes: float = 0.0,
             var_dir: str = "var") -> None:
    """Run N simulated handsets (one per crew) that take their jobs over MQTT, drive the road
    network, arrive, resolve, scan tags and report positions; until Ctrl-C (or --minutes)."""
    from pathlib import Path

    from server.core.clock import SystemClock
    from server.core.db import make_engine, make_sessionmaker
    from server.core.logging import configure_logging
    from server.devices.simulator import Simulator, provision
    from server.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    engine = make_engine(settings, pool_size=4)
    make_session = make_sessionmaker(engine)
    sim_dir = Path(var_dir) / "simulator"
    devices = provision(settings, make_session, SystemClock(), crews, sim_dir)
    sim = Simulator(settings, make_session, SystemClock(), devices, sim_dir, speed_kmh=speed_kmh,
                    work_s=work_s, fix_every_s=fix_every_s, batch_fixes=batch_fixes)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sim.start()
    print(f"simulating {len(devices)} crews: " + ", ".join(
        f"{d.username}/{d.device_id}" for d in devices) + f" (credentials in {sim_dir})",
        flush=True)
    try:
        stop.wait(minutes * 60 if minutes > 0 else None)
    finally:
        sim.stop()
        engine.dispose()
        print(f"jobs completed: {len(sim.completed)}", flush=True)
