"""Choosing and building a provider from plain settings (the composition root calls this)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sms_gateway.errors import SmsConfigurationError
from sms_gateway.log_provider import LogProvider
from sms_gateway.provider import SmsProvider

PROVIDER_KINDS = ("log", "twilio")


@dataclass(frozen=True, slots=True)
class SmsGatewayConfig:
    """Settings of the SMS provider; fields not used by the chosen provider are ignored.

    :param provider: ``"log"`` (demo: keep messages in memory) or ``"twilio"``.
    :param sender: log provider: the sender shown for messages.
    :param log_capacity: log provider: how many messages to keep.
    :param account_sid: twilio: account sid (``AC...``).
    :param auth_token: twilio: auth token (never shown in ``repr``).
    :param api_key_sid: twilio: API key sid (``SK...``) to authenticate with instead.
    :param from_number: twilio: default sender.
    :param messaging_service_sid: twilio: messaging service (``MG...``).
    :param api_base_url: twilio: Twilio-compatible server to use instead of Twilio (tests).
    :param region: twilio: region (``ie1``...).
    :param edge: twilio: edge location (``dublin``...).
    :param timeout_seconds: twilio: per-request timeout.
    """

    provider: str = "log"
    sender: str = "Crewline"
    log_capacity: int = 500
    account_sid: str | None = None
    auth_token: str | None = field(default=None, repr=False)
    api_key_sid: str | None = None
    from_number: str | None = None
    messaging_service_sid: str | None = None
    api_base_url: str | None = None
    region: str | None = None
    edge: str | None = None
    timeout_seconds: float = 10.0

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> SmsGatewayConfig:
        """Build the config from a plain mapping with the same keys as the fields.

        :raises SmsConfigurationError: a key is not a field of this class.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise SmsConfigurationError(f"unknown SMS setting(s): {', '.join(unknown)}")
        return cls(**dict(settings))


def build_provider(config: SmsGatewayConfig | Mapping[str, Any]) -> SmsProvider:
    """Return the provider ``config`` asks for.

    :raises SmsConfigurationError: unknown provider or settings it cannot work with.
    """
    if not isinstance(config, SmsGatewayConfig):
        config = SmsGatewayConfig.from_mapping(config)
    if config.provider == "log":
        return LogProvider(sender=config.sender, capacity=config.log_capacity)
    if config.provider == "twilio":
        # Imported here so that the demo and tests of other providers never need the SDK loaded.
        from sms_gateway.twilio_provider import TwilioProvider

        return TwilioProvider(
            account_sid=config.account_sid or "",
            auth_token=config.auth_token or "",
            api_key_sid=config.api_key_sid,
            from_number=config.from_number,
            messaging_service_sid=config.messaging_service_sid,
            api_base_url=config.api_base_url,
            region=config.region,
            edge=config.edge,
            timeout_seconds=config.timeout_seconds,
        )
    raise SmsConfigurationError(
        f"unknown SMS provider {config.provider!r}; expected one of {', '.join(PROVIDER_KINDS)}"
    )
