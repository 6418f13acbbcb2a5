"""Background work of the devices domain: pruning the handset link's tables."""

from __future__ import annotations

import procrastinate

from server.devices import retention
from server.settings import get_settings

blueprint = procrastinate.Blueprint()


def run_retention(max_seconds: float = 600.0) -> retention.RetentionStats:
    """One retention pass with the worker's session factory and clock (logs what it deleted)."""
    from server.jobs import context

    ctx = context()
    return retention.run(ctx.sessionmaker, ctx.clock.now(),
                         retention.RetentionConfig.from_settings(ctx.settings),
                         max_seconds=max_seconds)


@blueprint.periodic(cron=get_settings().device_retention_cron)
@blueprint.task(name="retention", queue="devices", queueing_lock="device_retention")
def retention_task(timestamp: int) -> None:
    """Delete old uplink/downlink messages and dead letters the link no longer needs
    (server/devices/retention.py has the rules)."""
    run_retention()
