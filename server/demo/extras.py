"""Demo data for inspections and outages, made through the domains' own services.

Called by `crewline demo load` (server/demo/loader.py) after customers, users, tickets, roads and
crews exist. Deterministic (seeded RNG; times relative to the load's clock) and idempotent: each
domain is seeded in one transaction, skipped when its demo objects already exist.

* inspections: four site types with bilingual checklists, 40 sites on the road network around
  the crews' depots, each with an enrolled tag (NTAG 424 DNA SUN tags under the configured demo
  keys, and plain UID tags), four plans (daily and weekly, crews and technicians) whose windows
  are open at load time, yesterday's rounds with visits (verified and flagged: UID-only, GPS too
  far, a value out of range, an impossible-travel pair, a missed checkpoint) and today's rounds.
* outages: an active water outage (停水) with an ETR over a drawn polygon, three calls absorbed
  into it (and a billing complaint from inside it, not absorbed), planned maintenance tomorrow,
  and a suspected outage inferred from a burst of no-water calls for the dispatcher to confirm
  or dismiss.
"""

from __future__ import annotations

import random
import struct
import uuid
import zlib
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from gis.geo import distance_m
from rfid import KeyRing
from rfid.sun import compute_sdm_mac
from server.auth.service import Principal
from server.core.clock import SystemClock
from server.core.db import make_engine, make_sessionmaker, transaction
from server.core.schemas import PointIn
from server.crews.service import crew_of
from server.dispatch.demo import DEPOTS
from server.inspections import service as inspections
from server.inspections.schemas import AttachmentRef, PlanIn, ProfileIn, SiteTypeIn, VisitIn
from server.models import Customer, InspectionRound, Outage, OutageTicket, Role, SiteType, User
from server.outages import inference
from server.outages import service as outages
from server.outages.schemas import OutageIn
from server.settings import Settings
from server.tags import service as tags
from server.tags.keys import keyring_from_settings
from server.tags.schemas import ScanIn, SiteIn, TagEnrollIn
from server.tickets import service as tickets
from server.tickets.schemas import TicketIn

SEED = 2026
TAG_BASE_URL = "https://tags.crewline.example/t"

# -- inspections: site types and their checklists ------------------------------------------------
# Each item: the checklist item (schemas.ChecklistItem) and the demo's usual answer (None: none).


def _n(key, label, zh, unit, lo, hi, usual):
    return ({"key": key, "label": label, "label_zh": zh, "kind": "number", "unit": unit,
             "min": lo, "max": hi}, usual)


def _yn(key, label, zh, usual):
    return {"key": key, "label": label, "label_zh": zh, "kind": "yes_no"}, usual


def _ch(key, label, zh, options, usual):
    return {"key": key, "label": label, "label_zh": zh, "kind": "choice", "options": options}, usual


_PHOTO = ({"key": "photo", "label": "Photo", "label_zh": "现场照片", "kind": "photo"}, None)
_REMARKS = ({"key": "remarks", "label": "Remarks", "label_zh": "备注", "kind": "text",
             "required": False}, "正常 / all normal")

