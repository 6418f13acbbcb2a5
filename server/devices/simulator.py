"""`crewline simulate --crews N`: N simulated handsets working real jobs over MQTT.

Each simulated crew is one technician's handset: a :class:`mobile_app.link.client.HandsetLink`
(the same library as the Kivy app: SQLite outbox, acks, resync) connected to the real broker with
real device credentials. It

* reports its position in batches (a fix every ``fix_every_s`` seconds, ``batch_fixes`` fixes per
  ``positions`` event) — parked when idle, moving along the road when driving;
* takes a job when a ``work_order`` arrives with status ``assigned``: sends ``accepted``, asks the
  server for the road route (dispatch's pgRouting route for its assignment; a straight line when
  there is no road graph), sends ``en_route`` and drives it at ``speed_kmh``;
* on arrival waits for the server's geofence to move the job ``on_site`` (it learns it from the
  updated ``work_order``; it sends ``on_site`` itself if that does not happen within a few
  seconds), works ``work_s`` seconds, scans the site's tag (a ``tag_scan``), reports a photo's
  metadata (``attachment``) and resolves the job (``resolved`` with a resolution code);
* drops the job on a ``cancel``.

Status events are sent one at a time, each after the previous one's application ack: with several
bridges on the shared subscription, two events of one handset may be handled in parallel, so a
handset must not rely on the order in which they arrive.

Setup (the simulator is a development tool running beside the server, so it uses the database
for what a human would do on the desk): it takes N active crews — those it simulated before, then
crews without members, then staffed ones, so the demo's own technicians (tech1…) keep their crews
for a real handset — (creating "Sim crew NNN" crews near central Helsinki when there are fewer),
uses each crew's first technician (creating ``sim-tech-NNN`` technicians for crews without one),
puts the crews on shift and registers one device per technician. Credentials are written to
``VAR_DIR/simulator/devices.json`` (mode 0600) and reused on the next run while the device is not
revoked; outboxes are ``VAR_DIR/simulator/<device id>.sqlite``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import random
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from gis.geo import distance_m
from mobile_app.link.client import HandsetLink
from server.auth.service import Principal
from server.core.clock import Clock
from server.devices.bridge import MqttTarget
from server.models import Crew, CrewMember, Device, Role, User
from server.settings import Settings

log = structlog.get_logger()

HELSINKI = (24.9384, 60.1699)


@dataclass
class SimDevice:
    device_id: str
    password: str
    user_id: int
    username: str
    crew_id: int


# -- provisioning ------------------------------------------------------------------------------------

def _technician(session: Session, crew: Crew, now: datetime) -> User:
    from server.auth.service import create_user

    user = session.scalar(select(User).join(CrewMember, CrewMember.user_id == User.id).where(
        CrewMember.crew_id == crew.id, User.role == Role.technician.value, User.is_active)
        .order_by(User.id).limit(1))
    if user is not None:
        return user
    username = f"sim-tech-{crew.id:03d}"
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = create_user(session, username=username, password=secrets.token_urlsafe(16),
                           role="technician", full_name=f"Simulated technician {crew.id}",
                           language="en")
        session.flush()
    if session.scalar(select(CrewMember.crew_id).where(CrewMember.user_id == user.id)) is None:
        session.add(CrewMember(crew_id=crew.id, user_id=user.id))
        session.flush()
    return user


def provision(settings: Settings, make_session: sessionmaker, clock: Clock, n: int,
              var_dir: Path, *, admin: Any = None) -> list[SimDevice]:
    """N crews on shift, a technician and a registered device each (credentials in var_dir)."""
    from server.crews import service as crews
    from server.crews.schemas import CrewIn, FixIn, Shift
    from server.devices import service as devices
    from server.devices.broker import MosquittoFilesAdmin
    from server.devices.schemas import DeviceIn

    admin = admin or MosquittoFilesAdmin(settings.mqtt_auth_dir, settings.mqtt_url)
    var_dir.mkdir(parents=True, exist_ok=True)
    creds_file = var_dir / "devices.json"
    known: dict[str, dict] = {}
    if creds_file.exists():
        known = {d["device_id"]: d for d in json.loads(creds_file.read_text())}
    now = clock.now()
    out: list[SimDevice] = []
    rng = random.Random(n)
    with make_session() as session:
        # crews that already simulate come first (a re-run keeps its crews), then crews nobody
        # works in (the simulator adds its own technician), then crews of real technicians —
        # so the demo's human logins keep their crews for a real handset
        simulated = (select(CrewMember.crew_id).join(User, User.id == CrewMember.user_id)
                     .where(User.username.like("sim-tech-%")))
        staffed = select(CrewMember.crew_id)
        crew_list = list(session.scalars(
            select(Crew).where(Crew.active)
            .order_by(Crew.id.not_in(simulated), Crew.id.in_(staffed), Crew.id).limit(n)))
        for i in range(len(crew_list), n):
            lon = HELSINKI[0] + rng.uniform(-0.02, 0.02)
            lat = HELSINKI[1] + rng.uniform(-0.01, 0.01)
            crew = crews.create(session, CrewIn(name=f"Sim crew {i + 1:03d}", capacity=1,
                                                skills=["water_main", "meter", "valve"]), now)
            crews.record_fixes(session, crew, [FixIn(lon=lon, lat=lat, at=now)], None, now, 250.0)
            crew_list.append(crew)
        for crew in crew_list:
            crew.shift = Shift.on_shift.value
            if crew.status == "offline":
                crew.status = "available"
            user = _technician(session, crew, now)
            active = [d for d in session.scalars(select(Device).where(
                Device.user_id == user.id, Device.revoked_at.is_(None)))]
            reuse = next((known[d.id] for d in active if d.id in known), None)
            if reuse is None:
                created = devices.register(session, DeviceIn(user_id=user.id,
                                                             name="Simulated handset"),
                                           _desk_actor(session), now, admin)
                reuse = {"device_id": created.device.id, "password": created.mqtt.password}
            out.append(SimDevice(reuse["device_id"], reuse["password"], user.id, user.username,
                                 crew.id))
        session.commit()
    data = json.dumps([asdict(d) for d in out], indent=2)
    fd = os.open(creds_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    return out


def _desk_actor(session: Session) -> Principal:
    """Who registers the simulated devices: the first active admin (devices.created_by needs a
    real user)."""
    user = session.scalar(select(User).where(User.role == Role.admin.value, User.is_active)
                          .order_by(User.id).limit(1))
    if user is None:
        user = session.scalar(select(User).where(User.is_active).order_by(User.id).limit(1))
    return Principal(id=user.id, username=user.username, role=Role(user.role))


# -- one simulated crew --------------------------------------------------------------------------------

@dataclass
class Job:
    ticket_id: int
    status: str
    location: tuple[float, float] | None


class SimCrew:
    def __init__(self, sim: Simulator, dev: SimDevice, start: tuple[float, float]) -> None:
        self.sim, self.dev = sim, dev
        self.pos = start
        self.fixes: list[dict] = []
        self.jobs: dict[int, Job] = {}
        self.lock = threading.Lock()
        self.completed: list[int] = []
        self.log: list[str] = []
        self.link = HandsetLink(sim.target.host, sim.target.port, dev.device_id, dev.password,
                                sim.var_dir / f"{dev.device_id}.sqlite",
                                on_downlink=self._downlink, resend_after=sim.resend_after)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sim-{dev.device_id}",
                                        daemon=True)

    # downlink (called in the link's network thread)
    def _downlink(self, kind: str, body: dict[str, Any]) -> None:
        with self.lock:
            if kind == "work_order":
                loc = body.get("location")
                self.jobs[body["ticket_id"]] = Job(body["ticket_id"], body["status"],
                                                   (loc["lon"], loc["lat"]) if loc else None)
            elif kind == "cancel":
                self.jobs.pop(body["ticket_id"], None)

    def start(self) -> None:
        self.link.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.link.stop()

    # uplink helpers
    def _fix(self) -> None:
        self.fixes.append({"lon": round(self.pos[0], 7), "lat": round(self.pos[1], 7),
                           "at": self.sim.clock.now().isoformat(), "accuracy_m": 5.0})
        if len(self.fixes) >= self.sim.batch_fixes:
            self._flush_fixes()

    def _flush_fixes(self) -> None:
        if self.fixes:
            self.link.send("positions", fixes=self.fixes)
            self.fixes = []

    def _status(self, ticket_id: int, status: str, **extra: Any) -> bool:
        """Send one status change and wait for its application ack (True: accepted)."""
        rejected: list = []
        prev = self.link.on_rejected
        msg_id = None

        def on_rejected(mid: str, error: dict) -> None:
            if mid == msg_id:
                rejected.append(error)
            elif prev is not None:
                prev(mid, error)

        self.link.on_rejected = on_rejected
        try:
            msg_id = self.link.send("status", ticket_id=ticket_id, status=status,
                                    at=self.sim.clock.now().isoformat(), **extra)
            deadline = time.monotonic() + 60
            while self.link.is_pending(msg_id) and not self._stop.is_set():
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        finally:
            self.link.on_rejected = prev
        self.log.append(f"{ticket_id}:{status}:{'rejected' if rejected else 'accepted'}")
        return not rejected

    def _wait(self, seconds: float) -> bool:
        """Sleep, reporting the parked position; False if stopping."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self._stop.wait(min(self.sim.fix_every_s, max(0.0, end - time.monotonic()))):
                return False
            self._fix()
        return True

    def _drive(self, route: list[tuple[float, float]]) -> bool:
        speed = self.sim.speed_kmh / 3.6
        for a, b in itertools.pairwise(route):
            leg = distance_m(a[0], a[1], b[0], b[1])
            if leg <= 0:
                continue
            steps = max(1, math.ceil(leg / (speed * self.sim.fix_every_s)))
            for k in range(1, steps + 1):
                if self._stop.wait(leg / steps / speed):
                    return False
                f = k / steps
                self.pos = (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f)
                self._fix()
        self._flush_fixes()
        return True

    def _job_status(self, ticket_id: int) -> str | None:
        with self.lock:
            job = self.jobs.get(ticket_id)
            return job.status if job else None

    def _work(self, job: Job) -> None:
        tid = job.ticket_id
        if not self._status(tid, "accepted"):
            return
        route = self.sim.route(tid, self.pos, job.location)
        if self._job_status(tid) is None or not self._status(tid, "en_route"):
            return
        if not self._drive(route):
            return
        # the server's geofence sets on_site when our fixes arrive; the work order update says so
        deadline = time.monotonic() + self.sim.arrival_wait_s
        while self._job_status(tid) == "en_route" and time.monotonic() < deadline:
            if not self._wait(self.sim.fix_every_s):
                return
            self._flush_fixes()
        if self._job_status(tid) is None:
            return  # cancelled meanwhile
        if self._job_status(tid) != "on_site" and not self._status(tid, "on_site"):
            return
        if not self._wait(self.sim.work_s):
            return
        uid = hashlib.sha256(f"site-{tid}".encode()).hexdigest()[:14].upper()
        self.link.send("tag_scan", scan={"uid": uid, "scanned_at": self.sim.clock.now().isoformat(),
                                         "position": {"lon": self.pos[0], "lat": self.pos[1]}})
        photo = hashlib.sha256(f"photo-{tid}-{self.dev.device_id}".encode()).hexdigest()
        self.link.send("attachment", ticket_id=tid, kind="photo", sha256=photo, bytes=245_760,
                       mime="image/jpeg", taken_at=self.sim.clock.now().isoformat())
        if self._job_status(tid) is not None and self._status(
                tid, "resolved", resolution_code="sim_repaired", note="simulated repair"):
            self.completed.append(tid)
        with self.lock:
            self.jobs.pop(tid, None)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                todo = next((j for j in self.jobs.values() if j.status == "assigned"), None)
            if todo is not None:
                try:
                    self._work(todo)
                except Exception:  # a simulated crew must not die with the demo
                    log.exception("simulate.job_failed", ticket_id=todo.ticket_id)
                    with self.lock:
                        self.jobs.pop(todo.ticket_id, None)
                continue
            if not self._wait(self.sim.fix_every_s):
                return
            if len(self.fixes) and self.sim.idle_flush:
                self._flush_fixes()


