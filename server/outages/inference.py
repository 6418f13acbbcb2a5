"""Outage inference: a burst of no-water / low-pressure calls close together raises ONE suspected
outage with a proposed area (the calls' convex hull plus a buffer) for a dispatcher to confirm
or dismiss.

Each run clusters the recent, not yet explained tickets (``ST_ClusterDBSCAN`` in the local UTM
zone, so ``eps`` is metres; ``minpoints`` calls at least). A cluster that touches an open outage
is linked to it; one that touches an outage dismissed within the window is left alone (the
dispatcher said no); any other becomes a suspected outage with its tickets linked. Linked tickets
are never clustered again, so repeat runs add nothing. Runs are serialised by a transaction
advisory lock, so two workers cannot raise the same outage twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import text
from sqlalchemy.orm import Session

from server.models import Outage
from server.models.outages import outage_ref
from server.outages import sql
from server.outages.service import _event, affected_table
from server.settings import Settings

log = structlog.get_logger()
ADVISORY_LOCK = 0x4F5554  # "OUT"


@dataclass(frozen=True)
class InferencePolicy:
    window_minutes: float = 30.0
    eps_m: float = 250.0
    min_tickets: int = 5
    buffer_m: float = 150.0

    @classmethod
    def from_settings(cls, s: Settings) -> InferencePolicy:
        return cls(window_minutes=s.outage_infer_window_minutes, eps_m=s.outage_infer_eps_m,
                   min_tickets=s.outage_infer_min_tickets, buffer_m=s.outage_infer_buffer_m)


@dataclass(frozen=True)
class InferenceResult:
    raised: list[int]          # new suspected outages
    attached: dict[int, int]   # outage id -> tickets linked to it this run
    ignored_clusters: int      # clusters next to a recently dismissed outage


_CLUSTERS = text(f"""
WITH cand AS (
  SELECT t.id, t.location, t.created_at, {sql.symptom('t')} AS symptom
  FROM tickets t
  WHERE t.created_at > :since AND t.created_at <= :now AND t.location IS NOT NULL
    AND t.status <> 'cancelled'
    AND NOT EXISTS (SELECT 1 FROM outage_tickets ot WHERE ot.ticket_id = t.id)),
calls AS (SELECT * FROM cand WHERE symptom IN ('no_water', 'low_pressure')),
zone AS (  -- the UTM zone of the calls' mean position: eps in metres
  SELECT CASE WHEN avg(ST_Y(location)) >= 0 THEN 32600 ELSE 32700 END
         + LEAST(60, GREATEST(1, floor((avg(ST_X(location)) + 180) / 6)::int + 1)) AS srid
  FROM calls),
clustered AS (
  SELECT calls.*, ST_ClusterDBSCAN(ST_Transform(calls.location, zone.srid),
                                   eps := :eps, minpoints := :minpoints) OVER () AS cid
  FROM calls, zone)
SELECT cid, array_agg(id ORDER BY id) AS ticket_ids, min(created_at) AS first_call,
       count(*) FILTER (WHERE symptom = 'low_pressure') AS low_pressure,
       count(*) FILTER (WHERE symptom = 'no_water') AS no_water,
       ST_AsEWKB(ST_Multi(CAST(ST_Buffer(geography(ST_ConvexHull(ST_Collect(location))),
                                         :buffer, 'quad_segs=8') AS geometry))) AS area,
       ST_X(ST_Centroid(ST_Collect(location))) AS lon, ST_Y(ST_Centroid(ST_Collect(location))) AS lat
FROM clustered WHERE cid IS NOT NULL
GROUP BY cid ORDER BY min(created_at)
""")

_NEIGHBOUR = text("""
SELECT id, status FROM outages
WHERE ST_Intersects(area, ST_GeomFromEWKB(:area))
  AND (status IN ('suspected', 'confirmed', 'restoring')
       OR (status = 'dismissed' AND closed_at > :since))