SITE_TYPES: list[dict[str, Any]] = [
    {"code": "pump_station", "name": "泵站 Pump station", "zh": "泵站", "en": "Pump station",
     "prefix": "PS", "count": 4, "kind": "site", "sun": "all", "tolerance_m": 80.0, "items": [
         _n("inlet_pressure", "Inlet pressure", "进口压力", "bar", 2.0, 6.0, (3.0, 4.5)),
         _n("outlet_pressure", "Outlet pressure", "出口压力", "bar", 3.0, 8.0, (4.5, 6.5)),
         _n("motor_temp", "Motor temperature", "电机温度", "°C", 10.0, 80.0, (35.0, 60.0)),
         _ch("pump_state", "Pump state", "水泵状态", ["running", "standby", "fault"], "running"),
         _yn("leak", "Leak found", "发现泄漏", False),
         _PHOTO,
         ({"key": "witness", "label": "Duty operator signature", "label_zh": "值班员签名",
           "kind": "signature", "signer": "witness"}, None),
         _REMARKS]},
    {"code": "valve_chamber", "name": "阀门井 Valve chamber", "zh": "阀门井", "en": "Valve chamber",
     "prefix": "VC", "count": 10, "kind": "asset", "sun": "all", "tolerance_m": None, "items": [
         _ch("valve_position", "Valve position", "阀门位置", ["open", "closed", "partly_open"],
             "open"),
         _n("turns_to_close", "Turns to close", "关闭圈数", "turns", 0.0, 40.0, (12.0, 24.0)),
         _yn("water_in_chamber", "Water in the chamber", "井内积水", False),
         _yn("cover_intact", "Cover intact", "井盖完好", True),
         _PHOTO, _REMARKS]},
    {"code": "hydrant", "name": "消火栓 Hydrant", "zh": "消火栓", "en": "Hydrant",
     "prefix": "HY", "count": 20, "kind": "asset", "sun": "even", "tolerance_m": None, "items": [
         _n("static_pressure", "Static pressure", "静水压力", "bar", 1.5, 7.0, (2.5, 5.0)),
         _yn("cap_present", "Caps present", "闷盖齐全", True),
         _yn("accessible", "Free access (no parking)", "通道畅通", True),
         _ch("paint", "Paint", "油漆状况", ["good", "faded", "damaged"], "good"),
         _PHOTO, _REMARKS]},
    {"code": "meter_room", "name": "计量间 Meter room", "zh": "计量间", "en": "Meter room",
     "prefix": "MR", "count": 6, "kind": "site", "sun": "none", "tolerance_m": None, "items": [
         _n("meter_reading", "Meter reading", "水表读数", "m³", 0.0, None, (1200.0, 98000.0)),
         _n("flow_rate", "Flow rate", "瞬时流量", "m³/h", 0.0, 120.0, (5.0, 60.0)),
         _yn("door_locked", "Door locked", "门已上锁", True),
         _yn("seal_intact", "Meter seal intact", "铅封完好", True),
         _PHOTO,
         ({"key": "customer_sign", "label": "Customer signature", "label_zh": "用户签名",
           "kind": "signature", "signer": "customer"}, None)]},
]


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A small real PNG (a colour with a diagonal line) for the demo photos and signatures."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((0, 0, 0)) if abs(x - y * width // height) < 2 else bytes(rgb)
                           for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def sun_url(keyring: KeyRing, uid: bytes, counter: int, rng: random.Random) -> str:
    """The URL an NTAG 424 DNA personalised with the deployment's current keys shows at read
    ``counter`` (AN12196: encrypted PICCData with UID and counter, SDMMAC over an empty input)."""
    version = keyring.current_version
    picc = b"\xc7" + uid + counter.to_bytes(3, "little") + rng.randbytes(5)
    enc = Cipher(algorithms.AES(keyring.meta_read_key(version)), modes.CBC(bytes(16))).encryptor()
    picc_data = (enc.update(picc) + enc.finalize()).hex().upper()
    mac = compute_sdm_mac(keyring.file_read_key(uid, version), uid, counter, b"")
    return f"{TAG_BASE_URL}?picc_data={picc_data}&cmac={mac.hex().upper()}"


def _principal(session: Session, username: str) -> Principal:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise SystemExit(f"demo user {username!r} is missing")
    return Principal(user.id, user.username, Role(user.role))


def _offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    return lon + east_m / (111_320 * 0.4985), lat + north_m / 110_540  # cos(60.17°) ≈ 0.4985


_SNAP = text("""
    SELECT ST_X(s.p) AS lon, ST_Y(s.p) AS lat, s.name FROM (
      SELECT ST_ClosestPoint(e.geom, pt.g) AS p, e.name
      FROM road_edges e, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) pt
      WHERE e.name IS NOT NULL
      ORDER BY geography(e.geom) <-> geography(pt.g) LIMIT 1) s""")


