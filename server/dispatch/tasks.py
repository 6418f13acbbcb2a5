"""Background work of dispatch: the auto-assign policy."""

from __future__ import annotations

import procrastinate
import structlog

from server.core.db import transaction
from server.dispatch import service
from server.settings import get_settings

blueprint = procrastinate.Blueprint()
log = structlog.get_logger()


def run_auto_assign() -> list[int]:
    """Auto-assign due tickets (see service.auto_assign_sweep); returns the assignment ids."""
    from server.jobs import context

    ctx = context()
    cfg = service.DispatchConfig.from_settings(ctx.settings)
    with transaction(ctx.sessionmaker) as session:
        done = service.auto_assign_sweep(session, ctx.clock.now(), cfg)
        ids = [a.id for a in done]
        pairs = [(a.ticket_id, a.crew_id) for a in done]
    if pairs:
        log.info("auto-assigned", assignments=pairs)
    return ids


@blueprint.periodic(cron=get_settings().dispatch_auto_assign_cron)
@blueprint.task(name="auto_assign", queue="dispatch", queueing_lock="dispatch_auto_assign")
def auto_assign(timestamp: int) -> None:
    """Emergency tickets under the policy get the best crew within seconds of creation."""
    run_auto_assign()
