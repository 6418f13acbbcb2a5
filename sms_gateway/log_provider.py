"""The ``log`` provider: sends nothing, keeps the latest messages in memory for the demo.

It validates like a real gateway (E.164 recipient, non-empty body) and raises the same errors with
Twilio's codes, so the demo and the tests exercise the same failure paths as production.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sms_gateway.errors import (
    InvalidRecipientError,
    MessageNotFoundError,
    PermanentSmsError,
    SmsConfigurationError,
)
from sms_gateway.numbers import is_e164, mask_phone_number
from sms_gateway.provider import MessageStatus, OutboundSms, SendResult
from sms_gateway.segments import SmsEncoding, segment_message

_logger = logging.getLogger(__name__)

# Twilio's codes, so callers see the same errors whichever provider is configured.
_INVALID_TO_CODE = 21211
_MISSING_BODY_CODE = 21602
_NOT_FOUND_CODE = 20404


@dataclass(frozen=True, slots=True)
class LoggedSms:
    """A message the log provider accepted, as shown in the demo console."""

    message_id: str
    to: str
    body: str
    sender: str
    status_callback: str | None
    created_at: datetime
    encoding: SmsEncoding
    segments: int


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LogProvider:
    """An :class:`~sms_gateway.provider.SmsProvider` that logs (masked) and remembers messages.

    Thread-safe; keeps at most ``capacity`` messages, forgetting the oldest first.

    :param sender: the sender shown for messages that do not name one.
    :param capacity: how many messages to keep.
    :param clock: returns the current time (injected so tests control it).
    """

    def __init__(
        self,
        *,
        sender: str = "Crewline",
        capacity: int = 500,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if capacity < 1:
            raise SmsConfigurationError(f"log provider capacity must be >= 1, got {capacity}")
        self._sender = sender
        self._capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._messages: OrderedDict[str, LoggedSms] = OrderedDict()

    @property
    def name(self) -> str:
        """Always ``"log"``."""
        return "log"

    @property
    def capacity(self) -> int:
        """The most messages kept in memory."""
        return self._capacity

    def send(self, sms: OutboundSms) -> SendResult:
        """Record ``sms`` and log it with the recipient masked.

        :raises InvalidRecipientError: ``to`` is not an E.164 number (code 21211).
        :raises PermanentSmsError: the body is empty (code 21602).
        """
        if not is_e164(sms.to):
            raise InvalidRecipientError(
                f"The 'To' number {mask_phone_number(sms.to)} is not a valid phone number.",
                provider=self.name,
                provider_code=_INVALID_TO_CODE,
            )
        if not sms.body:
            raise PermanentSmsError(
                "Message body is required.", provider=self.name, provider_code=_MISSING_BODY_CODE
            )
        segmented = segment_message(sms.body)
        logged = LoggedSms(
            message_id="LG" + uuid.uuid4().hex,
            to=sms.to,
            body=sms.body,
            sender=sms.sender or self._sender,
            status_callback=sms.status_callback,
            created_at=self._clock(),
            encoding=segmented.encoding,
            segments=segmented.segment_count,
        )
        with self._lock:
            self._messages[logged.message_id] = logged
            while len(self._messages) > self._capacity:
                self._messages.popitem(last=False)
        _logger.info(
            "sms to %s (%s, %d segment(s)): %s",
            mask_phone_number(sms.to),
            segmented.encoding,
            segmented.segment_count,
            sms.body,
        )
        return self._result(logged)

    def fetch(self, message_id: str) -> SendResult:
        """Return a remembered message's status.

        :raises MessageNotFoundError: unknown id, or the message was forgotten (code 20404).
        """
        with self._lock:
            logged = self._messages.get(message_id)
        if logged is None:
            raise MessageNotFoundError(
                f"No message {message_id!r}", provider=self.name, provider_code=_NOT_FOUND_CODE
            )
        return self._result(logged)

    def find_sent(self, to: str, body: str) -> SendResult | None:
        """The newest remembered message to ``to`` with ``body`` (``None`` after a restart)."""
        with self._lock:
            found = next(
                (m for m in reversed(self._messages.values()) if m.to == to and m.body == body),
                None,
            )
        return self._result(found) if found else None

    def messages(self) -> list[LoggedSms]:
        """The remembered messages, oldest first (a snapshot)."""
        with self._lock:
            return list(self._messages.values())

    def clear(self) -> None:
        """Forget every message."""
        with self._lock:
            self._messages.clear()

    def _result(self, logged: LoggedSms) -> SendResult:
        # Nothing leaves the process, so "sent" is the whole truth and it never changes.
        return SendResult(
            provider=self.name,
            message_id=logged.message_id,
            status=MessageStatus.SENT,
            to=logged.to,
            segments=logged.segments,
        )
