"""Webhook signatures (through the SDK's RequestValidator) and webhook parameter parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from sms_gateway import (
    MessageStatus,
    OutboundSms,
    ReplyIntent,
    WebhookPayloadError,
    parse_inbound_sms,
    parse_status_callback,
)
from sms_gateway.twilio_provider import TwilioProvider, TwilioSignatureValidator
from tests.support.twilio_server import TwilioTestServer, WebhookReceiver

URL = "https://crewline.example/webhooks/sms/status?tenant=helsinki"
PARAMS = {
    "MessageSid": "SM" + "a" * 32,
    "MessageStatus": "delivered",
    "To": "+8613800138000",
    "From": "+15005550006",
    "AccountSid": "AC" + "b" * 32,
}


@pytest.fixture
def validator(twilio_server: TwilioTestServer) -> TwilioSignatureValidator:
    return TwilioSignatureValidator(twilio_server.auth_token)


def test_accepts_signature_computed_by_twilio_logic(
    twilio_server: TwilioTestServer, validator: TwilioSignatureValidator
) -> None:
    signature = twilio_server.sign(URL, PARAMS)
    assert validator.validate(URL, PARAMS, signature)
    assert validator.sign(URL, PARAMS) == signature


def test_accepts_pairs_with_repeated_names(
    twilio_server: TwilioTestServer, validator: TwilioSignatureValidator
) -> None:
    # Twilio's algorithm: URL, then each name followed by each of its values, sorted.
    pairs = [("MediaUrl", "b"), ("MediaUrl", "a"), ("Body", "hi")]
    signed = URL + "Bodyhi" + "MediaUrla" + "MediaUrlb"
    expected = base64.b64encode(
        hmac.new(twilio_server.auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    ).decode()
    assert validator.validate(URL, pairs, expected)
    assert not validator.validate(URL, [("Body", "hi")], expected)


def test_rejects_tampered_parameter(
    twilio_server: TwilioTestServer, validator: TwilioSignatureValidator
) -> None:
    signature = twilio_server.sign(URL, PARAMS)
    assert not validator.validate(URL, {**PARAMS, "MessageStatus": "failed"}, signature)
    assert not validator.validate(URL, {**PARAMS, "Extra": "1"}, signature)
    without_to = {k: v for k, v in PARAMS.items() if k != "To"}
    assert not validator.validate(URL, without_to, signature)


def test_rejects_wrong_url(
    twilio_server: TwilioTestServer, validator: TwilioSignatureValidator
) -> None:
    signature = twilio_server.sign(URL, PARAMS)
    assert not validator.validate(URL.replace("helsinki", "espoo"), PARAMS, signature)
    assert not validator.validate("http://crewline.example/webhooks/sms/status", PARAMS, signature)


def test_rejects_wrong_token(twilio_server: TwilioTestServer) -> None:
    signature = twilio_server.sign(URL, PARAMS)
    assert not TwilioSignatureValidator("another-token").validate(URL, PARAMS, signature)


@pytest.mark.parametrize("signature", [None, "", "bm90LWEtc2lnbmF0dXJl"])
def test_rejects_missing_or_garbage_signature(
    validator: TwilioSignatureValidator, signature: str | None
) -> None:
    assert not validator.validate(URL, PARAMS, signature)


def test_default_port_variants_accepted(validator: TwilioSignatureValidator) -> None:
    # Twilio may sign with or without an explicit default port; the SDK accepts both.
    signature = validator.sign("https://crewline.example/cb", PARAMS)
    assert validator.validate("https://crewline.example:443/cb", PARAMS, signature)


def test_json_body_with_body_sha256(validator: TwilioSignatureValidator) -> None:
    body = '{"MessageSid": "SM1"}'
    url = "https://crewline.example/cb?bodySHA256=" + hashlib.sha256(body.encode()).hexdigest()
    signature = validator.sign(url, {})
    assert validator.validate(url, body, signature)
    assert not validator.validate(url, body + " ", signature)


def test_status_callbacks_fired_by_server_are_signed_and_parse(
    twilio_server: TwilioTestServer,
    twilio_provider: TwilioProvider,
    webhook_receiver: WebhookReceiver,
) -> None:
    callback_url = webhook_receiver.url("/webhooks/sms/status?m=42")
    sent = twilio_provider.send(
        OutboundSms(to="+8613800138000", body="crew assigned", status_callback=callback_url)
    )
    deliveries = twilio_server.run_lifecycle(sent.message_id, "undelivered", error_code=30003)
    assert [d.response_status for d in deliveries] == [200, 200, 200]

    validator = TwilioSignatureValidator(twilio_server.auth_token)
    received = webhook_receiver.received
    assert [w.url for w in received] == [callback_url] * 3
    assert all(validator.validate(w.url, w.params, w.signature) for w in received)
    parsed = [parse_status_callback(w.params) for w in received]
    assert [p.status for p in parsed] == [
        MessageStatus.QUEUED,
        MessageStatus.SENT,
        MessageStatus.UNDELIVERED,
    ]
    assert {p.message_id for p in parsed} == {sent.message_id}
    assert parsed[-1].error_code == 30003
    assert parsed[0].error_code is None
    assert parsed[-1].to == "+8613800138000"
    assert parsed[-1].account_sid == twilio_server.account_sid
    assert twilio_provider.fetch(sent.message_id).status is MessageStatus.UNDELIVERED


def test_no_callback_without_status_callback_url(
    twilio_server: TwilioTestServer, twilio_provider: TwilioProvider
) -> None:
    sent = twilio_provider.send(OutboundSms(to="+8613800138000", body="x"))
    assert twilio_server.run_lifecycle(sent.message_id) == []
    assert twilio_server.message(sent.message_id).status == "delivered"


def test_inbound_webhook_signed_and_classified(
    twilio_server: TwilioTestServer, webhook_receiver: WebhookReceiver
) -> None:
    url = webhook_receiver.url("/webhooks/sms/inbound")
    twilio_server.send_inbound(url, from_="+8613800138000", to="+15005550006", body=" 退订 ")
    [webhook] = webhook_receiver.received
    assert TwilioSignatureValidator(twilio_server.auth_token).validate(
        webhook.url, webhook.params, webhook.signature
    )
    inbound = parse_inbound_sms(webhook.params)
    assert inbound.sender == "+8613800138000"
    assert inbound.to == "+15005550006"
    assert inbound.body == " 退订 "
    assert inbound.segments == 1
    assert inbound.intent is ReplyIntent.OPT_OUT


def test_parse_status_callback_legacy_fields() -> None:
    parsed = parse_status_callback({"SmsSid": "SM1", "SmsStatus": "sent"})
    assert parsed.message_id == "SM1"
    assert parsed.status is MessageStatus.SENT
    assert parsed.to is None


@pytest.mark.parametrize(
    "params",
    [
        {"MessageStatus": "sent"},
        {"MessageSid": "SM1"},
        {"MessageSid": "SM1", "MessageStatus": "teleported"},
        {"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "x"},
    ],
)
def test_parse_status_callback_rejects_bad_payload(params: dict[str, str]) -> None:
    with pytest.raises(WebhookPayloadError):
        parse_status_callback(params)


def test_parse_inbound_requires_sender() -> None:
    with pytest.raises(WebhookPayloadError):
        parse_inbound_sms({"MessageSid": "SM1", "To": "+15005550006", "Body": "STOP"})


def test_status_never_moves_backwards() -> None:
    assert MessageStatus.SENT.supersedes(MessageStatus.QUEUED)
    assert MessageStatus.DELIVERED.supersedes(MessageStatus.SENT)
    assert not MessageStatus.SENT.supersedes(MessageStatus.DELIVERED)
    assert not MessageStatus.QUEUED.supersedes(MessageStatus.QUEUED)
    assert not MessageStatus.UNDELIVERED.supersedes(MessageStatus.DELIVERED)
    assert MessageStatus.FAILED.is_final and not MessageStatus.SENT.is_final
