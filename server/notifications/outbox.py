"""The SMS send loop: claim due messages, pace them, send them, book the outcome.

It owns its transactions (like a task). The order of steps is what keeps a crash from sending a
message twice (docs/notifications.md, "Exactly one SMS across a crash"):

1. claim: mark due rows 'sending' with a fresh attempt token and COMMIT;
2. send through the provider (outside any transaction);
3. book the answer in a new transaction, only if the attempt token is still ours.

A process that dies between 2 and 3 leaves the row 'sending'. After the lease, ``reconcile`` asks
the provider for a message to that number with that exact text (``find_sent``; the text names the
ticket and the dedupe key forbids identical repeats, so a match is this message): found -> booked
as sent, never resent; not found -> it was never accepted and is sent again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy.orm import Session, sessionmaker

from server.core.clock import Clock
from server.core.db import transaction
from server.notifications import service
from server.notifications.service import SmsPolicy
from sms_gateway import (
    OutboundSms,
    SmsConfigurationError,
    SmsGatewayConfig,
    SmsProvider,
    SmsSendError,
    mask_phone_number,
)

log = structlog.get_logger()


def gateway_config(settings) -> SmsGatewayConfig:
    """The provider settings from the server's settings (the composition root's choice)."""
    if settings.sms_provider == "log":
        return SmsGatewayConfig(provider="log")
    if settings.sms_provider != "twilio":
        raise SmsConfigurationError(f"unknown CREWLINE_SMS_PROVIDER {settings.sms_provider!r}")
    return SmsGatewayConfig(
        provider="twilio", account_sid=settings.twilio_account_sid or None,
        auth_token=settings.twilio_auth_token.get_secret_value() or None,
        from_number=settings.twilio_from or None,
        messaging_service_sid=settings.twilio_messaging_service_sid or None,
        api_base_url=settings.twilio_api_base_url or None,
        timeout_seconds=settings.sms_timeout_seconds)


class Pacer:
    """``rate`` sends per second on average, evenly spaced. Thread-safe.

    Each send gets the next slot of a fixed schedule. A sender that fell behind (a slow answer,
    a sleep that overran) may catch up by at most ``burst`` slots, so the average holds without
    drift and no burst exceeds ``burst`` messages (a token bucket of that capacity). A sender
    that was idle starts a fresh schedule.
    """

    def __init__(self, rate: float, *, burst: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.interval = 1.0 / rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._monotonic, self._sleep = monotonic, sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._monotonic()
            slot = now if self._next is None else max(self._next,
                                                      now - self.burst * self.interval)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


@dataclass
class RunStats:
    claimed: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    unknown: int = 0
    reconciled_found: int = 0
    reconciled_resend: int = 0
    paused: bool = False
    outcomes: dict[str, int] = field(default_factory=dict)


class Outbox:
    """One sending process's loop. Run one at a time per deployment (the procrastinate task
    holds a lock) so that the pace is the configured one."""

    def __init__(self, sessions: sessionmaker[Session], provider: SmsProvider, clock: Clock,
                 policy: SmsPolicy, pacer: Pacer, *, batch_size: int = 50,
                 crash_after_accept: bool = False) -> None:
        self.sessions, self.provider, self.clock = sessions, provider, clock
        self.policy, self.pacer, self.batch_size = policy, pacer, batch_size
        self.crash_after_accept = crash_after_accept

    def reconcile(self, stats: RunStats | None = None) -> RunStats:
        """Settle messages left 'sending' past the lease by asking the provider."""
        stats = stats or RunStats()
        with transaction(self.sessions) as session:
            for message in service.stale_claims(session, self.clock.now(), self.policy):
                try:
                    found = self.provider.find_sent(message.to_e164, message.body)
                except SmsSendError as exc:
                    # Stays 'sending': looked up again on the next run, never resent blindly.
                    log.warning("sms reconcile lookup failed; will retry", message_id=message.id,
                                error=exc.code)
                    continue
                outcome = service.reconcile(message, found, self.clock.now())
                if outcome == "found":
                    stats.reconciled_found += 1
                else:
                    stats.reconciled_resend += 1
                log.info("sms reconciled", message_id=message.id, outcome=outcome)
        return stats

    def run(self, *, max_seconds: float = 30.0, max_messages: int | None = None) -> RunStats:
        """Reconcile, then send due messages until none is due, time is up or the provider
        refuses our credentials."""
        stats = self.reconcile()
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline and not stats.paused:
            limit = self.batch_size
            if max_messages is not None:
                limit = min(limit, max_messages - stats.claimed)
                if limit <= 0:
                    break
            with transaction(self.sessions) as session:
                claims = service.claim_due(session, self.clock.now(), self.policy, limit)
            if not claims.seen:
                break
            stats.claimed += len(claims)
            for index, claim in enumerate(claims):
                if stats.paused:
                    # Never handed to the provider: give them back untouched.
                    with transaction(self.sessions) as session:
                        service.release(session, claims[index:], self.clock.now())
                    break
                self.pacer.wait()
                self._send(claim, stats)
        return stats

    def _send(self, claim: service.Claim, stats: RunStats) -> None:
        sms = OutboundSms(to=claim.to, body=claim.body,
                          status_callback=self.policy.status_callback(claim.id))
        try:
            result = self.provider.send(sms)
        except SmsSendError as exc:
            with transaction(self.sessions) as session:
                outcome = service.record_failure(session, claim, exc, self.clock.now(),
                                                 self.policy)
            log.warning("sms not sent", message_id=claim.id, to=mask_phone_number(claim.to),
                        error=exc.code, outcome=outcome)
            stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
            if outcome == "retry":
                stats.retry += 1
            elif outcome == "failed":
                stats.failed += 1
            elif outcome == "unknown":
                stats.unknown += 1
            elif outcome == "paused":
                stats.paused = True
            return
        if self.crash_after_accept:
            # Test hook (CREWLINE_SMS_CRASH_AFTER_ACCEPT): die exactly between the provider's
            # acceptance and our record of it.
            os._exit(86)
        with transaction(self.sessions) as session:
            service.record_sent(session, claim, result, self.clock.now())
        stats.sent += 1