ORDER BY (status = 'dismissed'), id LIMIT 1
""")

_NEAREST_STREET = text("""
SELECT name FROM road_edges WHERE name IS NOT NULL
ORDER BY geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) LIMIT 1
""")

_LINK = text("""
WITH l AS (
  INSERT INTO outage_tickets (ticket_id, outage_id, source, linked_at)
  SELECT unnest(CAST(:ticket_ids AS bigint[])), :outage_id, 'inferred', :now
  ON CONFLICT (ticket_id) DO NOTHING RETURNING ticket_id),
te AS (
  INSERT INTO ticket_events (ticket_id, at, kind, data)
  SELECT ticket_id, :now, 'outage_linked', jsonb_build_object('outage_id', CAST(:outage_id AS
         bigint), 'ref', CAST(:ref AS text), 'source', 'inferred') FROM l)
SELECT count(*) FROM l
""")


def _link(session: Session, outage_id: int, ticket_ids: list[int], now: datetime) -> int:
    return session.execute(_LINK, {"ticket_ids": ticket_ids, "outage_id": outage_id, "now": now,
                                   "ref": outage_ref(outage_id)}).scalar_one()


def run(session: Session, now: datetime, policy: InferencePolicy) -> InferenceResult:
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
    since = now - timedelta(minutes=policy.window_minutes)
    clusters = session.execute(_CLUSTERS, {
        "since": since, "now": now, "eps": policy.eps_m, "minpoints": policy.min_tickets,
        "buffer": policy.buffer_m}).mappings().all()
    raised: list[int] = []
    attached: dict[int, int] = {}
    ignored = 0
    for c in clusters:
        neighbour = session.execute(_NEIGHBOUR, {"area": c["area"], "since": since}).first()
        if neighbour is not None and neighbour.status == "dismissed":
            ignored += 1
            continue
        if neighbour is not None:
            linked = _link(session, neighbour.id, list(c["ticket_ids"]), now)
            if linked:
                outage = session.get(Outage, neighbour.id)
                _event(session, outage, None, "tickets_linked", now,
                       data={"ticket_ids": list(c["ticket_ids"]), "source": "inferred"})
                attached[neighbour.id] = attached.get(neighbour.id, 0) + linked
            continue
        street = session.execute(_NEAREST_STREET, {"lon": c["lon"], "lat": c["lat"]}).scalar()
        name = (f"{street} ~" if street else f"{c['lat']:.4f},{c['lon']:.4f}")[:100]
        kind = "low_pressure" if c["low_pressure"] > c["no_water"] else "water_outage"
        outage_id = session.execute(text("""
            INSERT INTO outages (type, status, source, area_name, description, area_kind,
                area_spec, area, starts_at, revision, etr_revision, affected_customers,
                created_at, updated_at)
            VALUES (:type, 'suspected', 'inferred', :name, :description, 'polygon',
                CAST(:spec AS jsonb), ST_GeomFromEWKB(:area), :starts_at, 1, 0, 0, :now, :now)
            RETURNING id"""), {
            "type": kind, "name": name, "area": c["area"], "starts_at": c["first_call"],
            "now": now, "description": f"{len(c['ticket_ids'])} calls within "
                                       f"{policy.eps_m:g} m in {policy.window_minutes:g} min",
            "spec": json.dumps({"inferred": {"ticket_ids": list(c["ticket_ids"]),
                                             "eps_m": policy.eps_m,
                                             "min_tickets": policy.min_tickets,
                                             "buffer_m": policy.buffer_m}})}).scalar_one()
        outage = session.get(Outage, outage_id)
        affected_table(session, outage)  # the count the dispatcher sees before confirming
        _link(session, outage_id, list(c["ticket_ids"]), now)
        _event(session, outage, None, "inferred", now, dst="suspected", data={
            "ticket_ids": list(c["ticket_ids"]), "no_water": c["no_water"],
            "low_pressure": c["low_pressure"], "eps_m": policy.eps_m,
            "min_tickets": policy.min_tickets, "window_minutes": policy.window_minutes})
        raised.append(outage_id)
        log.info("suspected outage raised", outage=outage.ref, tickets=len(c["ticket_ids"]))
    return InferenceResult(raised, attached, ignored)
