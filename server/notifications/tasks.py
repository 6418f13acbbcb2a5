"""Background work of the notifications domain: the SMS outbox sweep."""

from __future__ import annotations

from functools import lru_cache

import procrastinate
import structlog
from sqlalchemy import text

from server.notifications.outbox import Outbox, Pacer, RunStats, gateway_config
from server.notifications.service import SmsPolicy
from server.settings import Environment, get_settings
from sms_gateway import SmsConfigurationError, build_provider

blueprint = procrastinate.Blueprint()
log = structlog.get_logger()


@lru_cache
def outbox() -> Outbox:
    """The worker process's outbox: one provider client and one pacer for its lifetime."""
    from server.jobs import context

    ctx = context()
    settings = ctx.settings
    if settings.sms_crash_after_accept and settings.env is Environment.production:
        raise SmsConfigurationError("CREWLINE_SMS_CRASH_AFTER_ACCEPT is a test hook")
    if settings.sms_sending_lease_seconds <= settings.sms_timeout_seconds:
        # A claim younger than the lease may still be in a provider call: reconciling it could
        # send the message a second time.
        raise SmsConfigurationError("CREWLINE_SMS_SENDING_LEASE_SECONDS must exceed "
                                    "CREWLINE_SMS_TIMEOUT_SECONDS")
    return Outbox(ctx.sessionmaker, build_provider(gateway_config(settings)), ctx.clock,
                  SmsPolicy.from_settings(settings), Pacer(settings.sms_messages_per_second),
                  batch_size=max(1, min(50, int(settings.sms_messages_per_second))),
                  crash_after_accept=settings.sms_crash_after_accept)


# One sending loop at a time across all workers, so the configured pace is the global pace. A
# session advisory lock rather than procrastinate's job `lock`: the database drops it with the
# connection when a worker dies, while a job lock would stay held by the dead worker's job.
ADVISORY_LOCK = 0x534D53  # "SMS"


def run_outbox_sweep(max_seconds: float = 20.0) -> RunStats:
    from server.jobs import context

    box = outbox()
    engine = context().sessionmaker.kw["bind"]
    with engine.connect() as connection:  # one connection throughout: the lock is its own
        locked = connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                    {"key": ADVISORY_LOCK}).scalar_one()
        connection.commit()  # hold no transaction open while sending
        if not locked:
            return RunStats()
        try:
            stats = box.run(max_seconds=max_seconds)
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK})
            connection.commit()
    if stats.claimed or stats.reconciled_found or stats.reconciled_resend:
        log.info("sms outbox", claimed=stats.claimed, sent=stats.sent, retry=stats.retry,
                 failed=stats.failed, unknown=stats.unknown, found=stats.reconciled_found,
                 resend=stats.reconciled_resend, paused=stats.paused)
    return stats


@blueprint.periodic(cron=get_settings().sms_sweep_cron)
@blueprint.task(name="sms_outbox", queue="sms", queueing_lock="sms_outbox")
def sms_outbox(timestamp: int) -> None:
    """Send due SMS (every second; reconciles messages a crashed sweep left 'sending')."""
    run_outbox_sweep()
