"""The real twilio SDK against the local Twilio-compatible server."""

from __future__ import annotations

import base64
import socket

import pytest

from sms_gateway import (
    InvalidRecipientError,
    MessageNotFoundError,
    MessageStatus,
    OutboundSms,
    PermanentSmsError,
    ProviderAuthError,
    RateLimitedError,
    RecipientOptedOutError,
    SmsConfigurationError,
    TransientSmsError,
    build_provider,
)
from sms_gateway.twilio_provider import RelocatedHttpClient, TwilioProvider, error_for_response
from tests.sms_gateway.conftest import SENDER, twilio_config
from tests.support.twilio_server import TwilioTestServer

CUSTOMER = "+8613800138000"


def test_send_creates_message_with_status_callback(
    twilio_server: TwilioTestServer, twilio_provider: TwilioProvider
) -> None:
    result = twilio_provider.send(
        OutboundSms(
            to=CUSTOMER, body="Ticket T-42 received", status_callback="https://crewline.example/cb"
        )
    )
    assert result.provider == "twilio"
    assert result.message_id.startswith("SM")
    assert result.status is MessageStatus.QUEUED
    assert result.to == CUSTOMER
    assert result.segments == 1

    [request] = twilio_server.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{twilio_server.account_sid}/Messages.json"
    assert request.authorized
    assert request.field("To") == CUSTOMER
    assert request.field("From") == SENDER
    assert request.field("Body") == "Ticket T-42 received"
    assert request.field("StatusCallback") == "https://crewline.example/cb"
    assert request.field("MessagingServiceSid") is None
    assert request.headers["user-agent"].startswith("twilio-python/")
    expected_auth = base64.b64encode(
        f"{twilio_server.account_sid}:{twilio_server.auth_token}".encode()
    ).decode()
    assert request.headers["authorization"] == f"Basic {expected_auth}"


def test_send_through_messaging_service(twilio_server: TwilioTestServer) -> None:
    provider = build_provider(
        twilio_config(twilio_server, from_number=None, messaging_service_sid="MG" + "1" * 32)
    )
    result = provider.send(OutboundSms(to=CUSTOMER, body="hello"))
    assert result.status is MessageStatus.ACCEPTED
    [request] = twilio_server.requests
    assert request.field("MessagingServiceSid") == "MG" + "1" * 32
    assert request.field("From") is None
    assert request.field("StatusCallback") is None


def test_sender_override(twilio_server: TwilioTestServer, twilio_provider: TwilioProvider) -> None:
    twilio_provider.send(OutboundSms(to=CUSTOMER, body="hi", sender="+15005550001"))
    assert twilio_server.requests[0].field("From") == "+15005550001"


def test_segments_reported_by_server(twilio_provider: TwilioProvider) -> None:
    result = twilio_provider.send(OutboundSms(to=CUSTOMER, body="停" * 71))
    assert result.segments == 2


def test_fetch_status(twilio_server: TwilioTestServer, twilio_provider: TwilioProvider) -> None:
    sent = twilio_provider.send(OutboundSms(to=CUSTOMER, body="hello"))
    twilio_server.advance(sent.message_id, "sent")
    assert twilio_provider.fetch(sent.message_id).status is MessageStatus.SENT
    twilio_server.advance(sent.message_id, "undelivered", error_code=30003)
    fetched = twilio_provider.fetch(sent.message_id)
    assert fetched.status is MessageStatus.UNDELIVERED
    assert fetched.error_code == 30003
    assert twilio_server.requests[-1].method == "GET"
    assert twilio_server.requests[-1].path.endswith(f"/Messages/{sent.message_id}.json")


def test_fetch_unknown_message(twilio_provider: TwilioProvider) -> None:
    with pytest.raises(MessageNotFoundError) as caught:
        twilio_provider.fetch("SM" + "0" * 32)
    assert caught.value.provider_code == 20404
    assert caught.value.http_status == 404


