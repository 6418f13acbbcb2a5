"""SLA clocks: due times per ticket, warnings at a fraction and escalations at 100 %.

Each clock is a row; a sweep (run by the worker's periodic job) marks ``warned_at`` /
``escalated_at`` with a conditional UPDATE and writes the audit event in the same transaction,
so every warning and escalation happens exactly once however many sweeps run, concurrently or
after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text, update
from sqlalchemy.orm import Session

from server.models import SlaClock, Ticket, TicketEvent

CLOCKS = ("assign", "arrive", "resolve")
# which statuses stop which clock
STOPS = {
    "assign": {"assigned", "accepted", "en_route", "on_site", "resolved", "closed", "cancelled"},
    "arrive": {"on_site", "resolved", "closed", "cancelled"},
    "resolve": {"resolved", "closed", "cancelled"},
}


# The clocks a ticket's policy starts, as SQL fragments shared with ticket creation (the insert
# statement in tickets.service): rows c(clock, minutes) of the policy for :category/:priority,
# and their warning and due times counted from :now.
POLICY_CLOCKS_FROM = """sla_policies p
CROSS JOIN LATERAL (VALUES ('assign', p.assign_minutes), ('arrive', p.arrive_minutes),
                           ('resolve', p.resolve_minutes)) AS c(clock, minutes)"""
POLICY_CLOCKS_WHERE = (
    "p.category = :category AND p.priority = :priority AND c.minutes IS NOT NULL")
CLOCK_TIMES = ("""(:now + c.minutes * :warn_fraction * interval '1 minute'),
       (:now + c.minutes * interval '1 minute')""")

_START = text(f"""
INSERT INTO ticket_sla_clocks (ticket_id, clock, cycle, started_at, warn_at, due_at)
SELECT :ticket_id, c.clock,
       COALESCE((SELECT max(x.cycle) + 1 FROM ticket_sla_clocks x
                 WHERE x.ticket_id = :ticket_id AND x.clock = c.clock), 0),
       :now, {CLOCK_TIMES}
FROM {POLICY_CLOCKS_FROM}
WHERE {POLICY_CLOCKS_WHERE} AND c.clock = ANY(:clocks)
""")


def start_clocks(session: Session, ticket: Ticket, now: datetime, warn_fraction: float,
                 clocks: tuple[str, ...] = CLOCKS) -> None:
    """Restart ``clocks`` in a new cycle from the ticket's policy (reopen, unassign).

    New tickets get their first clocks in the same statement that creates them (service.create).
    """
    session.execute(update(SlaClock).where(
        SlaClock.ticket_id == ticket.id, SlaClock.clock.in_(clocks),
        SlaClock.stopped_at.is_(None)).values(stopped_at=now))
    session.execute(_START, {"ticket_id": ticket.id, "now": now, "warn_fraction": warn_fraction,
                             "category": ticket.category, "priority": ticket.priority,
                             "clocks": list(clocks)})


def stop_clocks(session: Session, ticket_id: int, status: str, now: datetime) -> None:
    names = [name for name, stops in STOPS.items() if status in stops]
    if names:
        session.execute(update(SlaClock).where(
            SlaClock.ticket_id == ticket_id, SlaClock.clock.in_(names),
            SlaClock.stopped_at.is_(None)).values(stopped_at=now))


@dataclass
class SweepResult:
    warnings: int = 0
    escalations: int = 0


def sweep(session: Session, now: datetime, batch: int = 500) -> SweepResult:
    """Record every warning and escalation due at ``now``; the caller commits."""
    result = SweepResult()
    for level, mark, when, kind in ((1, "warned_at", "warn_at", "sla_warning"),
                                    (2, "escalated_at", "due_at", "sla_escalation")):
        while True:
            rows = session.execute(text(f"""
                UPDATE ticket_sla_clocks c SET {mark} = :now
                WHERE c.id IN (
                    SELECT id FROM ticket_sla_clocks
                    WHERE stopped_at IS NULL AND {mark} IS NULL AND {when} <= :now
                    ORDER BY {when} LIMIT :batch FOR UPDATE SKIP LOCKED)
                RETURNING c.ticket_id, c.clock, c.cycle, c.due_at
            """), {"now": now, "batch": batch}).all()
            if not rows:
                break
            for ticket_id, clock, cycle, due_at in rows:
                session.add(TicketEvent(
                    ticket_id=ticket_id, at=now, actor_id=None, kind=kind,
                    note=f"{clock} clock {'near its due time' if level == 1 else 'overdue'}",
                    data={"clock": clock, "cycle": cycle, "due_at": due_at.isoformat()}))
            session.execute(update(Ticket).where(
                Ticket.id.in_({r[0] for r in rows}), Ticket.sla_level < level).values(sla_level=level))
            if level == 1:
                result.warnings += len(rows)
            else:
                result.escalations += len(rows)
            if len(rows) < batch:
                break
    return result
