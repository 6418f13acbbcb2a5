"""The error family of the ``sms_gateway`` library.

Every error carries a stable string ``code`` (for the server's error table and logs) and, when a
provider reported one, the provider's own numeric error code in ``provider_code`` (Twilio's 21610,
21211, 20429, ...).

The split that matters to callers is :class:`TransientSmsError` (retry later with backoff: rate
limiting, 5xx, network trouble) versus :class:`PermanentSmsError` (retrying the same message can
never succeed: opted-out or invalid recipient, any other 4xx).
"""

from __future__ import annotations


class SmsError(Exception):
    """Base class of every error raised by :mod:`sms_gateway`."""

    code: str = "sms.error"


class SmsConfigurationError(SmsError, ValueError):
    """Provider settings are missing, unknown or contradictory."""

    code = "sms.configuration"


class WebhookPayloadError(SmsError, ValueError):
    """A webhook's parameters lack a required field or hold an unusable value."""

    code = "sms.webhook_payload"


class SmsSendError(SmsError):
    """A provider refused or could not complete a request about a message.

    :param message: human-readable reason (never contains the full phone number).
    :param provider: name of the provider that raised it (``"twilio"``, ``"log"``).
    :param provider_code: the provider's numeric error code, if it gave one.
    :param http_status: the HTTP status of the provider's answer, if there was one.
    """

    code = "sms.send_failed"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        provider_code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.provider_code = provider_code
        self.http_status = http_status

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"provider_code={self.provider_code!r}, http_status={self.http_status!r})"
        )


class TransientSmsError(SmsSendError):
    """Retrying later may succeed (HTTP 429, 5xx, connection or timeout problems).

    ``outcome_unknown`` is true when the request may have reached the provider before things went
    wrong (read timeout, connection dropped mid-answer): the message may already be on its way,
    so a blind retry risks a duplicate SMS. It is false when the provider certainly did not accept
    the message (connection refused, an HTTP error answer).
    """

    code = "sms.transient"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        provider_code: int | None = None,
        http_status: int | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(
            message, provider=provider, provider_code=provider_code, http_status=http_status
        )
        self.outcome_unknown = outcome_unknown


class RateLimitedError(TransientSmsError):
    """The provider asked us to slow down (HTTP 429 / Twilio 20429)."""

    code = "sms.rate_limited"


class PermanentSmsError(SmsSendError):
    """Retrying the same request can never succeed (4xx other than 429)."""

    code = "sms.permanent"


class RecipientOptedOutError(PermanentSmsError):
    """The recipient unsubscribed from this sender (Twilio 21610): record the opt-out."""

    code = "sms.recipient_opted_out"


class InvalidRecipientError(PermanentSmsError):
    """The ``To`` number is not a valid (mobile) number (Twilio 21211, 21614)."""

    code = "sms.invalid_recipient"


class ProviderAuthError(PermanentSmsError):
    """The provider rejected our credentials (HTTP 401/403, Twilio 20003).

    Permanent for the request, but it says nothing about the message itself: a worker should stop
    sending and alert rather than mark every queued message failed.
    """

    code = "sms.provider_auth"


class MessageNotFoundError(PermanentSmsError):
    """The provider knows no message with that id (Twilio 20404)."""

    code = "sms.message_not_found"
