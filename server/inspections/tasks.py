"""Background work of inspections: rounds from plans, and missed-checkpoint alerts."""

from __future__ import annotations

import procrastinate
import structlog

from server.core.db import transaction
from server.inspections import service
from server.settings import get_settings

blueprint = procrastinate.Blueprint()
log = structlog.get_logger()


def run_rounds_sweep() -> tuple[list[int], service.SweepResult]:
    """Generate due rounds, then close rounds whose window ended (two transactions: a failure
    in one does not hold back the other)."""
    from server.jobs import context

    ctx = context()
    with transaction(ctx.sessionmaker) as session:
        created = service.generate_rounds(session, ctx.clock.now())
    with transaction(ctx.sessionmaker) as session:
        closed = service.close_due_rounds(session, ctx.clock.now())
    if created or closed.closed:
        log.info("inspection rounds", created=created, closed=closed.closed, alerts=closed.alerts)
    return created, closed


@blueprint.periodic(cron=get_settings().inspection_rounds_cron)
@blueprint.task(name="rounds_sweep", queue="inspections", queueing_lock="inspection_rounds_sweep")
def rounds_sweep(timestamp: int) -> None:
    """Rounds exactly once per plan and period; alerts exactly once per missed checkpoint."""
    run_rounds_sweep()
