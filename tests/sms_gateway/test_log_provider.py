from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pytest

from sms_gateway import (
    LogProvider,
    MessageNotFoundError,
    MessageStatus,
    OutboundSms,
    SmsConfigurationError,
    SmsEncoding,
)

NOW = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)


def test_keeps_messages_for_display() -> None:
    provider = LogProvider(sender="Crewline", clock=lambda: NOW)
    result = provider.send(
        OutboundSms(
            to="+8613800138000", body="您的报修单 T-1 已受理", status_callback="http://x/cb"
        )
    )
    assert result.provider == "log"
    assert result.status is MessageStatus.SENT
    assert result.segments == 1
    [logged] = provider.messages()
    assert logged.message_id == result.message_id
    assert logged.to == "+8613800138000"
    assert logged.sender == "Crewline"
    assert logged.created_at == NOW
    assert logged.encoding is SmsEncoding.UCS_2
    assert logged.status_callback == "http://x/cb"


def test_sender_override() -> None:
    provider = LogProvider()
    provider.send(OutboundSms(to="+358401234567", body="hi", sender="HelenGrid"))
    assert provider.messages()[0].sender == "HelenGrid"


def test_bounded_forgets_oldest() -> None:
    provider = LogProvider(capacity=3)
    ids = [
        provider.send(OutboundSms(to="+358401234567", body=f"m{i}")).message_id for i in range(5)
    ]
    assert [m.body for m in provider.messages()] == ["m2", "m3", "m4"]
    with pytest.raises(MessageNotFoundError):
        provider.fetch(ids[0])
    assert provider.fetch(ids[4]).message_id == ids[4]


def test_rejects_zero_capacity() -> None:
    with pytest.raises(SmsConfigurationError):
        LogProvider(capacity=0)


def test_thread_safe_under_concurrent_senders() -> None:
    provider = LogProvider(capacity=10_000)
    barrier = threading.Barrier(8)

    def sender(n: int) -> None:
        barrier.wait()
        for i in range(250):
            provider.send(OutboundSms(to="+358401234567", body=f"{n}-{i}"))

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    messages = provider.messages()
    assert len(messages) == 2000
    assert len({m.message_id for m in messages}) == 2000


def test_thread_safe_bound_holds_under_concurrency() -> None:
    provider = LogProvider(capacity=50)
    threads = [
        threading.Thread(
            target=lambda: [
                provider.send(OutboundSms(to="+358401234567", body="x")) for _ in range(200)
            ]
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(provider.messages()) == 50


def test_clear() -> None:
    provider = LogProvider()
    provider.send(OutboundSms(to="+358401234567", body="x"))
    provider.clear()
    assert provider.messages() == []


def test_log_line_masks_the_number(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sms_gateway.log_provider"):
        LogProvider().send(OutboundSms(to="+8613800138000", body="crew arriving"))
    assert "+86*******8000" in caplog.text
    assert "13800138000" not in caplog.text
    assert "crew arriving" in caplog.text
