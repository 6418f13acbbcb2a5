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