# -- the simulator -------------------------------------------------------------------------------------

class Simulator:
    def __init__(self, settings: Settings, make_session: sessionmaker, clock: Clock,
                 devices: list[SimDevice], var_dir: Path, *, speed_kmh: float = 40.0,
                 work_s: float = 30.0, fix_every_s: float = 2.0, batch_fixes: int = 5,
                 arrival_wait_s: float = 10.0, resend_after: float = 30.0,
                 idle_flush: bool = True) -> None:
        from server.dispatch.service import DispatchConfig

        self.settings, self.make_session, self.clock = settings, make_session, clock
        self.target = MqttTarget.parse(settings.mqtt_url)
        self.var_dir = var_dir
        self.speed_kmh, self.work_s = speed_kmh, work_s
        self.fix_every_s, self.batch_fixes = fix_every_s, batch_fixes
        self.arrival_wait_s, self.resend_after = arrival_wait_s, resend_after
        self.idle_flush = idle_flush
        self.cfg = DispatchConfig.from_settings(settings)
        self.crews = [SimCrew(self, d, self._start_position(d)) for d in devices]

    def _start_position(self, dev: SimDevice) -> tuple[float, float]:
        with self.make_session() as session:
            row = session.execute(text(
                "SELECT ST_X(coalesce(position, depot)), ST_Y(coalesce(position, depot)) "
                "FROM crews WHERE id = :c"), {"c": dev.crew_id}).first()
        if row and row[0] is not None:
            return float(row[0]), float(row[1])
        return HELSINKI

    def route(self, ticket_id: int, here: tuple[float, float],
              there: tuple[float, float] | None) -> list[tuple[float, float]]:
        """The road route dispatch computes for the crew's assignment (pgRouting); a straight
        line when it has none."""
        from server.dispatch import service as dispatch

        coords = None
        with contextlib.suppress(Exception), self.make_session() as session:
            a = dispatch.current_assignment(session, ticket_id)
            if a is not None:
                out = dispatch.assignment_out(session, a, route=True, now=self.clock.now(),
                                              cfg=self.cfg)
                if out.route:
                    coords = [(float(x), float(y)) for x, y in out.route["coordinates"]]
        if not coords:
            coords = [here, there] if there else [here]
        if coords[0] != here:
            coords.insert(0, here)
        return coords

    def start(self) -> None:
        for c in self.crews:
            c.start()

    def stop(self) -> None:
        for c in self.crews:
            c.stop()

    @property
    def completed(self) -> list[int]:
        return [t for c in self.crews for t in c.completed]
