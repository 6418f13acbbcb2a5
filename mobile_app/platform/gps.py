"""GPS behind one small interface: plyer on Android, gpsd or a simulation on desktop.

``current()`` returns the latest fix (or None) without blocking; sources that push fixes (plyer,
gpsd) keep the newest one from their own thread.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol


@dataclass(frozen=True)
class Fix:
    lon: float
    lat: float
    at: datetime
    accuracy_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None


class GpsSource(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def current(self) -> Fix | None: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


class NoGps:
    name = "none"

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def current(self) -> Fix | None:
        return None


class SimulatedGps:
    """A position that stays put, or drives towards a target at ``speed_mps`` (desktop, tests)."""

    name = "simulated"

    def __init__(self, lon: float, lat: float, *, clock: Callable[[], datetime] = _utc_now,
                 accuracy_m: float = 5.0) -> None:
        self._fix = Fix(lon, lat, clock(), accuracy_m, 0.0, None)
        self._clock = clock
        self._target: tuple[float, float] | None = None
        self.speed_mps = 12.0
        self._lock = threading.Lock()

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def drive_to(self, lon: float, lat: float, speed_mps: float = 12.0) -> None:
        with self._lock:
            self._target, self.speed_mps = (lon, lat), speed_mps

    def place(self, lon: float, lat: float) -> None:
        with self._lock:
            self._target = None
            self._fix = Fix(lon, lat, self._clock(), self._fix.accuracy_m, 0.0, None)

    def current(self) -> Fix | None:
        with self._lock:
            now = self._clock()
            fix = self._fix
            if self._target is not None:
                dt = max(0.0, (now - fix.at).total_seconds())
                dx = (self._target[0] - fix.lon) * 111_320 * math.cos(math.radians(fix.lat))
                dy = (self._target[1] - fix.lat) * 110_540
                dist = math.hypot(dx, dy)
                step = self.speed_mps * dt
                if dist <= step or dist == 0:
                    fix = Fix(self._target[0], self._target[1], now, fix.accuracy_m, 0.0, None)
                    self._target = None
                else:
                    f = step / dist
                    heading = math.degrees(math.atan2(dx, dy)) % 360
                    fix = Fix(fix.lon + (self._target[0] - fix.lon) * f,
                              fix.lat + (self._target[1] - fix.lat) * f, now, fix.accuracy_m,
                              self.speed_mps, heading)
            else:
                fix = replace(fix, at=now)
            self._fix = fix
            return fix


class GpsdGps:
    """gpsd's JSON protocol (``?WATCH={"enable":true,"json":true}``), TPV reports with mode >= 2."""

    name = "gpsd"

    def __init__(self, address: str = "127.0.0.1:2947") -> None:
        host, _, port = address.partition(":")
        self.host, self.port = host or "127.0.0.1", int(port or 2947)
        self._fix: Fix | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gpsd", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def current(self) -> Fix | None:
        return self._fix

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with socket.create_connection((self.host, self.port), timeout=5) as s:
                    s.sendall(b'?WATCH={"enable":true,"json":true};\n')
                    buf = b""
                    while not self._stop.is_set():
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        buf += chunk
                        while b"\n" in buf:
                            line, buf = buf.split(b"\n", 1)
                            self._line(line)
            except OSError as exc:
                self.error = str(exc)
            self._stop.wait(5)

    def _line(self, line: bytes) -> None:
        fix = parse_tpv(line)
        if fix is not None:
            self._fix = fix


def parse_tpv(line: bytes | str) -> Fix | None:
    """A gpsd TPV report with a 2D/3D fix as a Fix, anything else None."""
    try:
        report = json.loads(line)
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get("class") != "TPV" or report.get("mode", 0) < 2:
        return None
    if "lat" not in report or "lon" not in report:
        return None
    at = datetime.fromisoformat(report["time"].replace("Z", "+00:00")) if report.get("time") \
        else _utc_now()
    err = [report[k] for k in ("epx", "epy") if isinstance(report.get(k), int | float)]
    return Fix(float(report["lon"]), float(report["lat"]), at,
               max(err) if err else None, report.get("speed"), report.get("track"))


class PlyerGps:
    """Android's location service through plyer (needs ACCESS_FINE_LOCATION, asked at start)."""

    name = "android"

    def __init__(self, min_time_ms: int = 5000, min_distance_m: float = 5.0) -> None:
        self.min_time_ms, self.min_distance_m = min_time_ms, min_distance_m
        self._fix: Fix | None = None

    def start(self) -> None:
        from plyer import gps  # imported here: plyer's Android backend needs pyjnius

        gps.configure(on_location=self._on_location)
        gps.start(minTime=self.min_time_ms, minDistance=self.min_distance_m)

    def stop(self) -> None:
        from plyer import gps

        gps.stop()

    def current(self) -> Fix | None:
        return self._fix

    def _on_location(self, **kw) -> None:
        self._fix = Fix(float(kw["lon"]), float(kw["lat"]), _utc_now(), kw.get("accuracy"),
                        kw.get("speed"), kw.get("bearing"))
