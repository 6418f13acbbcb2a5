"""The local Twilio-compatible server, re-exported for the tests.

It lives in :mod:`sms_gateway.testing.twilio_server` because ``crewline bench sms`` drives it as
well, and a benchmark must not import ``tests``.
"""

from sms_gateway.testing.twilio_server import (
    API_VERSION,
    DEFAULT_AUTH_TOKEN,
    FakeMessage,
    ReceivedWebhook,
    RecordedRequest,
    TwilioTestServer,
    WebhookDelivery,
    WebhookReceiver,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_AUTH_TOKEN",
    "FakeMessage",
    "ReceivedWebhook",
    "RecordedRequest",
    "TwilioTestServer",
    "WebhookDelivery",
    "WebhookReceiver",
]
