"""A local, in-process server speaking the subset of Twilio's REST API that Crewline uses.

Tests point the real ``twilio`` SDK at it (``api_base_url=server.base_url``) and so exercise the
SDK's request building, authentication and error parsing for real, without the internet.

Implemented:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with form fields ``To``, ``From`` and/or
  ``MessagingServiceSid``, ``Body``, ``StatusCallback``: 201 with a Twilio-shaped message.
* ``GET /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}.json``.
* ``GET /2010-04-01/Accounts/{AccountSid}/Messages.json`` filtered by ``To`` and ``From``, newest
  first, ``PageSize`` records in one page (how the outbox looks for a message whose creation it
  could not record).
* HTTP basic auth (account sid + auth token) on every request: 401 / 20003 otherwise.
* Twilio-shaped errors (``code``, ``message``, ``more_info``, ``status``): 21610 for numbers in
  ``opted_out_numbers``, 21211 for a ``To`` that is not E.164 or is in ``invalid_numbers``,
  21602 / 21604 / 21603 for missing fields, 20404 for unknown messages, 429 / 20429 when
  ``rate_limit_per_second`` is exceeded or after :meth:`TwilioTestServer.throttle_next`, 5xx after
  :meth:`TwilioTestServer.fail_next`, a slow answer after :meth:`TwilioTestServer.delay_next`.
* Status callbacks (queued -> sent -> delivered / undelivered / failed) POSTed to the message's
  ``StatusCallback``, signed with ``X-Twilio-Signature`` by the SDK's ``RequestValidator``; and
  signed inbound-message webhooks (:meth:`TwilioTestServer.send_inbound`).

Every request is recorded (:attr:`TwilioTestServer.requests`) for assertions.

It lives in the package (not under ``tests/``) because ``crewline bench sms`` drives it too;
``tests/support/twilio_server.py`` re-exports it. Nothing in ``sms_gateway`` proper imports it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from sms_gateway.numbers import is_e164
from sms_gateway.segments import segment_message
from sms_gateway.twilio_provider import TwilioSignatureValidator

API_VERSION = "2010-04-01"
DEFAULT_AUTH_TOKEN = "test-auth-token-0123456789abcdef"

_MESSAGES = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$"
)

_ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the server received."""

    method: str
    path: str
    form: dict[str, list[str]]
    headers: dict[str, str]
    authorized: bool
    response_status: int

    def field(self, name: str) -> str | None:
        """The first value of form field ``name``, or ``None``."""
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class FakeMessage:
    """A message as the server stores it."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status: str
    status_callback: str | None
    num_segments: int
    date_created: datetime
    date_updated: datetime
    error_code: int | None = None
    error_message: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The message in Twilio's JSON shape."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": format_datetime(self.date_created),
            "date_sent": format_datetime(self.date_updated)
            if self.status in ("sent", "delivered", "undelivered")
            else None,
            "date_updated": format_datetime(self.date_updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": self.to,
            "uri": uri,
        }


@dataclass(frozen=True)
class WebhookDelivery:
    """A webhook the server POSTed (status callback or inbound message) and its outcome."""

    url: str
    params: dict[str, str]
    signature: str
    response_status: int | None
    response_body: str
    error: str | None = None


@dataclass
class _Faults:
    throttle: int = 0
    failures: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)


class TwilioTestServer:
    """A Twilio REST API stand-in on a free 127.0.0.1 port, served from a background thread.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.

    :param account_sid: the only account accepted (generated when omitted).
    :param auth_token: the account's auth token; also signs webhooks.
    :param opted_out_numbers: recipients answered with 21610.
    :param invalid_numbers: recipients answered with 21211 (besides non-E.164 ones).
    :param rate_limit_per_second: answer 429 when message creations exceed this rate.
    """

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        opted_out_numbers: Iterable[str] = (),
        invalid_numbers: Iterable[str] = (),
        rate_limit_per_second: float | None = None,
    ) -> None:
        self.account_sid = account_sid or "AC" + uuid.uuid4().hex
        self.auth_token = auth_token
        self._validator = TwilioSignatureValidator(auth_token)
        self._lock = threading.Lock()
        self._opted_out = set(opted_out_numbers)
        self._invalid = set(invalid_numbers)
        self._rate_limit = rate_limit_per_second
        self._bucket = max(1.0, rate_limit_per_second or 0.0)
        self._bucket_at = time.monotonic()
        self._faults = _Faults()
        self._messages: dict[str, FakeMessage] = {}
        self._requests: list[RecordedRequest] = []
        self._webhooks: list[WebhookDelivery] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        handler = type("Handler", (_Handler,), {"twilio": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        # A short poll interval makes stop() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="twilio-test-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: give it to the provider as ``api_base_url``."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._httpd.server_port}"

    # -- behaviour knobs ---------------------------------------------------------------------

    def opt_out(self, number: str) -> None:
        """Answer 21610 for messages to ``number`` from now on."""
        with self._lock:
            self._opted_out.add(number)

    def set_rate_limit(self, per_second: float | None) -> None:
        """Answer 429 when message creations exceed ``per_second`` (``None``: no limit)."""
        with self._lock:
            self._rate_limit = per_second
            self._bucket = max(1.0, per_second or 0.0)  # a full bucket: bursts up to the rate
            self._bucket_at = time.monotonic()

    def throttle_next(self, count: int = 1) -> None:
        """Answer the next ``count`` API requests with 429 / 20429."""
        with self._lock:
            self._faults.throttle += count

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """Answer the next ``count`` API requests with a 5xx ``status``."""
        with self._lock:
            self._faults.failures.extend([status] * count)

    def delay_next(self, seconds: float) -> None:
        """Process the next request normally but wait ``seconds`` before answering.

        With a client timeout below ``seconds`` this is the "accepted, but the answer was lost"
        case: the message exists on the server while the client saw a timeout.
        """
        with self._lock:
            self._faults.delays.append(seconds)

    # -- inspection --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def messages(self) -> list[FakeMessage]:
        """Every message created so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._messages.values())

    def message(self, sid: str) -> FakeMessage:
        """The message with id ``sid`` (``KeyError`` if unknown)."""
        with self._lock:
            return self._messages[sid]

    @property
    def webhooks(self) -> list[WebhookDelivery]:
        """Every webhook POSTed so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._webhooks)

    # -- webhooks ----------------------------------------------------------------------------

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """The ``X-Twilio-Signature`` Twilio would send for ``url`` and ``params``."""
        return self._validator.sign(url, dict(params))

    def advance(
        self, sid: str, status: str, *, error_code: int | None = None
    ) -> WebhookDelivery | None:
        """Move message ``sid`` to ``status`` and POST the status callback, if it has one.

        Runs in the caller's thread; returns the delivery (``None`` without a callback URL).
        """
        with self._lock:
            message = self._messages[sid]
            message.status = status
            message.date_updated = datetime.now(UTC)
            if error_code is not None:
                message.error_code = error_code
                message.error_message = f"Error {error_code}"
            callback = message.status_callback
            params = {
                "AccountSid": message.account_sid,
                "ApiVersion": API_VERSION,
                "From": message.from_ or "",
                "MessageSid": message.sid,
                "MessageStatus": status,
                "SmsSid": message.sid,
                "SmsStatus": status,
                "To": message.to,
            }
            if message.messaging_service_sid:
                params["MessagingServiceSid"] = message.messaging_service_sid
            if error_code is not None:
                params["ErrorCode"] = str(error_code)
        if not callback:
            return None
        return self._post_webhook(callback, params)

    def run_lifecycle(
        self,
        sid: str,
        final: str = "delivered",
        *,
        error_code: int | None = None,
        statuses: Sequence[str] = ("queued", "sent"),
    ) -> list[WebhookDelivery]:
        """Fire the callbacks of a whole delivery: ``statuses`` then ``final``.

        ``final`` is ``delivered``, ``undelivered`` or ``failed``; give ``error_code`` (e.g. 30003,
        unreachable handset) with the last two.
        """
        deliveries = [self.advance(sid, status) for status in statuses]
        deliveries.append(self.advance(sid, final, error_code=error_code))
        return [delivery for delivery in deliveries if delivery is not None]

    def send_inbound(
        self, url: str, *, from_: str, to: str, body: str, extra: Mapping[str, str] | None = None
    ) -> WebhookDelivery:
        """POST a signed incoming-message webhook to ``url``, as Twilio does for a reply."""
        sid = "SM" + uuid.uuid4().hex
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": from_,
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": str(max(1, segment_message(body).segment_count)),
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": to,
            **(extra or {}),
        }
        return self._post_webhook(url, params)

    def _post_webhook(self, url: str, params: dict[str, str]) -> WebhookDelivery:
        signature = self.sign(url, params)
        request = urllib.request.Request(
            url,
            data=urllib.parse.urlencode(params).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
                "User-Agent": "TwilioProxy/1.1",
            },
            method="POST",
        )
        status: int | None
        error: str | None = None
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text = response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode("utf-8", "replace")
        except OSError as exc:
            status, text, error = None, "", repr(exc)
        delivery = WebhookDelivery(url, params, signature, status, text, error)
        with self._lock:
            self._webhooks.append(delivery)
        return delivery

    # -- request handling (called from the handler threads) ----------------------------------

    def _handle(
        self,
        method: str,
        path: str,
        form: dict[str, list[str]],
        headers: dict[str, str],
        query: dict[str, list[str]] | None = None,
    ) -> tuple[int, dict[str, Any], float]:
        with self._lock:
            authorized = self._authorized(headers.get("authorization", ""))
            status, payload = self._dispatch(method, path, form, authorized, query)
            delay = self._faults.delays.pop(0) if self._faults.delays else 0.0
            self._requests.append(RecordedRequest(method, path, form, headers, authorized, status))
        return status, payload, delay

    def _dispatch(
        self,
        method: str,
        path: str,
        form: dict[str, list[str]],
        authorized: bool,
        query: dict[str, list[str]] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        messages, message = _MESSAGES.match(path), _MESSAGE.match(path)
        route = messages or message
        if route is None:
            return _error(404, 20404)
        if not authorized or route["account"] != self.account_sid:
            return _error(401, 20003)
        if self._faults.throttle:
            self._faults.throttle -= 1
            return _error(429, 20429)
        if self._faults.failures:
            status = self._faults.failures.pop(0)
            return _error(status, 20503 if status == 503 else 20500)
        if messages and method == "POST":
            return self._create(form)
        if messages and method == "GET":
            return self._list(query)
        if message and method == "GET":
            found = self._messages.get(message["sid"])
            return (200, found.to_json()) if found else _error(404, 20404)
        return _error(405, 20004)

    def _list(self, query: dict[str, list[str]] | None) -> tuple[int, dict[str, Any]]:
        def first(name: str) -> str | None:
            values = (query or {}).get(name)
            return values[0] if values and values[0] else None

        to, from_ = first("To"), first("From")
        try:
            page_size = max(1, min(1000, int(first("PageSize") or 50)))
        except ValueError:
            return _error(400, 20001)
        found = [
            m
            for m in reversed(self._messages.values())
            if (to is None or m.to == to) and (from_ is None or m.from_ == from_)
        ][:page_size]
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        return 200, {
            "messages": [m.to_json() for m in found],
            "end": max(0, len(found) - 1),
            "first_page_uri": f"{uri}?PageSize={page_size}&Page=0",
            "next_page_uri": None,
            "page": 0,
            "page_size": page_size,
            "previous_page_uri": None,
            "start": 0,
            "uri": f"{uri}?PageSize={page_size}&Page=0",
        }

    def _create(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        def first(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values and values[0] else None

        to, from_, service = first("To"), first("From"), first("MessagingServiceSid")
        body = first("Body")
        if to is None:
            return _error(400, 21604)
        if from_ is None and service is None:
            return _error(400, 21603)
        if body is None:
            return _error(400, 21602)
        if not is_e164(to) or to in self._invalid:
            return _error(400, 21211, to=to)
        if to in self._opted_out:
            return _error(400, 21610)
        if not self._take_rate_token():
            return _error(429, 20429)
        now = datetime.now(UTC)
        sms = FakeMessage(
            sid="SM" + uuid.uuid4().hex,
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            messaging_service_sid=service,
            body=body,
            # Twilio answers "accepted" when a messaging service picks the sender later.
            status="accepted" if service and not from_ else "queued",
            status_callback=first("StatusCallback"),
            num_segments=segment_message(body).segment_count,
            date_created=now,
            date_updated=now,
        )
        self._messages[sms.sid] = sms
        return 201, sms.to_json()

    def _take_rate_token(self) -> bool:
        if self._rate_limit is None:
            return True
        now = time.monotonic()
        capacity = max(1.0, self._rate_limit)
        self._bucket = min(capacity, self._bucket + (now - self._bucket_at) * self._rate_limit)
        self._bucket_at = now
        if self._bucket < 1.0:
            return False
        self._bucket -= 1.0
        return True

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token


def _error(status: int, code: int, **values: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "code": code,
        "message": _ERROR_MESSAGES.get(code, "Error").format(**values),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Handler(BaseHTTPRequestHandler):
    twilio: TwilioTestServer  # set on the per-server subclass
    protocol_version = "HTTP/1.1"  # keep-alive: the SDK's session reuses connections
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold every answer for ~40 ms on a kept-alive connection.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        form = urllib.parse.parse_qs(raw, keep_blank_values=True)
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path, urllib.parse.parse_qs(split.query)
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, payload, delay = self.twilio._handle(method, path, form, headers, query)
        if delay:
            time.sleep(delay)
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 429:
            self.send_header("Retry-After", "1")
        try:
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout is shorter than delay_next): that is the test.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@dataclass(frozen=True)
class ReceivedWebhook:
    """One POST the :class:`WebhookReceiver` got."""

    url: str
    params: dict[str, str]
    signature: str | None


class WebhookReceiver:
    """A tiny HTTP endpoint on 127.0.0.1 that records webhooks (stands in for Crewline's server).

    Answers every POST with ``status`` (200 by default). ``url(path)`` gives the address to use as
    a ``StatusCallback``.
    """

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self._lock = threading.Lock()
        self._received: list[ReceivedWebhook] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                params = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
                webhook = ReceivedWebhook(
                    receiver.url(self.path),
                    params,
                    self.headers.get("X-Twilio-Signature"),
                )
                with receiver._lock:
                    receiver._received.append(webhook)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def url(self, path: str = "/webhooks/sms/status") -> str:
        """The full URL of ``path`` on this receiver."""
        return f"http://127.0.0.1:{self._httpd.server_port}{path}"

    @property
    def received(self) -> list[ReceivedWebhook]:
        """Every webhook received so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._received)
