"""Background work of the outage domain: planned-maintenance notices and outage inference."""

from __future__ import annotations

import procrastinate
import structlog

from server.core.db import transaction
from server.outages import inference, service
from server.settings import get_settings

blueprint = procrastinate.Blueprint()
log = structlog.get_logger()


def run_planned_notices() -> list[int]:
    from server.jobs import context

    ctx = context()
    with transaction(ctx.sessionmaker) as session:
        done = service.send_due_planned_notices(session, ctx.clock.now(),
                                                service.OutagePolicy.from_settings(ctx.settings))
    if done:
        log.info("planned outage notices", outages=done)
    return done


def run_inference() -> inference.InferenceResult:
    from server.jobs import context

    ctx = context()
    with transaction(ctx.sessionmaker) as session:
        result = inference.run(session, ctx.clock.now(),
                               inference.InferencePolicy.from_settings(ctx.settings))
    if result.raised or result.attached:
        log.info("outage inference", raised=result.raised, attached=result.attached)
    return result


@blueprint.periodic(cron=get_settings().outage_planned_cron)
@blueprint.task(name="planned_notices", queue="outages", queueing_lock="outage_planned_notices")
def planned_notices(timestamp: int) -> None:
    """Tell customers of planned maintenance the configured time ahead (each outage once)."""
    run_planned_notices()


@blueprint.periodic(cron=get_settings().outage_infer_cron)
@blueprint.task(name="inference", queue="outages", queueing_lock="outage_inference")
def infer(timestamp: int) -> None:
    """Raise suspected outages from clusters of no-water / low-pressure calls."""
    run_inference()
