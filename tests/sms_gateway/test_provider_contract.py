"""One contract, run against every provider implementation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sms_gateway import (
    InvalidRecipientError,
    MessageNotFoundError,
    MessageStatus,
    OutboundSms,
    PermanentSmsError,
    SmsProvider,
    build_provider,
)
from tests.sms_gateway.conftest import twilio_config
from tests.support.twilio_server import TwilioTestServer


@pytest.fixture(params=["log", "twilio"])
def provider(request: pytest.FixtureRequest) -> Iterator[SmsProvider]:
    if request.param == "log":
        yield build_provider({"provider": "log"})
        return
    with TwilioTestServer() as server:
        yield build_provider(twilio_config(server))


def test_is_an_sms_provider(provider: SmsProvider) -> None:
    assert isinstance(provider, SmsProvider)
    assert provider.name in ("log", "twilio")


def test_send_then_fetch(provider: SmsProvider) -> None:
    result = provider.send(
        OutboundSms(
            to="+358401234567",
            body="Crew arriving in 10 min",
            status_callback="https://x.example/cb",
        )
    )
    assert result.provider == provider.name
    assert result.message_id
    assert result.to == "+358401234567"
    assert result.status in (MessageStatus.ACCEPTED, MessageStatus.QUEUED, MessageStatus.SENT)
    assert result.segments == 1
    assert result.error_code is None
    fetched = provider.fetch(result.message_id)
    assert fetched.message_id == result.message_id
    assert fetched.to == result.to


def test_message_ids_are_unique(provider: SmsProvider) -> None:
    ids = {provider.send(OutboundSms(to="+358401234567", body="x")).message_id for _ in range(5)}
    assert len(ids) == 5


def test_long_chinese_text_counts_segments(provider: SmsProvider) -> None:
    result = provider.send(OutboundSms(to="+8613800138000", body="抢修" * 40))
    assert result.segments == 2


def test_invalid_recipient(provider: SmsProvider) -> None:
    with pytest.raises(InvalidRecipientError) as caught:
        provider.send(OutboundSms(to="0401234567", body="x"))
    assert caught.value.provider_code == 21211
    assert caught.value.provider == provider.name


def test_empty_body_is_permanent(provider: SmsProvider) -> None:
    with pytest.raises(PermanentSmsError) as caught:
        provider.send(OutboundSms(to="+358401234567", body=""))
    assert caught.value.provider_code == 21602


def test_fetch_unknown(provider: SmsProvider) -> None:
    with pytest.raises(MessageNotFoundError) as caught:
        provider.fetch("SM" + "f" * 32)
    assert caught.value.provider_code == 20404
