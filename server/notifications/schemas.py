from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from sms_gateway import mask_phone_number


class SmsMessageOut(BaseModel):
    id: int
    ticket_id: int | None
    customer_id: int | None
    outage_ref: str | None
    to: str  # masked unless the caller may see full numbers
    language: str
    template: str
    body: str
    encoding: str
    segments: int
    urgent: bool
    status: str
    provider: str | None
    provider_message_id: str | None
    provider_status: str | None
    attempts: int
    next_attempt_at: datetime
    error_code: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, m, *, full_numbers: bool) -> SmsMessageOut:
        return cls(
            id=m.id, ticket_id=m.ticket_id, customer_id=m.customer_id, outage_ref=m.outage_ref,
            to=m.to_e164 if full_numbers else mask_phone_number(m.to_e164), language=m.language,
            template=m.template, body=m.body, encoding=m.encoding, segments=m.segments,
            urgent=m.urgent, status=m.status, provider=m.provider,
            provider_message_id=m.provider_message_id, provider_status=m.provider_status,
            attempts=m.attempts, next_attempt_at=m.next_attempt_at, error_code=m.error_code,
            last_error=m.last_error, created_at=m.created_at, sent_at=m.sent_at,
            delivered_at=m.delivered_at)


class TemplateOut(BaseModel):
    key: str
    language: str
    body: str
    placeholders: list[str]
    custom: bool
    urgent: bool


class TemplateIn(BaseModel):
    body: str = Field(min_length=1, max_length=1000)


class TemplateSaved(BaseModel):
    key: str
    language: str
    body: str
    encoding: str
    segments: int
    segment_budget: int
