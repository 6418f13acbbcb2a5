"""Fixtures: the local Twilio-compatible server and providers pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sms_gateway import SmsGatewayConfig, build_provider
from sms_gateway.twilio_provider import TwilioProvider
from tests.support.twilio_server import TwilioTestServer, WebhookReceiver

SENDER = "+15005550006"


@pytest.fixture
def twilio_server() -> Iterator[TwilioTestServer]:
    """A fresh local Twilio API server per test (state and fault injection never leak)."""
    with TwilioTestServer() as server:
        yield server


def twilio_config(server: TwilioTestServer, **overrides: object) -> SmsGatewayConfig:
    """Settings sending through ``server`` with the real SDK."""
    settings: dict[str, object] = {
        "provider": "twilio",
        "account_sid": server.account_sid,
        "auth_token": server.auth_token,
        "from_number": SENDER,
        "api_base_url": server.base_url,
        "timeout_seconds": 5.0,
        **overrides,
    }
    return SmsGatewayConfig.from_mapping(settings)


@pytest.fixture
def twilio_provider(twilio_server: TwilioTestServer) -> TwilioProvider:
    """The Twilio provider, built by the factory, talking to ``twilio_server``."""
    provider = build_provider(twilio_config(twilio_server))
    assert isinstance(provider, TwilioProvider)
    return provider


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """An HTTP endpoint recording the webhooks the server fires."""
    with WebhookReceiver() as receiver:
        yield receiver
