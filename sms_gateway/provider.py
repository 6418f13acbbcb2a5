"""The provider interface: what every SMS provider implementation offers its callers.

Callers (the server's outbox worker, the CLI) depend on :class:`SmsProvider` only; the composition
root picks an implementation with :func:`sms_gateway.factory.build_provider`. Adding a provider
(Aliyun SMS, SMPP, ...) means one new module implementing this protocol, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class MessageStatus(StrEnum):
    """Lifecycle states of a message, spelled as Twilio spells them."""

    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELED = "canceled"
    READ = "read"
    PARTIALLY_DELIVERED = "partially_delivered"
    RECEIVING = "receiving"
    RECEIVED = "received"

    @property
    def rank(self) -> int:
        """Position in the lifecycle: higher ranks come later.

        Status callbacks arrive out of order; a stored status should only be replaced by one of a
        higher rank (see :meth:`supersedes`).
        """
        return _RANKS[self]

    @property
    def is_final(self) -> bool:
        """True when the provider will report nothing further for delivery (``read`` aside)."""
        return self.rank >= _RANKS[MessageStatus.DELIVERED]

    def supersedes(self, previous: MessageStatus) -> bool:
        """Whether this status may replace ``previous`` (never move a message backwards).

        >>> MessageStatus.DELIVERED.supersedes(MessageStatus.SENT)
        True
        >>> MessageStatus.SENT.supersedes(MessageStatus.DELIVERED)
        False
        """
        return self.rank > previous.rank


_RANKS: dict[MessageStatus, int] = {
    MessageStatus.ACCEPTED: 0,
    MessageStatus.SCHEDULED: 0,
    MessageStatus.QUEUED: 1,
    MessageStatus.RECEIVING: 1,
    MessageStatus.SENDING: 2,
    MessageStatus.SENT: 3,
    # Final outcomes share a rank: the first one reported wins.
    MessageStatus.DELIVERED: 4,
    MessageStatus.UNDELIVERED: 4,
    MessageStatus.FAILED: 4,
    MessageStatus.CANCELED: 4,
    MessageStatus.PARTIALLY_DELIVERED: 4,
    MessageStatus.RECEIVED: 4,
    MessageStatus.READ: 5,
}


@dataclass(frozen=True, slots=True)
class OutboundSms:
    """One text message to send.

    :param to: recipient in E.164 form (``+8613800138000``).
    :param body: the text; the provider segments it (see :mod:`sms_gateway.segments`).
    :param status_callback: URL the provider should POST delivery-status updates to, if any.
    :param sender: a specific sender (number or alphanumeric id) overriding the provider's
        configured one; ``None`` uses the configured sender / messaging service.
    """

    to: str
    body: str
    status_callback: str | None = None
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """The provider's view of one message, as returned by ``send`` and ``fetch``.

    :param provider: name of the provider holding the message.
    :param message_id: the provider's id for the message (Twilio's ``SM...`` sid).
    :param status: its current status.
    :param to: the recipient as the provider recorded it.
    :param segments: number of billed segments, when the provider reports it.
    :param error_code: the provider's error code for failed/undelivered messages.
    """

    provider: str
    message_id: str
    status: MessageStatus
    to: str
    segments: int | None = None
    error_code: int | None = None


@runtime_checkable
class SmsProvider(Protocol):
    """Anything that can send a text message and report on it later.

    Implementations raise :class:`~sms_gateway.errors.TransientSmsError` when a retry may succeed
    and :class:`~sms_gateway.errors.PermanentSmsError` when it cannot; they never retry on their
    own (the caller's outbox owns retries and pacing).
    """

    @property
    def name(self) -> str:
        """Short, stable provider name stored with each message (``"twilio"``, ``"log"``)."""
        ...

    def send(self, sms: OutboundSms) -> SendResult:
        """Hand ``sms`` to the provider; return its id and initial status."""
        ...

    def fetch(self, message_id: str) -> SendResult:
        """Return the provider's current view of a message sent earlier."""
        ...

    def find_sent(self, to: str, body: str) -> SendResult | None:
        """Look for a message to ``to`` with exactly ``body`` among the latest ones sent.

        For a caller that crashed (or timed out) after handing a message over and before
        recording the answer: ``None`` means the provider holds no such recent message, so it was
        never accepted. Callers make ``(to, body)`` unique (e.g. the body names the ticket) so
        that a match is *this* message.
        """
        ...
