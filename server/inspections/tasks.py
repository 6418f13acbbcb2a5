"""Background work of inspections: rounds from plans (also ahead of their window), rounds for
handsets registered later, and missed-checkpoint alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import procrastinate
import structlog

from server.core.db import transaction
from server.inspections import service
from server.settings import get_settings

blueprint = procrastinate.Blueprint()
log = structlog.get_logger()


@dataclass(frozen=True)
class SweepOutcome:
    created: list[int]
    closed: service.SweepResult
    delivered: int  # messages queued to handsets that lacked an open or upcoming round


def run_rounds_sweep() -> SweepOutcome:
    """Generate due rounds (the current period's and those whose window opens within
    ``inspection_rounds_ahead_hours``), close rounds whose window ended, then queue open and
    upcoming rounds to handsets that do not have them (three transactions: a failure in one does
    not hold back the others)."""
    from server.jobs import context

    ctx = context()
    ahead = timedelta(hours=ctx.settings.inspection_rounds_ahead_hours)
    with transaction(ctx.sessionmaker) as session:
        created = service.generate_rounds(session, ctx.clock.now(), ahead=ahead)
    with transaction(ctx.sessionmaker) as session:
        closed = service.close_due_rounds(session, ctx.clock.now())
    with transaction(ctx.sessionmaker) as session:
        delivered = service.deliver_pending(session, ctx.clock.now())
    if created or closed.closed or delivered:
        log.info("inspection rounds", created=created, closed=closed.closed, alerts=closed.alerts,
                 delivered=delivered)
    return SweepOutcome(created, closed, delivered)


@blueprint.periodic(cron=get_settings().inspection_rounds_cron)
@blueprint.task(name="rounds_sweep", queue="inspections", queueing_lock="inspection_rounds_sweep")
def rounds_sweep(timestamp: int) -> None:
    """Rounds exactly once per plan and period; each handset gets each round once; alerts exactly
    once per missed checkpoint."""
    run_rounds_sweep()
