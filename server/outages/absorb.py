"""Call absorption: the hooks other domains call. Imports nothing from them (tickets and
customers import this module), and each hook is one SQL round trip (or none: a subquery)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text

from server.core.sqlplan import Plan, Step
from server.outages import sql
from server.outages.schemas import OutageHint
from server.outages.words import type_word


# A new ticket inside an active outage (started, confirmed or restoring) whose type explains the
# ticket's symptom is linked to it; both audit trails record it. The newest-starting outage wins
# when several cover the place. ON CONFLICT: a ticket belongs to one outage, linking is
# idempotent.
def absorb_ctes(source: str, after: str | None = None) -> str:
    """The absorption as CTEs (``absorb_o``, ``absorb_l``, ``absorb_e``, ``absorb_te``) of a
    statement whose ``source`` relation holds the new ticket's ``id``, ``category``,
    ``description`` and ``location``: the standalone hook reads them from the ticket, the intake
    takes them from its INSERT's RETURNING. Binds ``:now``. ``after``: a one-row relation the
    ticket's ``outage_linked`` event is written after (the intake's ``created`` event), so the
    audit trail keeps its order."""
    return f"""absorb_o AS (
  SELECT o.id
  FROM outages o, (SELECT s.location, {sql.symptom('s')} AS symptom FROM {source} s) t
  WHERE {sql.ACTIVE} AND o.starts_at <= :now AND t.location IS NOT NULL
    AND t.symptom IS NOT NULL
    AND {sql.MATCHES.format(symptom='t.symptom')} AND {sql.covers('t.location')}
  ORDER BY o.starts_at DESC, o.id DESC LIMIT 1),
absorb_l AS (
  INSERT INTO outage_tickets (ticket_id, outage_id, source, linked_at)
  SELECT t.id, o.id, 'auto', :now FROM {source} t, absorb_o o
  ON CONFLICT (ticket_id) DO NOTHING
  RETURNING ticket_id, outage_id),
absorb_e AS (
  INSERT INTO outage_events (outage_id, at, kind, data)
  SELECT outage_id, :now, 'ticket_linked',
         jsonb_build_object('ticket_id', ticket_id, 'source', 'auto') FROM absorb_l),
absorb_te AS (
  INSERT INTO ticket_events (ticket_id, at, kind, data)
  SELECT l.ticket_id, :now, 'outage_linked',
         jsonb_build_object('outage_id', l.outage_id, 'ref', {sql.ref('l.outage_id')},
                            'source', 'auto') FROM absorb_l l{f', {after}' if after else ''})"""


_ABSORB = text(f"""
WITH absorb_t AS (
  SELECT id, category, description, location FROM tickets WHERE id = :ticket_id),
{absorb_ctes('absorb_t')}
SELECT outage_id FROM absorb_l
""")


def absorb_plan(ticket_id: int, now: datetime) -> Plan[None]:
    """Link a ticket to the active outage that explains it, in the caller's transaction. Not
    waited for: it goes with the next synchronisation. (The intake does the same in its own
    statement, :func:`absorb_ctes`.)"""
    yield Step(_ABSORB, {"ticket_id": ticket_id, "now": now}, fetch=False)


# The caller-ID lookup's per-customer column (``c`` is the customer row): the active or
# upcoming outages covering any of the customer's service points, as JSON.
LOOKUP_OUTAGES = f"""COALESCE((SELECT json_agg(json_build_object(
      'id', o.id, 'ref', {sql.ref('o.id')}, 'type', o.type, 'status', o.status,
      'area_name', o.area_name, 'starts_at', o.starts_at, 'etr', o.etr,
      'service_point_id', s.id) ORDER BY o.starts_at DESC, o.id DESC)
    FROM service_points s JOIN outages o ON {sql.ACTIVE} AND {sql.covers('s.geom')}
    WHERE s.customer_id = c.id), '[]')"""


def lookup_hints(rows: list[dict], timezone: str) -> list[OutageHint]:
    """The lookup's ``outages`` JSON as hints for the agent, in zh-CN and en."""
    hints = []
    zone = ZoneInfo(timezone)
    for r in rows:
        hint = OutageHint(**r, hint={})
        etr = hint.etr.astimezone(zone).strftime("%m-%d %H:%M") if hint.etr else None
        start = hint.starts_at.astimezone(zone).strftime("%m-%d %H:%M")
        zh, en = type_word(hint.type, "zh-CN"), type_word(hint.type, "en")
        hint.hint = {
            "zh-CN": f"位于{zh} {hint.ref}（{hint.area_name}）范围内，"
                     + (f"预计恢复 {etr}" if etr else "恢复时间待定")
                     + (f"，{start}开始" if hint.type == "planned_maintenance" else ""),
            "en": f"inside {en} {hint.ref} ({hint.area_name}), "
                  + (f"ETR {etr}" if etr else "ETR not known yet")
                  + (f", from {start}" if hint.type == "planned_maintenance" else ""),
        }
        hints.append(hint)
    return hints
