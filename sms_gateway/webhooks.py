"""Parsing of Twilio webhook parameters into typed records.

Check the request's signature first (:class:`sms_gateway.twilio_provider.TwilioSignatureValidator`),
then parse. Parameters are the decoded form fields of the POST, as a mapping of name to value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sms_gateway.errors import WebhookPayloadError
from sms_gateway.keywords import ReplyIntent, classify_reply
from sms_gateway.provider import MessageStatus


@dataclass(frozen=True, slots=True)
class StatusCallback:
    """A delivery-status update for a message we sent."""

    message_id: str
    status: MessageStatus
    to: str | None
    sender: str | None
    account_sid: str | None
    messaging_service_sid: str | None
    error_code: int | None


@dataclass(frozen=True, slots=True)
class InboundSms:
    """A text message a customer sent to one of our numbers."""

    message_id: str
    sender: str
    to: str
    body: str
    account_sid: str | None
    messaging_service_sid: str | None
    segments: int | None

    @property
    def intent(self) -> ReplyIntent:
        """What the text asks for (see :func:`sms_gateway.keywords.classify_reply`)."""
        return classify_reply(self.body)


def parse_status_callback(params: Mapping[str, str]) -> StatusCallback:
    """Build a :class:`StatusCallback` from a status callback's form fields.

    :raises WebhookPayloadError: ``MessageSid`` or the status is missing, or the status or error
        code is not understood.
    """
    status_text = _optional(params, "MessageStatus") or _optional(params, "SmsStatus")
    if status_text is None:
        raise WebhookPayloadError("status callback without MessageStatus")
    try:
        status = MessageStatus(status_text.lower())
    except ValueError:
        raise WebhookPayloadError(f"unknown message status {status_text!r}") from None
    return StatusCallback(
        message_id=_message_sid(params),
        status=status,
        to=_optional(params, "To"),
        sender=_optional(params, "From"),
        account_sid=_optional(params, "AccountSid"),
        messaging_service_sid=_optional(params, "MessagingServiceSid"),
        error_code=_optional_int(params, "ErrorCode"),
    )


def parse_inbound_sms(params: Mapping[str, str]) -> InboundSms:
    """Build an :class:`InboundSms` from an incoming-message webhook's form fields.

    :raises WebhookPayloadError: ``MessageSid``, ``From`` or ``To`` is missing.
    """
    return InboundSms(
        message_id=_message_sid(params),
        sender=_required(params, "From"),
        to=_required(params, "To"),
        body=params.get("Body", ""),
        account_sid=_optional(params, "AccountSid"),
        messaging_service_sid=_optional(params, "MessagingServiceSid"),
        segments=_optional_int(params, "NumSegments"),
    )


def _message_sid(params: Mapping[str, str]) -> str:
    # Older callbacks carry SmsSid / SmsMessageSid alongside (or instead of) MessageSid.
    for name in ("MessageSid", "SmsMessageSid", "SmsSid"):
        value = _optional(params, name)
        if value is not None:
            return value
    raise WebhookPayloadError("webhook without MessageSid")


def _optional(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return value if value else None


def _required(params: Mapping[str, str], name: str) -> str:
    value = _optional(params, name)
    if value is None:
        raise WebhookPayloadError(f"webhook without {name}")
    return value


def _optional_int(params: Mapping[str, str], name: str) -> int | None:
    value = _optional(params, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise WebhookPayloadError(f"{name} is not a number: {value!r}") from None
