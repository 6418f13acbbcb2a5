"""Crewline's SMS gateway library: providers, segment counting, webhook signatures and keywords.

A pure library: no web framework, no database, no global state. The Twilio-specific pieces
(:class:`TwilioProvider`, :class:`TwilioSignatureValidator`) live in
:mod:`sms_gateway.twilio_provider`, the only module importing the ``twilio`` SDK; they are loaded
on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sms_gateway.errors import (
    InvalidRecipientError,
    MessageNotFoundError,
    PermanentSmsError,
    ProviderAuthError,
    RateLimitedError,
    RecipientOptedOutError,
    SmsConfigurationError,
    SmsError,
    SmsSendError,
    TransientSmsError,
    WebhookPayloadError,
)
from sms_gateway.factory import SmsGatewayConfig, build_provider
from sms_gateway.keywords import ReplyIntent, classify_reply, normalise_reply
from sms_gateway.log_provider import LoggedSms, LogProvider
from sms_gateway.numbers import is_e164, mask_phone_number, mask_phone_numbers_in
from sms_gateway.provider import MessageStatus, OutboundSms, SendResult, SmsProvider
from sms_gateway.segments import SegmentedMessage, SmsEncoding, detect_encoding, segment_message
from sms_gateway.webhooks import (
    InboundSms,
    StatusCallback,
    parse_inbound_sms,
    parse_status_callback,
)

if TYPE_CHECKING:
    from sms_gateway.twilio_provider import TwilioProvider, TwilioSignatureValidator

_TWILIO_NAMES = ("TwilioProvider", "TwilioSignatureValidator")


def __getattr__(name: str) -> Any:
    if name in _TWILIO_NAMES:
        from sms_gateway import twilio_provider

        return getattr(twilio_provider, name)
    raise AttributeError(f"module 'sms_gateway' has no attribute {name!r}")


__all__ = [
    "InboundSms",
    "InvalidRecipientError",
    "LogProvider",
    "LoggedSms",
    "MessageNotFoundError",
    "MessageStatus",
    "OutboundSms",
    "PermanentSmsError",
    "ProviderAuthError",
    "RateLimitedError",
    "RecipientOptedOutError",
    "ReplyIntent",
    "SegmentedMessage",
    "SendResult",
    "SmsConfigurationError",
    "SmsEncoding",
    "SmsError",
    "SmsGatewayConfig",
    "SmsProvider",
    "SmsSendError",
    "StatusCallback",
    "TransientSmsError",
    "TwilioProvider",
    "TwilioSignatureValidator",
    "WebhookPayloadError",
    "build_provider",
    "classify_reply",
    "detect_encoding",
    "is_e164",
    "mask_phone_number",
    "mask_phone_numbers_in",
    "normalise_reply",
    "parse_inbound_sms",
    "parse_status_callback",
    "segment_message",
]
