"""The Twilio provider, on the official ``twilio`` SDK. The only module that imports ``twilio``.

* :class:`TwilioProvider` sends with ``messages.create`` (from a number or a messaging service,
  with a status-callback URL) and fetches a message's status, translating SDK and network errors
  into the :mod:`sms_gateway.errors` family.
* :class:`TwilioSignatureValidator` checks ``X-Twilio-Signature`` on webhooks with the SDK's
  ``RequestValidator``.

``api_base_url`` points the SDK at another Twilio-compatible server (the local test server) through
the SDK's public extension point, its HTTP client: :class:`RelocatedHttpClient` rewrites the scheme
and host of every request URL the SDK builds. Nothing in the SDK is patched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from sms_gateway.errors import (
    InvalidRecipientError,
    MessageNotFoundError,
    PermanentSmsError,
    ProviderAuthError,
    RateLimitedError,
    RecipientOptedOutError,
    SmsConfigurationError,
    SmsSendError,
    TransientSmsError,
)
from sms_gateway.numbers import mask_phone_numbers_in
from sms_gateway.provider import MessageStatus, OutboundSms, SendResult

PROVIDER_NAME = "twilio"

OPTED_OUT_CODES = frozenset({21610})
INVALID_RECIPIENT_CODES = frozenset({21211, 21614})
RATE_LIMITED_CODES = frozenset({20429})
AUTH_FAILED_CODES = frozenset({20003})
NOT_FOUND_CODES = frozenset({20404})

# A non-empty mapping stops the SDK from falling back to os.environ (TWILIO_REGION, TWILIO_EDGE,
# credentials): settings reach this module only through its constructor.
_NO_ENVIRONMENT: Mapping[str, str] = {"CREWLINE_TWILIO_SETTINGS": "explicit"}


class RelocatedHttpClient(TwilioHttpClient):
    """The SDK's HTTP client, sending every request to ``base_url`` instead of ``*.twilio.com``.

    The path and query the SDK built are kept, so ``https://api.twilio.com/2010-04-01/...``
    becomes ``http://127.0.0.1:8123/2010-04-01/...`` for ``base_url="http://127.0.0.1:8123"``.
    A path in ``base_url`` is prefixed to the SDK's path.
    """

    def __init__(self, base_url: str, *, timeout: float | None = None) -> None:
        parsed = urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SmsConfigurationError(f"api_base_url must be an http(s) URL, got {base_url!r}")
        # No max_retries: the SDK must not resend on its own; the caller's outbox owns retries.
        super().__init__(timeout=timeout)
        self._scheme = parsed.scheme
        self._netloc = parsed.netloc
        self._path_prefix = parsed.path.rstrip("/")

    def relocate(self, url: str) -> str:
        """Return ``url`` with its scheme and host replaced by the base URL's."""
        parsed = urlsplit(url)
        return urlunsplit(
            (self._scheme, self._netloc, self._path_prefix + parsed.path, parsed.query, "")
        )

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send the request the SDK built, to the relocated URL."""
        return super().request(
            method,
            self.relocate(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


class TwilioProvider:
    """An :class:`~sms_gateway.provider.SmsProvider` sending through Twilio's Messages API.

    :param account_sid: the account (``AC...``) the messages belong to.
    :param auth_token: the account's auth token (or an API key secret with ``api_key_sid``).
    :param from_number: default sender number / alphanumeric id.
    :param messaging_service_sid: messaging service (``MG...``) choosing the sender and queueing;
        at least one of ``from_number`` and ``messaging_service_sid`` is required.
    :param api_base_url: send API requests to this Twilio-compatible server instead of Twilio.
    :param region: Twilio region (``ie1``, ``au1``...); not combinable with ``api_base_url``.
    :param edge: Twilio edge location (``dublin``, ``sydney``...); idem.
    :param timeout_seconds: connect/read timeout of each API request.
    :param api_key_sid: authenticate with an API key (``SK...``) instead of the account sid.
    """

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_base_url: str | None = None,
        region: str | None = None,
        edge: str | None = None,
        timeout_seconds: float = 10.0,
        api_key_sid: str | None = None,
    ) -> None:
        if not account_sid or not auth_token:
            raise SmsConfigurationError("twilio needs account_sid and auth_token")
        if not from_number and not messaging_service_sid:
            raise SmsConfigurationError("twilio needs from_number or messaging_service_sid")
        if api_base_url and (region or edge):
            raise SmsConfigurationError("api_base_url cannot be combined with region or edge")
        if timeout_seconds <= 0:
            raise SmsConfigurationError(f"timeout_seconds must be > 0, got {timeout_seconds}")
        http_client: TwilioHttpClient = (
            RelocatedHttpClient(api_base_url, timeout=timeout_seconds)
            if api_base_url
            else TwilioHttpClient(timeout=timeout_seconds)
        )
        self._from_number = from_number
        self._messaging_service_sid = messaging_service_sid
        self._client = Client(
            username=api_key_sid or account_sid,
            password=auth_token,
            account_sid=account_sid,
            region=region,
            edge=edge,
            http_client=http_client,
            environment=_NO_ENVIRONMENT,
        )

    @property
    def name(self) -> str:
        """Always ``"twilio"``."""
        return PROVIDER_NAME

    def send(self, sms: OutboundSms) -> SendResult:
        """Create the message at Twilio (``POST .../Messages.json``).

        :raises TransientSmsError: 429, 5xx or network trouble (see ``outcome_unknown``).
        :raises PermanentSmsError: any other refusal; subclasses for opted-out (21610) and invalid
            (21211, 21614) recipients and rejected credentials.
        """
        arguments: dict[str, Any] = {"to": sms.to, "body": sms.body}
        sender = sms.sender or self._from_number
        if sender:
            arguments["from_"] = sender
        if self._messaging_service_sid:
            arguments["messaging_service_sid"] = self._messaging_service_sid
        if sms.status_callback:
            arguments["status_callback"] = sms.status_callback
        try:
            message = self._client.messages.create(**arguments)
        except Exception as exc:  # translated below; anything unknown is re-raised untouched
            raise _translate(exc) from exc
        return _result(message)

    def fetch(self, message_id: str) -> SendResult:
        """Fetch a message's current status (``GET .../Messages/{sid}.json``).

        :raises MessageNotFoundError: Twilio knows no such message (20404).
        :raises TransientSmsError: 429, 5xx or network trouble.
        """
        try:
            message = self._client.messages(message_id).fetch()
        except Exception as exc:
            raise _translate(exc) from exc
        return _result(message)


    def find_sent(self, to: str, body: str, *, look_back: int = 50) -> SendResult | None:
        """The newest message to ``to`` (from our sender) whose body is ``body``, if any.

        Lists ``GET .../Messages.json?To=...&From=...`` (newest first) and compares bodies;
        Twilio's Messages API has no idempotency key, so this is how a message whose creation
        was not recorded is found again. Only the ``look_back`` newest messages are compared.

        :raises TransientSmsError: 429, 5xx or network trouble.
        """
        filters: dict[str, Any] = {"to": to}
        if self._from_number:
            filters["from_"] = self._from_number
        try:
            for message in self._client.messages.stream(
                **filters, limit=look_back, page_size=look_back
            ):
                if message.body == body:
                    return _result(message)
        except Exception as exc:
            raise _translate(exc) from exc
        return None


class TwilioSignatureValidator:
    """Checks that a webhook really comes from Twilio, with the SDK's ``RequestValidator``.

    :param auth_token: the auth token of the account the webhook is for.
    """

    def __init__(self, auth_token: str) -> None:
        if not auth_token:
            raise SmsConfigurationError("signature validation needs the auth token")
        self._validator = RequestValidator(auth_token)

    def validate(
        self,
        url: str,
        params: Mapping[str, str] | Iterable[tuple[str, str]] | str,
        signature: str | None,
    ) -> bool:
        """True when ``signature`` (the ``X-Twilio-Signature`` header) matches the request.

        :param url: the full URL Twilio called, as Twilio saw it (behind a reverse proxy: the
            public URL, not the one the app server received), query string included.
        :param params: the POST form fields (a mapping, or name/value pairs when a name repeats);
            for JSON webhooks the raw body text, checked against the URL's ``bodySHA256``.
        :param signature: the header's value; missing or empty never validates.
        """
        if not signature:
            return False
        if isinstance(params, str):
            return bool(self._validator.validate(url, params, signature))
        return bool(self._validator.validate(url, _FormFields(params), signature))

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """Compute the signature Twilio would send for ``url`` and ``params`` (for tests, tools)."""
        return str(self._validator.compute_signature(url, _FormFields(params)))


class _FormFields:
    """Form fields that may repeat a name, offering the ``getlist`` the SDK's validator uses."""

    def __init__(self, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        pairs = params.items() if isinstance(params, Mapping) else params
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def __iter__(self) -> Any:
        return iter(self._values)

    def __bool__(self) -> bool:
        return bool(self._values)

    def getlist(self, name: str) -> list[str]:
        return self._values[name]


def _result(message: Any) -> SendResult:
    segments = message.num_segments
    return SendResult(
        provider=PROVIDER_NAME,
        message_id=message.sid,
        status=_status(message.status),
        to=message.to,
        segments=int(segments) if segments not in (None, "") else None,
        error_code=int(message.error_code) if message.error_code is not None else None,
    )


def _status(value: object) -> MessageStatus:
    try:
        return MessageStatus(str(value))
    except ValueError:
        # A status Twilio added after this code was written: the message exists all the same, and
        # turning an accepted message into an exception would invite a duplicate send.
        return MessageStatus.QUEUED


def _translate(exc: Exception) -> Exception:
    """Map an SDK or network exception to the sms_gateway error family."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        code = int(exc.code) if exc.code is not None else None
        message = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
        return error_for_response(int(exc.status), code, str(message))
    page_error = _page_error(exc)
    if page_error is not None:
        return page_error
    if isinstance(exc, requests.ConnectTimeout) or _connection_refused(exc):
        return TransientSmsError(
            f"cannot reach Twilio: {type(exc).__name__}", provider=PROVIDER_NAME
        )
    if isinstance(exc, requests.RequestException):
        # The request may have been delivered before the timeout or disconnect.
        return TransientSmsError(
            f"no answer from Twilio: {type(exc).__name__}",
            provider=PROVIDER_NAME,
            outcome_unknown=True,
        )
    return exc


def _page_error(exc: Exception) -> SmsSendError | None:
    """List pages fail with a bare ``TwilioException("Unable to fetch page", response)``."""
    if type(exc) is not TwilioException or len(exc.args) < 2:
        return None
    response = exc.args[1]
    status = getattr(response, "status_code", None)
    if not isinstance(status, int):
        return None
    code: int | None = None
    message = f"listing messages failed with HTTP {status}"
    try:
        payload = json.loads(getattr(response, "text", "") or "{}")
        code = int(payload["code"]) if payload.get("code") is not None else None
        message = str(payload.get("message") or message)
    except (ValueError, TypeError, AttributeError):
        pass
    return error_for_response(status, code, message)


def error_for_response(http_status: int, code: int | None, message: str) -> SmsSendError:
    """Classify a Twilio error answer into the :mod:`sms_gateway.errors` family.

    429 / 20429 and 5xx (and 408) are transient; every other status is permanent, with dedicated
    classes for opted-out recipients, invalid recipients, rejected credentials and unknown messages.
    """
    message = mask_phone_numbers_in(message)  # Twilio quotes the recipient; keep it out of logs
    details: dict[str, Any] = {
        "provider": PROVIDER_NAME,
        "provider_code": code,
        "http_status": http_status,
    }
    if http_status == 429 or code in RATE_LIMITED_CODES:
        return RateLimitedError(message, **details)
    if http_status >= 500 or http_status == 408:
        return TransientSmsError(message, **details)
    if code in OPTED_OUT_CODES:
        return RecipientOptedOutError(message, **details)
    if code in INVALID_RECIPIENT_CODES:
        return InvalidRecipientError(message, **details)
    if http_status in (401, 403) or code in AUTH_FAILED_CODES:
        return ProviderAuthError(message, **details)
    if http_status == 404 or code in NOT_FOUND_CODES:
        return MessageNotFoundError(message, **details)
    return PermanentSmsError(message, **details)


def _connection_refused(exc: Exception) -> bool:
    """Whether the connection was never established (so nothing was sent)."""
    if not isinstance(exc, requests.ConnectionError):
        return False
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError):
            return True
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
    return False
