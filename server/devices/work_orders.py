"""Jobs to the crew's handsets: ``work_order`` (new or updated, the whole job each time) and
``cancel`` (the job left the crew), enqueued in the same transaction as the change that causes
them (server/devices/downlink.py).

Hooks, one call each:
* dispatch (server/dispatch/service.py): :func:`on_assigned` when a crew gets a ticket (assign,
  reassign, auto-assign); :func:`on_withdrawn` when it loses it (unassign, reassign away);
* tickets (server/tickets/service.py ``_apply``): :func:`on_status` for every status change —
  accepted / en route / on site send an updated work order to the holding crew, resolved /
  cancelled / closed from a busy status send a cancel with that reason.

Only SQL here (no dispatch/tickets imports): both of those modules import this one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from server.devices import downlink

BUSY = ("assigned", "accepted", "en_route", "on_site")
_ENDED = ("resolved", "cancelled", "closed")

_JOB = text("""
SELECT t.id, t.status, t.category, t.priority, t.description, t.address,
       ST_X(t.location) AS lon, ST_Y(t.location) AS lat,
       c.name AS customer_name,
       COALESCE((SELECT p.e164 FROM customer_phones p WHERE p.customer_id = t.customer_id
                 ORDER BY (p.kind = 'mobile') DESC, p.id LIMIT 1), t.reporter_phone) AS phone,
       (SELECT k.due_at FROM ticket_sla_clocks k WHERE k.ticket_id = t.id AND k.clock = 'resolve'
          AND k.stopped_at IS NULL ORDER BY k.cycle DESC LIMIT 1) AS due_at,
       (SELECT max(e.id) FROM ticket_events e WHERE e.ticket_id = t.id) AS revision,
       a.crew_id, a.assigned_at
FROM tickets t
LEFT JOIN customers c ON c.id = t.customer_id
LEFT JOIN dispatch_assignments a ON a.ticket_id = t.id AND a.ended_at IS NULL
WHERE t.id = :id
""")


def _ts(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def work_order_body(session: Session, ticket_id: int) -> tuple[int | None, dict[str, Any]] | None:
    """(holding crew id, work_order body) for a ticket, or None if there is no such ticket."""
    session.flush()
    r = session.execute(_JOB, {"id": ticket_id}).mappings().first()
    if r is None:
        return None
    number = f"CL-{r['id']:07d}"
    first_line = (r["description"] or "").strip().splitlines()[0] if r["description"] else ""
    summary = f"{number} {r['category']}/{r['priority']}: {first_line}"
    body = {
        "ticket_id": r["id"], "revision": int(r["revision"] or 1), "status": r["status"],
        "category": r["category"], "priority": r["priority"], "summary": summary[:200],
        "description": (r["description"] or "")[:4000], "address": r["address"],
        "location": ({"lon": round(r["lon"], 7), "lat": round(r["lat"], 7)}
                     if r["lon"] is not None else None),
        "customer_name": r["customer_name"], "customer_phone": r["phone"],
        "due_at": _ts(r["due_at"]), "assigned_at": _ts(r["assigned_at"]),
    }
    return r["crew_id"], body


def _send_work_order(session: Session, ticket_id: int, crew_id: int | None,
                     now: datetime) -> list[tuple[str, int]]:
    found = work_order_body(session, ticket_id)
    if found is None:
        return []
    holder, body = found
    crew_id = crew_id if crew_id is not None else holder
    if crew_id is None or body["status"] not in BUSY or body["assigned_at"] is None:
        return []
    return downlink.enqueue_for_crew(session, crew_id, "work_order", body, now)


def on_assigned(session: Session, ticket_id: int, crew_id: int,
                now: datetime) -> list[tuple[str, int]]:
    """The crew got the ticket: every handset of its members receives the job."""
    return _send_work_order(session, ticket_id, crew_id, now)


def on_withdrawn(session: Session, ticket_id: int, crew_id: int, reason: str,
                 now: datetime, note: str | None = None) -> list[tuple[str, int]]:
    """The crew lost the ticket (``reason``: unassigned, reassigned, resolved, cancelled,
    closed): its handsets drop the job."""
    body: dict[str, Any] = {"ticket_id": ticket_id, "reason": reason}
    if note:
        body["note"] = note[:500]
    return downlink.enqueue_for_crew(session, crew_id, "cancel", body, now)


def on_status(session: Session, ticket_id: int, src: str, dst: str,
              now: datetime) -> list[tuple[str, int]]:
    """A ticket changed status (tickets._apply). ``assigned`` and ``new`` are dispatch's business
    (on_assigned / on_withdrawn), which knows which crew gains or loses the job."""
    if dst in ("accepted", "en_route", "on_site"):
        return _send_work_order(session, ticket_id, None, now)
    if dst in _ENDED and src in BUSY:
        session.flush()
        crew_id = session.scalar(text("SELECT crew_id FROM dispatch_assignments WHERE "
                                      "ticket_id = :t AND ended_at IS NULL"), {"t": ticket_id})
        if crew_id is not None:
            return on_withdrawn(session, ticket_id, crew_id, dst, now)
    return []
