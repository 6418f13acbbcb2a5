"""find_sent: finding a message again by (recipient, body) after its creation was not recorded."""

from __future__ import annotations

from sms_gateway import OutboundSms, SmsProvider, build_provider
from tests.sms_gateway.conftest import twilio_config
from tests.sms_gateway.test_provider_contract import provider  # noqa: F401  (the contract fixture)
from tests.support.twilio_server import TwilioTestServer


def test_finds_the_message_by_recipient_and_body(provider: SmsProvider) -> None:  # noqa: F811
    assert provider.find_sent("+358401234567", "Ticket CL-0000001 received") is None
    first = provider.send(OutboundSms(to="+358401234567", body="Ticket CL-0000001 received"))
    provider.send(OutboundSms(to="+358401234567", body="Ticket CL-0000002 received"))
    provider.send(OutboundSms(to="+358409999999", body="Ticket CL-0000001 received"))
    found = provider.find_sent("+358401234567", "Ticket CL-0000001 received")
    assert found is not None and found.message_id == first.message_id
    assert found.to == "+358401234567"
    assert provider.find_sent("+358401234567", "Ticket CL-0000003 received") is None


def test_twilio_lookup_goes_through_the_list_api_with_filters() -> None:
    with TwilioTestServer() as server:
        provider = build_provider(twilio_config(server))
        sent = provider.send(OutboundSms(to="+8613800138000", body="维修单 CL-0000009 已受理"))
        other_sender = build_provider(twilio_config(server, from_number="+15005550009"))
        other_sender.send(OutboundSms(to="+8613800138000", body="维修单 CL-0000009 已受理"))
        found = provider.find_sent("+8613800138000", "维修单 CL-0000009 已受理")
        assert found is not None and found.message_id == sent.message_id
        lists = [r for r in server.requests if r.method == "GET"]
        assert len(lists) == 1 and lists[0].path.endswith("/Messages.json")
        assert lists[0].response_status == 200


def test_twilio_lookup_failures_are_transient() -> None:
    import pytest

    from sms_gateway import TransientSmsError

    with TwilioTestServer() as server:
        provider = build_provider(twilio_config(server))
        server.fail_next(1, status=503)
        with pytest.raises(TransientSmsError):
            provider.find_sent("+8613800138000", "x")