def test_opted_out_recipient_is_permanent_21610(
    twilio_server: TwilioTestServer, twilio_provider: TwilioProvider
) -> None:
    twilio_server.opt_out(CUSTOMER)
    with pytest.raises(RecipientOptedOutError) as caught:
        twilio_provider.send(OutboundSms(to=CUSTOMER, body="hello"))
    error = caught.value
    assert isinstance(error, PermanentSmsError)
    assert error.provider_code == 21610
    assert error.http_status == 400
    assert error.provider == "twilio"
    assert twilio_server.messages == []


@pytest.mark.parametrize("to", ["12345", "+0123456789", "not-a-number"])
def test_invalid_recipient_is_permanent_21211(twilio_provider: TwilioProvider, to: str) -> None:
    with pytest.raises(InvalidRecipientError) as caught:
        twilio_provider.send(OutboundSms(to=to, body="hello"))
    assert caught.value.provider_code == 21211
    assert isinstance(caught.value, PermanentSmsError)


def test_configured_invalid_number_and_masked_message() -> None:
    with TwilioTestServer(invalid_numbers={"+15005550001"}) as server:
        provider = build_provider(twilio_config(server))
        with pytest.raises(InvalidRecipientError) as caught:
            provider.send(OutboundSms(to="+15005550001", body="hello"))
    assert caught.value.provider_code == 21211
    assert "15005550001" not in str(caught.value)  # Twilio quotes the number; logs must not


def test_other_4xx_is_permanent(twilio_provider: TwilioProvider) -> None:
    with pytest.raises(PermanentSmsError) as caught:
        twilio_provider.send(OutboundSms(to=CUSTOMER, body=""))
    assert type(caught.value) is PermanentSmsError
    assert caught.value.provider_code == 21602


def test_rate_limited_is_transient_429(
    twilio_server: TwilioTestServer, twilio_provider: TwilioProvider
) -> None:
    twilio_server.throttle_next(1)
    with pytest.raises(RateLimitedError) as caught:
        twilio_provider.send(OutboundSms(to=CUSTOMER, body="hello"))
    error = caught.value
    assert isinstance(error, TransientSmsError)
    assert error.http_status == 429
    assert error.provider_code == 20429
    assert error.outcome_unknown is False
    # The next attempt goes through: nothing was created by the throttled one.
    twilio_provider.send(OutboundSms(to=CUSTOMER, body="hello"))
    assert len(twilio_server.messages) == 1


def test_configured_rate_limit(
    twilio_server: TwilioTestServer, twilio_provider: TwilioProvider
) -> None:
    twilio_server.set_rate_limit(2)
    outcomes = []
    for _ in range(5):
        try:
            twilio_provider.send(OutboundSms(to=CUSTOMER, body="hello"))
            outcomes.append("ok")
        except RateLimitedError:
            outcomes.append("429")
    assert "429" in outcomes
    assert outcomes.count("ok") == len(twilio_server.messages) >= 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(
    twilio_server: TwilioTestServer, twilio_provider: TwilioProvider, status: int
) -> None:
    twilio_server.fail_next(1, status=status)
    with pytest.raises(TransientSmsError) as caught:
        twilio_provider.send(OutboundSms(to=CUSTOMER, body="hello"))
    assert not isinstance(caught.value, RateLimitedError)
    assert caught.value.http_status == status
    assert caught.value.provider_code in (20500, 20503)
    assert caught.value.outcome_unknown is False


def test_fetch_errors_are_mapped_too(
    twilio_server: TwilioTestServer, twilio_provider: TwilioProvider
) -> None:
    sent = twilio_provider.send(OutboundSms(to=CUSTOMER, body="hello"))
    twilio_server.fail_next(1, status=503)
    with pytest.raises(TransientSmsError):
        twilio_provider.fetch(sent.message_id)