class _Inspector:
    """Seeds the inspections demo in one session; ``now`` is the load's time."""

    def __init__(self, session: Session, settings: Settings, now: datetime, rng: random.Random,
                 bar: Progress | None) -> None:
        self.s, self.settings, self.now, self.rng, self.bar = session, settings, now, rng, bar
        self.cfg = inspections.InspectionConfig.from_settings(settings)
        self.keyring = keyring_from_settings(settings)
        self.manager = _principal(session, "manager")
        self.techs = {u: _principal(session, u) for u in ("tech1", "tech2", "tech3")}
        self.sites: dict[str, list[dict[str, Any]]] = {}
        self.counters: dict[int, int] = {}
        self.stats = {"site_types": 0, "sites": 0, "sun_tags": 0, "uid_tags": 0, "plans": 0,
                      "rounds_open": 0, "visits": 0, "visits_flagged": 0}

    # -- types, sites, tags ------------------------------------------------------------------

    def types_sites_tags(self, at: datetime) -> None:
        task = self.bar.add_task("inspection sites and tags", total=40) if self.bar else None
        n = 0
        for t in SITE_TYPES:
            st = inspections.create_site_type(self.s, SiteTypeIn(
                code=t["code"], name=t["name"], items=[item for item, _ in t["items"]]),
                self.manager, at)
            self.stats["site_types"] += 1
            self.sites[t["code"]] = []
            for i in range(t["count"]):
                depot = DEPOTS[n % len(DEPOTS)]
                lon, lat = _offset(*depot, self.rng.uniform(-350, 350), self.rng.uniform(-250, 250))
                snapped = self.s.execute(_SNAP, {"lon": lon, "lat": lat}).first()
                street = None
                if snapped is not None:
                    lon, lat, street = snapped.lon, snapped.lat, snapped.name
                code = f"{t['prefix']}-{i + 1:02d}"
                name = f"{t['zh']} {code} {t['en']}" + (f" · {street}" if street else "")
                site = tags.create_site(self.s, SiteIn(
                    name=name[:200], kind=t["kind"], location=PointIn(lon=lon, lat=lat),
                    address=f"{street}, Helsinki" if street else None), at)
                inspections.set_profile(self.s, site.id, ProfileIn(
                    site_type_id=st.id, tolerance_m=t["tolerance_m"]), at)
                sun = t["sun"] == "all" or (t["sun"] == "even" and i % 2 == 0)
                uid = bytes([0x04]) + self.rng.randbytes(6)
                counter = self.rng.randint(3, 40) if sun else None
                tag = tags.enroll_tag(self.s, TagEnrollIn(
                    uid=uid.hex().upper(), tag_type="type4" if sun else "type2", sun_enabled=sun,
                    site_id=site.id, note="NTAG 424 DNA (SUN)" if sun else "NTAG213 (UID only)"),
                    self.manager, at, self.keyring, last_counter=counter)
                if sun:
                    self.counters[tag.id] = counter  # type: ignore[assignment]
                self.stats["sun_tags" if sun else "uid_tags"] += 1
                self.sites[t["code"]].append({"id": site.id, "lon": lon, "lat": lat, "uid": uid,
                                              "sun": sun, "tag_id": tag.id, "type": t})
                n += 1
                self.stats["sites"] += 1
                if self.bar:
                    self.bar.update(task, completed=n)

    # -- plans -------------------------------------------------------------------------------

    def plans(self, created: datetime, window: tuple[time, time], weekday: int) -> list[dict]:
        zone = self.cfg.timezone
        starts_on = created.astimezone(ZoneInfo(zone)).date()
        crew2 = crew_of(self.s, self.techs["tech2"].id)
        crew3 = crew_of(self.s, self.techs["tech3"].id)
        valves = self._far_pair_in_middle(self.sites["valve_chamber"])
        hydrants = self.sites["hydrant"]
        specs = [
            ("泵站与计量间日巡 Pump stations & meter rooms, daily", "daily", None,
             self.sites["pump_station"] + self.sites["meter_room"], None, "tech1"),
            ("阀门井日巡 Valve chambers, daily", "daily", None, valves, crew2, "tech2"),
            ("消火栓周巡（北）Hydrants north, weekly", "weekly", weekday, hydrants[:10], None,
             "tech3"),
            ("消火栓周巡（南）Hydrants south, weekly", "weekly", weekday, hydrants[10:], crew3,
             "tech3"),
        ]
        plans = []
        for name, frequency, wd, sites, crew_id, tech in specs:
            plan = inspections.create_plan(self.s, PlanIn(
                name=name, site_ids=[x["id"] for x in sites], frequency=frequency, weekday=wd,
                window_start=window[0], window_end=window[1], timezone=zone, starts_on=starts_on,
                crew_id=crew_id,
                technician_id=None if crew_id else self.techs[tech].id), self.manager, created,
                self.cfg)
            plans.append({"plan": plan, "sites": sites, "tech": self.techs[tech]})
            self.stats["plans"] += 1
        return plans

    @staticmethod
    def _far_pair_in_middle(sites: list[dict]) -> list[dict]:
        """The sites in an order where positions 5 and 6 are the two farthest apart (the demo's
        impossible-travel pair: one technician "at" both within a minute)."""
        pairs = [(distance_m(a["lon"], a["lat"], b["lon"], b["lat"]), i, j)
                 for i, a in enumerate(sites) for j, b in enumerate(sites) if i < j]
        _, i, j = max(pairs)
        rest = [x for k, x in enumerate(sites) if k not in (i, j)]
        return [*rest[:4], sites[i], sites[j], *rest[4:]]

    # -- visits ------------------------------------------------------------------------------

    def _values(self, site: dict, out_of_range: bool = False) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for item, usual in site["type"]["items"]:
            if usual is None:
                continue
            if item["kind"] == "number":
                values[item["key"]] = round(self.rng.uniform(*usual), 1)
            else:
                values[item["key"]] = usual
        if out_of_range:
            values["motor_temp"] = 92.5  # the range is 10–80 °C
        return values

    def _attachments(self, site: dict, photo: str, signature: str) -> list[AttachmentRef]:
        refs = []
        for item, _ in site["type"]["items"]:
            if item["kind"] == "photo":
                refs.append(AttachmentRef(item=item["key"], kind="photo", sha256=photo,
                                          content_type="image/png", size=self.photo_size))
            elif item["kind"] == "signature":
                refs.append(AttachmentRef(item=item["key"], kind="signature", sha256=signature,
                                          content_type="image/png", size=self.signature_size,
                                          signer_name="王芳" if item["signer"] == "customer"
                                          else "值班员 Antti"))
        return refs

    def visit(self, site: dict, tech: Principal, at: datetime, *, stay_min: float = 4,
              gps_off_m: float = 0, out_of_range: bool = False, media: tuple[str, str]) -> None:
        """One visit as a handset makes it: a tag scan at the site, then the checklist."""
        lon, lat = _offset(site["lon"], site["lat"], self.rng.uniform(-6, 6),
                           self.rng.uniform(-6, 6))
        if site["sun"]:
            self.counters[site["tag_id"]] += self.rng.randint(1, 3)
            scan_in = ScanIn(sun_url=sun_url(self.keyring, site["uid"],
                                             self.counters[site["tag_id"]], self.rng),
                             uid=site["uid"].hex().upper(), tag_type="type4")
        else:
            scan_in = ScanIn(uid=site["uid"].hex().upper(), tag_type="type2")
        scan_in = scan_in.model_copy(update=dict(
            reader="android-nfc", scanned_at=at, position=PointIn(lon=lon, lat=lat),
            accuracy_m=round(self.rng.uniform(4, 12), 1),
            client_id=uuid.UUID(int=self.rng.getrandbits(128), version=4)))
        scan = tags.ingest_scan(self.s, scan_in, tech, at + timedelta(seconds=2), self.keyring,
                                source="mqtt").scan
        vlon, vlat = _offset(lon, lat, gps_off_m, 0) if gps_off_m else (lon, lat)
        started = at + timedelta(seconds=20)
        finished = started + timedelta(minutes=stay_min)
        visit = inspections.submit_visit(self.s, VisitIn(
            site_id=site["id"], started_at=started, finished_at=finished, tag_scan_id=scan.id,
            position=PointIn(lon=vlon, lat=vlat), accuracy_m=scan_in.accuracy_m,
            values=self._values(site, out_of_range), attachments=self._attachments(site, *media),
            client_id=uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            tech, finished + timedelta(seconds=30), self.cfg, source="mqtt")
        self.stats["visits"] += 1
        self.stats["visits_flagged"] += visit.evidence == "flagged"

    def media(self, tech: Principal, at: datetime) -> tuple[str, str]:
        photo, signature = _png(48, 36, (40, 120, 190)), _png(60, 24, (250, 250, 250))
        self.photo_size, self.signature_size = len(photo), len(signature)
        return (inspections.store_attachment(self.s, photo, "image/png", tech, at, self.cfg).sha256,
                inspections.store_attachment(self.s, signature, "image/png", tech, at,
                                             self.cfg).sha256)

    def yesterday(self, plans: list[dict], start: datetime, media: tuple[str, str]) -> None:
        """Yesterday's daily rounds, walked: most checkpoints verified; flagged ones to look at."""
        pumps_meters, valves = plans[0], plans[1]
        at = start + timedelta(minutes=20)
        for k, site in enumerate(pumps_meters["sites"]):
            if k == len(pumps_meters["sites"]) - 1:
                break  # the last meter room is skipped: a missed checkpoint
            self.visit(site, pumps_meters["tech"], at, media=media,
                       out_of_range=k == 1,  # motor too hot
                       gps_off_m=260 if k == 2 else 0)  # the handset's fix is off the site
            at += timedelta(minutes=self.rng.randint(11, 16))
        at = start + timedelta(minutes=30)
        for k, site in enumerate(valves["sites"]):
            self.visit(site, valves["tech"], at, media=media, stay_min=0 if k == 4 else 4)
            # the farthest pair (positions 5 and 6, > 1 km apart) scanned 30 s apart: impossible
            # travel by road, and by the straight-line fallback too (80 km/h, fraction 0.6)
            at += timedelta(seconds=30) if k == 4 else timedelta(minutes=self.rng.randint(9, 14))

    def today(self, plans: list[dict], start: datetime, media: tuple[str, str]) -> None:
        if self.now - start < timedelta(minutes=15):
            return  # the window has only just opened
        step = (self.now - start) / 3
        for k, site in enumerate(plans[0]["sites"][:2]):
            self.visit(site, plans[0]["tech"], start + step * (k + 1) - timedelta(minutes=5),
                       media=media)


def _window(now: datetime, zone: str) -> tuple[time, time, datetime]:
    """A nine-hour window that opened at the top of the hour before ``now`` (never before local
    midnight), so today's rounds are open when the demo is loaded; and its start today (UTC)."""
    local = now.astimezone(ZoneInfo(zone))
    hour = max(local.hour - 1, 0)
    start = time(hour, 0)
    end = time((hour + 9) % 24, 0)
    return start, end, datetime.combine(local.date(), start, ZoneInfo(zone))


def seed_inspections(session: Session, settings: Settings, now: datetime,
                     bar: Progress | None = None, seed: int = SEED) -> dict | None:
    codes = [t["code"] for t in SITE_TYPES]
    if session.scalar(select(func.count(SiteType.id)).where(SiteType.code.in_(codes))):
        return None
    rng = random.Random(seed)
    ins = _Inspector(session, settings, now, rng, bar)
    w_start, w_end, today_start = _window(now, ins.cfg.timezone)
    y_start = today_start - timedelta(days=1)
    setup = y_start - timedelta(hours=2)
    ins.types_sites_tags(setup)
    weekday = now.astimezone(ZoneInfo(ins.cfg.timezone)).isoweekday()
    plans = ins.plans(setup, (w_start, w_end), weekday)
    task = bar.add_task("inspection rounds and visits", total=3) if bar else None
    media = ins.media(ins.techs["tech1"], setup)
    inspections.generate_rounds(session, y_start + timedelta(minutes=1))  # yesterday's rounds
    ins.yesterday(plans, y_start, media)
    if bar:
        bar.update(task, completed=1)
    inspections.close_due_rounds(session, now)  # yesterday's missed checkpoints
    # today's rounds: what the worker's inspections.rounds_sweep does every minute
    inspections.generate_rounds(session, now)
    ins.stats["rounds_open"] = session.scalar(select(func.count(InspectionRound.id)).where(
        InspectionRound.closed_at.is_(None), InspectionRound.window_end > now))
    if bar:
        bar.update(task, completed=2)
    ins.today(plans, today_start, media)
    if bar:
        bar.update(task, completed=3)
    return ins.stats


# -- outages ----------------------------------------------------------------------------------------

ACTIVE_AREA = "Bulevardi–Erottaja 停水"
PLANNED_AREA = "Kamppi 计划检修"
# drawn around the south-east of the demo area
ACTIVE_POLYGON = {"type": "Polygon", "coordinates": [[
    [24.9418, 60.1646], [24.9478, 60.1642], [24.9512, 60.1660], [24.9498, 60.1683],
    [24.9452, 60.1690], [24.9415, 60.1672], [24.9418, 60.1646]]]}
PLANNED_CENTER = (24.9372, 60.1712)
BURST_CENTER = (24.9490, 60.1768)  # north-east, away from both
CALLS = [
    ("outage_report", "high", "家里停水了，水龙头没水 / No water at all since this morning"),
    ("repair", "normal", "没水，楼上邻居也一样 / No water, neighbours upstairs too"),
    ("outage_report", "normal", "停水了什么时候恢复？ / No water - when will it be back?"),
    # from inside the area but about something else: not absorbed
    ("complaint", "low", "水费账单金额有误 / The amount on my bill is wrong"),
]
BURST = [
    ("outage_report", "high", "突然没水了 / Suddenly no water"),
    ("outage_report", "normal", "停水，厨房和卫生间都没水 / No water in kitchen or bathroom"),
    ("complaint", "normal", "没水了也没通知 / No water and nobody told us"),
    ("outage_report", "high", "整栋楼停水 / No water in the whole building"),
    ("outage_report", "normal", "没水 / no water"),
    ("repair", "normal", "水龙头没水了 / No water from the tap"),
]


def _customers_near(session: Session, lon: float, lat: float, n: int, exclude: set[int]
                    ) -> list[tuple[int, int]]:
    rows = session.execute(text("""
        SELECT sp.id, sp.customer_id FROM service_points sp
        ORDER BY sp.geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), sp.id LIMIT :n"""),
        {"lon": lon, "lat": lat, "n": n + len(exclude)}).all()
    return [(r.id, r.customer_id) for r in rows if r.customer_id not in exclude][:n]


def _call(session: Session, sp_id: int, customer_id: int, call: tuple[str, str, str],
          agent: Principal, at: datetime, policy: tickets.Policy) -> int:
    customer = session.get(Customer, customer_id)
    category, priority, description = call
    out, _ = tickets.create(session, TicketIn(
        category=category, priority=priority, description=description, customer_id=customer_id,
        service_point_id=sp_id, reporter_name=customer.name,  # type: ignore[union-attr]
        reporter_phone=customer.phones[0].e164 if customer.phones else None),  # type: ignore[union-attr]
        agent, at, policy)
    return out.id


def _quarter_after(at: datetime) -> datetime:
    at = at.replace(second=0, microsecond=0)
    return at + timedelta(minutes=(15 - at.minute % 15) % 15)


def seed_outages(session: Session, settings: Settings, now: datetime,
                 bar: Progress | None = None, seed: int = SEED) -> dict | None:
    if session.scalar(select(func.count(Outage.id)).where(
            Outage.area_name.in_([ACTIVE_AREA, PLANNED_AREA]))):
        return None
    rng = random.Random(seed + 1)
    task = bar.add_task("outages", total=4) if bar else None
    policy = outages.OutagePolicy.from_settings(settings)
    ticket_policy = tickets.Policy.from_settings(settings)
    dispatcher, agent = _principal(session, "dispatcher"), _principal(session, "agent")
    # 1. an unplanned water outage, under way since 90 minutes, customers texted (the outbox
    # applies consent, opt-outs and quiet hours; notices are urgent)
    started = now - timedelta(minutes=90)
    active = outages.declare(session, OutageIn(
        type="water_outage", area_name=ACTIVE_AREA, area={"kind": "polygon",
                                                          "geometry": ACTIVE_POLYGON},
        description="DN300 主管爆管，正在抢修 / DN300 main burst, crew repairing",
        starts_at=started, etr=_quarter_after(now + timedelta(hours=3))),
        dispatcher, started + timedelta(minutes=10), policy)
    if bar:
        bar.update(task, completed=1)
    # 2. calls from inside it: absorbed (linked) as they are created
    inside = session.execute(text("""
        SELECT sp.id, sp.customer_id FROM service_points sp, outages o
        WHERE o.id = :o AND ST_Covers(o.area, sp.geom) ORDER BY sp.id"""), {"o": active.id}).all()
    picked = rng.sample(list(inside), min(len(CALLS), len(inside)))
    for k, ((sp, c), call) in enumerate(zip(picked, CALLS, strict=False)):
        _call(session, sp, c, call, agent, now - timedelta(minutes=50 - 15 * k), ticket_policy)
    # what was linked, not what was created: a call whose words do not match stays unlinked
    absorbed = session.scalar(select(func.count()).select_from(OutageTicket)
                              .where(OutageTicket.outage_id == active.id))
    if bar:
        bar.update(task, completed=2)
    # 3. planned maintenance tomorrow 09:00–13:00 (SMS zone): announced now if that is within the
    # notice lead (CREWLINE_OUTAGE_PLANNED_NOTICE_HOURS), else by the worker when it comes
    zone = ZoneInfo(policy.timezone)
    tomorrow = (now.astimezone(zone) + timedelta(days=1)).date()
    planned = outages.declare(session, OutageIn(
        type="planned_maintenance", area_name=PLANNED_AREA,
        area={"kind": "buffer", "center": {"lon": PLANNED_CENTER[0], "lat": PLANNED_CENTER[1]},
              "radius_m": 180},
        description="更换阀门，计划停水 / Valve replacement, water off",
        starts_at=datetime.combine(tomorrow, time(9, 0), zone),
        etr=datetime.combine(tomorrow, time(13, 0), zone)), dispatcher, now, policy)
    if bar:
        bar.update(task, completed=3)
    # 4. a burst of no-water calls elsewhere in the last 20 minutes, then the inference
    taken = {c for _, c in picked}
    burst = _customers_near(session, *BURST_CENTER, len(BURST), taken)
    for k, ((sp, c), call) in enumerate(zip(burst, BURST, strict=False)):
        _call(session, sp, c, call, agent, now - timedelta(minutes=20 - 3 * k), ticket_policy)
    result = inference.run(session, now, inference.InferencePolicy.from_settings(settings))
    if bar:
        bar.update(task, completed=4)
    session.flush()
    session.refresh(active)
    session.refresh(planned)
    suspected = [session.get(Outage, i) for i in result.raised]
    return {"active": active.ref, "active_customers": active.affected_customers,
            "absorbed_tickets": absorbed, "planned": planned.ref,
            "planned_customers": planned.affected_customers,
            "suspected": [o.ref for o in suspected],  # type: ignore[union-attr]
            "suspected_tickets": len(burst)}


def load(settings: Settings, progress: Callable[[], Progress] | None = None,
         console: Console | None = None, now: datetime | None = None) -> dict:
    """Seed both domains (each once); print and return what was made."""
    now = now or SystemClock().now()
    engine = make_engine(settings, pool_size=1)
    try:
        factory = make_sessionmaker(engine)
        with (progress() if progress else nullcontext()) as bar:
            with transaction(factory) as session:
                ins = seed_inspections(session, settings, now, bar)
            with transaction(factory) as session:
                out = seed_outages(session, settings, now, bar)
    finally:
        engine.dispose()
    if console is not None:
        console.print(f"[green]inspections demo[/green]: {ins or 'already loaded'}")
        console.print(f"[green]outages demo[/green]: {out or 'already loaded'}")
    return {"inspections": ins, "outages": out}
