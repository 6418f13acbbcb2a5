"""Background work of the tickets domain."""

from __future__ import annotations

import procrastinate
import structlog

from server.core.db import transaction
from server.settings import get_settings
from server.tickets import sla

blueprint = procrastinate.Blueprint()
log = structlog.get_logger()


def run_sla_sweep() -> sla.SweepResult:
    from server.jobs import context

    ctx = context()
    with transaction(ctx.sessionmaker) as session:
        result = sla.sweep(session, ctx.clock.now())
    if result.warnings or result.escalations:
        log.info("sla sweep", warnings=result.warnings, escalations=result.escalations)
    return result


@blueprint.periodic(cron=get_settings().sla_sweep_cron)
@blueprint.task(name="sla_sweep", queue="sla", queueing_lock="sla_sweep")
def sla_sweep(timestamp: int) -> None:
    """Raise due SLA warnings and escalations (every few seconds; idempotent)."""
    run_sla_sweep()