def test_wrong_auth_token_is_provider_auth_error(twilio_server: TwilioTestServer) -> None:
    provider = build_provider(twilio_config(twilio_server, auth_token="wrong"))
    with pytest.raises(ProviderAuthError) as caught:
        provider.send(OutboundSms(to=CUSTOMER, body="hello"))
    assert caught.value.http_status == 401
    assert caught.value.provider_code == 20003
    assert twilio_server.requests[0].authorized is False


def test_read_timeout_is_transient_with_unknown_outcome(twilio_server: TwilioTestServer) -> None:
    provider = build_provider(twilio_config(twilio_server, timeout_seconds=0.2))
    twilio_server.delay_next(0.6)
    with pytest.raises(TransientSmsError) as caught:
        provider.send(OutboundSms(to=CUSTOMER, body="hello"))
    assert caught.value.outcome_unknown is True
    # The server did accept it: a blind retry would send a second SMS.
    assert len(twilio_server.messages) == 1


def test_unreachable_server_is_transient_and_certainly_not_sent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = TwilioProvider(
        account_sid="AC" + "0" * 32,
        auth_token="token",
        from_number=SENDER,
        api_base_url=f"http://127.0.0.1:{port}",
        timeout_seconds=1,
    )
    with pytest.raises(TransientSmsError) as caught:
        provider.send(OutboundSms(to=CUSTOMER, body="hello"))
    assert caught.value.outcome_unknown is False
    assert caught.value.http_status is None


def test_relocated_http_client_keeps_path_and_query() -> None:
    client = RelocatedHttpClient("http://127.0.0.1:9999/twilio/")
    assert (
        client.relocate("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?PageSize=5")
        == "http://127.0.0.1:9999/twilio/2010-04-01/Accounts/AC1/Messages.json?PageSize=5"
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"account_sid": "AC1", "auth_token": "t"},  # no sender
        {"account_sid": "", "auth_token": "t", "from_number": SENDER},
        {
            "account_sid": "AC1",
            "auth_token": "t",
            "from_number": SENDER,
            "api_base_url": "http://127.0.0.1:1",
            "region": "ie1",
        },
        {
            "account_sid": "AC1",
            "auth_token": "t",
            "from_number": SENDER,
            "api_base_url": "ftp://nowhere",
        },
        {"account_sid": "AC1", "auth_token": "t", "from_number": SENDER, "timeout_seconds": 0},
    ],
)
def test_rejects_bad_configuration(settings: dict[str, object]) -> None:
    with pytest.raises(SmsConfigurationError):
        build_provider({"provider": "twilio", **settings})


def test_ignores_twilio_environment_variables(
    monkeypatch: pytest.MonkeyPatch, twilio_server: TwilioTestServer
) -> None:
    # Only the composition root reads the environment; stray TWILIO_* must not reroute requests.
    monkeypatch.setenv("TWILIO_REGION", "au1")
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    provider = TwilioProvider(
        account_sid=twilio_server.account_sid,
        auth_token=twilio_server.auth_token,
        from_number=SENDER,
    )
    assert provider._client.region is None
    assert provider._client.edge is None


@pytest.mark.parametrize(
    ("http_status", "code", "expected"),
    [
        (429, 20429, RateLimitedError),
        (400, 20429, RateLimitedError),
        (500, 20500, TransientSmsError),
        (503, None, TransientSmsError),
        (408, None, TransientSmsError),
        (400, 21610, RecipientOptedOutError),
        (400, 21211, InvalidRecipientError),
        (400, 21614, InvalidRecipientError),
        (401, 20003, ProviderAuthError),
        (403, None, ProviderAuthError),
        (404, 20404, MessageNotFoundError),
        (400, 21602, PermanentSmsError),
        (400, None, PermanentSmsError),
    ],
)
def test_error_table(http_status: int, code: int | None, expected: type[Exception]) -> None:
    error = error_for_response(http_status, code, "msg")
    assert type(error) is expected
    assert error.provider_code == code
    assert error.http_status == http_status
