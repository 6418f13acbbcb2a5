"""SMS: Twilio webhooks (signature-checked, no JWT) and the staff views of the outbox."""

from __future__ import annotations

from typing import Literal
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from server.auth.deps import get_clock, get_session, require
from server.auth.service import Principal
from server.core.clock import Clock
from server.core.errors import InvalidInput
from server.models import Role
from server.models.notifications import SMS_STATUSES
from server.notifications import service
from server.notifications.schemas import SmsMessageOut, TemplateIn, TemplateOut, TemplateSaved
from server.notifications.templates import TemplateKey
from server.tickets.service import Policy
from sms_gateway import (
    TwilioSignatureValidator,
    WebhookPayloadError,
    is_e164,
    parse_inbound_sms,
    parse_status_callback,
)

router = APIRouter(prefix="/api/v1/sms", tags=["sms"])
READERS = (Role.agent, Role.manager)
EDITORS = (Role.manager,)


def _refuse(code: str, message: str, status: int = 403) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message,
                                   "field": "X-Twilio-Signature"}}, status_code=status)


async def signed_form(request: Request) -> list[tuple[str, str]] | JSONResponse:
    """The webhook's form fields if X-Twilio-Signature matches, else the 401/403 to answer.

    The signature covers the URL Twilio called: the configured public base URL plus this path and
    query (behind a proxy the app's own URL differs)."""
    settings = request.app.state.settings
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:  # no credentials at all: 401, like every other endpoint without a login
        return _refuse("not_authenticated", "webhooks must carry X-Twilio-Signature", 401)
    token = settings.twilio_auth_token.get_secret_value()
    if not token:
        return _refuse("webhook_not_configured", "SMS webhooks need CREWLINE_TWILIO_AUTH_TOKEN "
                       "to check signatures; none is configured")
    form = await request.form()
    pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    url = settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not TwilioSignatureValidator(token).validate(url, pairs, signature):
        return _refuse("invalid_signature", "X-Twilio-Signature does not match this request")
    return pairs


def _payload_error(exc: WebhookPayloadError) -> InvalidInput:
    return InvalidInput(str(exc), field="form", code="invalid_webhook")


@router.post("/status", status_code=204, response_class=Response)
def status_callback(ref: int | None = Query(None, ge=1),
                    form: list[tuple[str, str]] | JSONResponse = Depends(signed_form),
                    session: Session = Depends(get_session), clock: Clock = Depends(get_clock)):
    """Twilio delivery-status callback: moves the message forward, never backwards."""
    if isinstance(form, JSONResponse):
        return form
    try:
        callback = parse_status_callback(dict(form))
    except WebhookPayloadError as exc:
        raise _payload_error(exc) from None
    service.apply_status_callback(session, callback, ref, clock.now())
    session.commit()
    return Response(status_code=204)


@router.post("/inbound", response_class=Response)
def inbound(request: Request, form: list[tuple[str, str]] | JSONResponse = Depends(signed_form),
            session: Session = Depends(get_session), clock: Clock = Depends(get_clock)):
    """A customer's text: opt-out/opt-in, HELP, survey score 1-5, Y/N. Answers TwiML."""
    if isinstance(form, JSONResponse):
        return form
    try:
        sms = parse_inbound_sms(dict(form))
    except WebhookPayloadError as exc:
        raise _payload_error(exc) from None
    if not is_e164(sms.sender):
        raise InvalidInput("From is not an E.164 number", field="From", code="invalid_webhook")
    outcome = service.handle_inbound(session, sms, clock.now(),
                                     Policy.from_settings(request.app.state.settings))
    session.commit()
    message = f"<Message>{escape(outcome.reply)}</Message>" if outcome.reply else ""
    return Response(f'<?xml version="1.0" encoding="UTF-8"?><Response>{message}</Response>',
                    media_type="application/xml")


@router.get("/messages", response_model=list[SmsMessageOut])
def list_messages(ticket_id: int | None = Query(None, ge=1),
                  status: Literal[SMS_STATUSES] | None = None,  # type: ignore[valid-type]
                  before_id: int | None = Query(None, ge=1), limit: int = Query(50, ge=1, le=500),
                  principal: Principal = Depends(require(*READERS)),
                  session: Session = Depends(get_session)) -> list[SmsMessageOut]:
    """The outbox, newest first. Numbers are masked except for admins."""
    full = principal.role is Role.admin
    return [SmsMessageOut.of(m, full_numbers=full) for m in service.list_messages(
        session, ticket_id=ticket_id, status=status, before_id=before_id, limit=limit)]


@router.get("/templates", response_model=list[TemplateOut])
def list_templates(_: Principal = Depends(require(*READERS)),
                   session: Session = Depends(get_session)) -> list[dict]:
    return service.list_templates(session)


@router.put("/templates/{key}/{language}", response_model=TemplateSaved)
def save_template(request: Request, key: TemplateKey, language: Literal["zh-CN", "en"],
                  body: TemplateIn, principal: Principal = Depends(require(*EDITORS)),
                  session: Session = Depends(get_session),
                  clock: Clock = Depends(get_clock)) -> dict:
    """Override a template text; refused (422 template_over_budget) if, with its longest
    values, it needs more segments than CREWLINE_SMS_SEGMENT_BUDGET."""
    saved = service.save_template(session, key, language, body.body,
                                  request.app.state.settings.sms_segment_budget, principal.id,
                                  clock.now())
    session.commit()
    return saved
