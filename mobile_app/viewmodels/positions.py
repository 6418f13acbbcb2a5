"""Position reporting with a battery-friendly cadence: sample and send often while driving to a
job, rarely while working on site or idle. Fixes are batched into one ``positions`` uplink.

``tick(t)`` is called about once a second with a monotonic time; it samples the GPS when the
mode's sampling interval has passed and sends the batch when the sending interval has passed,
when the mode changes (so the server sees arrival promptly), or when the batch is full.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mobile_app.platform.gps import Fix, GpsSource

MAX_BATCH = 500  # the protocol's limit per positions message


@dataclass(frozen=True)
class Cadence:
    sample_s: float
    send_s: float


CADENCE = {
    "en_route": Cadence(sample_s=5, send_s=30),
    "on_site": Cadence(sample_s=120, send_s=600),
    "idle": Cadence(sample_s=60, send_s=300),
}


def mode_for(statuses: list[str]) -> str:
    if "en_route" in statuses:
        return "en_route"
    if "on_site" in statuses:
        return "on_site"
    return "idle"


class PositionReporter:
    def __init__(self, gps: GpsSource, send: Callable[[list[dict[str, Any]]], Any],
                 mode: Callable[[], str]) -> None:
        self.gps, self.send, self.mode = gps, send, mode
        self.batch: list[dict[str, Any]] = []
        self._last_sample: float | None = None
        self._last_send: float | None = None
        self._last_mode: str | None = None
        self.sent_batches = 0

    def tick(self, t: float) -> None:
        mode = self.mode()
        cadence = CADENCE[mode]
        changed = self._last_mode is not None and mode != self._last_mode
        self._last_mode = mode
        if self._last_send is None:
            self._last_send = t
        if changed or self._last_sample is None or t - self._last_sample >= cadence.sample_s:
            self._last_sample = t
            fix = self.gps.current()
            if fix is not None:
                self.batch.append(as_wire(fix))
        if self.batch and (changed or len(self.batch) >= MAX_BATCH
                           or t - self._last_send >= cadence.send_s):
            self.flush(t)

    def flush(self, t: float | None = None) -> None:
        if not self.batch:
            return
        fixes, self.batch = self.batch[:MAX_BATCH], self.batch[MAX_BATCH:]
        self.send(fixes)
        self.sent_batches += 1
        if t is not None:
            self._last_send = t


def as_wire(fix: Fix) -> dict[str, Any]:
    out: dict[str, Any] = {"lon": round(fix.lon, 7), "lat": round(fix.lat, 7),
                           "at": fix.at.isoformat()}
    if fix.accuracy_m is not None:
        out["accuracy_m"] = fix.accuracy_m
    if fix.speed_mps is not None:
        out["speed_mps"] = fix.speed_mps
    if fix.heading_deg is not None:
        out["heading_deg"] = fix.heading_deg % 360
    return out
